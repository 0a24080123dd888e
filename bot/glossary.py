"""Patients' words for the articles' terms (`knowledge/glossary.toml`), added to a question before retrieval."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GLOSSARY_FILE = "glossary.toml"


def _fold(text: str) -> str:
    t = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(ch for ch in t if not unicodedata.combining(ch))


@dataclass(frozen=True)
class Glossary:
    """Alias -> article term, matched as whole words in one linear pass."""

    terms: dict[str, str]
    pattern: re.Pattern[str] | None

    def expand(self, question: str, known: Callable[[str], bool] | None = None) -> str:
        """The question with the article's term added for each patient word it knows ("MFR (myofascial release)");
        `known(alias)` true means the articles use that word themselves, so nothing needs adding."""
        if self.pattern is None:
            return question
        folded = _fold(question)
        added: list[str] = []
        for m in self.pattern.finditer(folded):
            if known is not None and known(m.group(0)):
                continue
            term = self.terms[m.group(0)]
            if term not in added and term.lower() not in folded:
                added.append(term)
        return f"{question} ({'; '.join(added)})" if added else question


def load_glossary(knowledge_dir: Path) -> Glossary:
    """The clinic's glossary, or an empty one when there is none; a malformed file names itself."""
    path = knowledge_dir / GLOSSARY_FILE
    if not path.exists():
        return Glossary({}, None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    terms: dict[str, str] = {}
    for n, entry in enumerate(data.get("term", []), 1):
        if not isinstance(entry, dict) or not entry.get("term") or not isinstance(entry.get("also"), list):
            raise ValueError(f"{path}: [[term]] number {n} needs 'term' and a list 'also'")
        for alias in entry["also"]:
            if str(alias).strip():
                terms.setdefault(_fold(str(alias)).strip(), str(entry["term"]))
    if not terms:
        return Glossary({}, None)
    # Longest first, so "hip flexors" wins over "hip flexor"; one alternation keeps the scan linear in the text.
    alts = "|".join(re.escape(a) for a in sorted(terms, key=len, reverse=True))
    return Glossary(terms, re.compile(rf"(?<!\w)(?:{alts})(?!\w)"))
