"""The bot's own sentences, from one reviewable file (`bot/prompts/replies.yaml`), in English and Spanish."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.config import ClinicProfile

REPLIES = Path(__file__).parent / "prompts" / "replies.yaml"
LANGS = ("en", "es")


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{key}.")
    return out


@lru_cache(maxsize=4)
def load(path: Path = REPLIES) -> dict[str, dict[str, Any]]:
    """Both languages' templates; a key missing from one language stops start-up with its name."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or any(lang not in data for lang in LANGS):
        raise ValueError(f"{path}: needs a section for each of {LANGS}")
    missing = _keys(data["en"]) ^ _keys(data["es"])
    if missing:
        raise ValueError(f"{path}: these keys are in one language only: {sorted(missing)}")
    return data


class Phrases:
    """Templates filled with the clinic's facts, for one language."""

    def __init__(self, clinic: ClinicProfile, lang: str = "en") -> None:
        self.lang = lang if lang in LANGS else "en"
        self.table = load()[self.lang]
        online = (f", or online at {clinic.booking_url}" if self.lang == "en"
                  else f", o en línea en {clinic.booking_url}")
        self.values = {
            "phone": clinic.phone, "emergency": clinic.emergency_number, "crisis": clinic.crisis_number,
            "booking_online": online if clinic.booking_url else "", "scope": clinic.scope,
            "greeting": clinic.greeting,
        }
        self.values["call"] = self.table["call"].format(**self.values)
        self.values["call_to_talk"] = self.table["call_to_talk"].format(**self.values)

    def say(self, key: str, **extra: str) -> str:
        """The template `key` ("crisis", "why.chest", ...) filled in; a missing sub-key uses its `default`."""
        node: Any = self.table
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, dict) and "default" in node:
                node = node["default"]
            else:
                raise KeyError(key)
        text = " ".join(str(node).split())
        return text.format(**self.values, **extra) if text else ""
