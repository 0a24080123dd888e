"""Sentence splitting shared by ingest (sentence vectors), the composer, streaming and the LLM verifier."""

from __future__ import annotations

import re

# Full stops that do not end a sentence. Anchored so that "arms." or "best." are not read as "Ms." / "St.".
_ABBREV = re.compile(r"(?<![\w.])(?i:e\.g|i\.e|etc|vs|cf|approx|dr|mr|mrs|ms|prof|st|jr|sr|fig|a\.m|p\.m|"
                     r"u\.s|inc|ltd)\.|(?<![\w.])No\.(?=\s*\d)|(?<![\w.])[A-Z]\.(?=\s+[A-Z])")
# Tried only where a run of stops begins, and possessive (stops, closers and spaces never overlap): a message of
# 2,000 "…" took 68 ms when every position of the run backtracked through the rest of it.
_BOUNDARY = re.compile(r"(?<![.!?…])([.!?…]++[\"'”’)\]]*+)\s+(?=[\"'“‘(\[]*+[A-Z0-9])")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")
_HOLD = "\u2063"  # invisible separator: stands in for a protected full stop while splitting


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences: bullets and blank-line blocks stand alone; abbreviations, initials and
    decimals stay whole; a line break before a capital is a boundary, one before a lowercase word is wrapping."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines: list[str] = []
        for raw in block.split("\n"):
            line = raw.strip()
            if not line:
                continue
            if lines and not _BULLET.match(line) and line[:1].islower():
                lines[-1] += " " + line  # a hard-wrapped line continues the previous one
            else:
                lines.append(_BULLET.sub("", line))
        for line in lines:
            held = _ABBREV.sub(lambda m: m.group(0).replace(".", _HOLD), line)
            for part in _BOUNDARY.sub("\\1\n", held).split("\n"):
                s = part.replace(_HOLD, ".").strip()
                if s:
                    out.append(s)
    return out


_ENDED = re.compile(r"[.!?…][\"'”’)\]]*\s+$")


def ends_sentence(text: str) -> bool:
    """Whether streamed text ends on a finished sentence (stop + space, not an abbreviation or initial)."""
    if not _ENDED.search(text):
        return False
    tail = text.rstrip()
    return not any(m.end() == len(tail) for m in _ABBREV.finditer(tail + " X"))
