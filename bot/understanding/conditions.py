"""Conditions and procedures patients name (`conditions.yaml`): found in a question in one linear pass."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

CONDITIONS_FILE = Path(__file__).parent / "conditions.yaml"


def fold(text: str) -> str:
    """Lower case with accents removed."""
    t = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(ch for ch in t if not unicodedata.combining(ch))


@dataclass(frozen=True)
class Condition:
    """A named condition and the words that name it."""

    name: str
    words: tuple[str, ...]


@lru_cache(maxsize=2)
def _load(path: Path = CONDITIONS_FILE) -> tuple[dict[str, Condition], re.Pattern[str]]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    by_alias: dict[str, Condition] = {}
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("also"):
            raise ValueError(f"{path}: entry {n} needs 'name' and 'also'")
        cond = Condition(str(entry["name"]), tuple(fold(str(a)) for a in entry["also"]))
        for alias in cond.words:
            by_alias.setdefault(alias, cond)
    alts = "|".join(re.escape(a) for a in sorted(by_alias, key=len, reverse=True))
    return by_alias, re.compile(rf"(?<!\w)(?:{alts})(?!\w)")


def find(text: str) -> Condition | None:
    """The first condition a message names, or None."""
    by_alias, pattern = _load()
    m = pattern.search(fold(text))
    return by_alias[m.group(0)] if m else None


def mentioned_in(condition: Condition, texts: list[str]) -> bool:
    """Whether any of these texts (passages) names the condition."""
    return any(any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", fold(t)) for w in condition.words) for t in texts)
