"""Sentence splitting shared by ingest (sentence vectors), the composer and the verifier."""

from __future__ import annotations

import re

# Abbreviations whose full stop does not end a sentence.
_ABBREV = r"(?:e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|No|approx|cf|Fig)\."
_BOUNDARY = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"”’)\]]))\s+(?=[\"“‘(\[]?[A-Z0-9])")
_PLACEHOLDER = "\u2063"


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences; bullet and heading lines stand alone; abbreviations and decimals stay whole."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)", text):
        block = " ".join(line.strip() for line in block.strip().splitlines())
        block = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", block)
        if not block:
            continue
        protected = re.sub(_ABBREV, lambda m: m.group(0).replace(".", _PLACEHOLDER), block, flags=re.I)
        for part in _BOUNDARY.split(protected):
            s = part.replace(_PLACEHOLDER, ".").strip()
            if s:
                out.append(s)
    return out
