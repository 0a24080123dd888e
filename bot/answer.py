"""The extractive composer: the article sentence that answers first, then one or two that support it.

Only the articles' own sentences: the plan decides their order and how many, never their words. The answering
sentence is the one closest in meaning to the question, nudged by the question type's cue words
(`bot/prompts/answer_plan.yaml`) and by the rare words of the question it holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from bot.index import SentenceVectors
from bot.retrieval import Retrieval, tokenize
from bot.types import Citation, Passage

PLAN_FILE = Path(__file__).parent / "prompts" / "answer_plan.yaml"
# A sentence this close to the question (cosine) is about it; below, a shared word is likely a coincidence.
ON_QUESTION = 0.3
SUPPORT = 0.35  # a supporting sentence must be at least this close to the question
CUE_BONUS = 0.05
WORD_BONUS, WORD_CAP = 0.3, 0.45
# A sentence that leans on the one before it ("It then crosses...") is not shown without it.
_ANAPHORA = re.compile(r"^(it|its|this|that|these|those|they|their|there|then|from there|because of this|"
                       r"together|such|also|so|which)\b", re.I)
OTHER_PASSAGE = 0.5  # a sentence from a second passage must be this close to join
_MARKDOWN = re.compile(r"(\*\*|__|`|^#+\s*|\[(?=[^\]]*\]\()|\]\([^)]*\))", re.M)
_DIGIT = re.compile(r"\d")

# A question about a price, a time or a name needs a sentence that holds one: the light check after meaning.
SLOT_PATTERNS: dict[str, re.Pattern[str]] = {
    "price": re.compile(r"\$\s?\d|\b\d+\s?(dollars|usd)\b", re.I),
    "hours": re.compile(r"\b\d{1,2}(:\d\d)?\s?(am|pm|a\.m\.|p\.m\.)|\bopen (daily|weekdays|from)\b", re.I),
    "duration": re.compile(r"\b\d+\s?(-\s?\d+\s?)?(minutes?|mins?|hours?|hrs?)\b", re.I),
    "frequency": re.compile(r"\b(\d+|one|two|three|four|five|six)\s?(sessions?|times|visits?)\b", re.I),
    "insurance": re.compile(r"\b(insurance|medicare|medicaid|hsa|fsa)\b", re.I),
    "parking": re.compile(r"\bpark(ing)?\b", re.I),
    "staff": re.compile(r"\b(therapist|practitioner|owner)s? (is|are|named)\s+[A-Z][a-z]+", re.I),
    "location": re.compile(r"\b\d{1,5}\s+\w+(\s\w+)?\s(street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|"
                           r"lane|ln|way|highway|hwy)\b", re.I),
    "payment": re.compile(r"\b(credit cards?|cash|checks?|venmo|paypal|payment plans?)\b", re.I),
    "cancellation": re.compile(r"\b(cancel\w*|reschedul\w*)\b", re.I),
    "wear_bring": re.compile(r"\b(wear|bring|clothing|clothes)\b", re.I),
    "first_visit": re.compile(r"\b(first (visit|session|appointment))\b", re.I),
}
# These also need a number in the sentence: a cancellation policy without its notice period answers nothing.
NEEDS_NUMBER = {"cancellation", "duration", "price", "hours", "frequency"}
# Discounts, free sessions, gift cards and open times are never promised from an article.
ALWAYS_HANDOFF = {"discount", "availability", "gift_card"}
SLOT_MEANING = 0.45

# Where one message asks two things: a new clause that starts like a question.
_Q_START = (r"(?:how|what|whats|what's|where|why|when|who|which|will|would|can|could|does|do|did|is|are|should|"
            r"shall|may|cuanto|cuánto|cuanta|cuánta|como|cómo|que|qué|donde|dónde|cuando|cuándo|puedo|es|hay)")
# Possessive \s++ keeps the split linear on long runs of spaces (no backtracking into them).
_SPLIT = re.compile(rf"(?<=[?!.])\s++|[,;]?\s++(?:and|also|plus|y|tambien|también)\s++(?={_Q_START}\b)", re.I)
_QUESTION = re.compile(rf"\?\s*$|^\W*{_Q_START}\b", re.I)


@dataclass
class Composed:
    """The answer text and where each part came from."""

    text: str
    sentences: list[str] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)


def plain(text: str) -> str:
    """Article text as plain text: no Markdown markers."""
    return re.sub(r"\s+", " ", _MARKDOWN.sub("", text)).strip()


@lru_cache(maxsize=2)
def cues(path: Path = PLAN_FILE) -> dict[str, tuple[float, tuple[str, ...]]]:
    """Question type -> (bonus, cue words), from the plan file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): (float(v.get("bonus", CUE_BONUS)), tuple(str(w).lower() for w in v["cues"]))
            for k, v in data.items() if isinstance(v, dict)}


@lru_cache(maxsize=2)
def link_stems(path: Path = PLAN_FILE) -> frozenset[str]:
    """Stems of the words that say how a question asks, not what about (no rare-word boost for them)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return frozenset(tokenize(" ".join(str(w) for w in data.get("link_words", []))))


def plan_parts(question: str) -> list[str]:
    """The questions inside one message ("how long is a session and will it hurt?" -> two); one when one."""
    pieces = [p.strip(" ,;") for p in _SPLIT.split(question) if p and p.strip(" ,;")]
    asks = [p for p in pieces if _QUESTION.search(p) and len(p.split()) >= 3]
    return asks if len(asks) > 1 else [question]


def holds_slot(slot: str, passages: list[Passage], vectors: dict[str, SentenceVectors],
               qvec: np.ndarray) -> tuple[str, Passage] | None:
    """The sentence that states the clinic fact asked for: close in meaning to the question, and of the right
    shape (a number for a notice period or a price); None when no passage states it."""
    if slot in ALWAYS_HANDOFF:
        return None
    pattern = SLOT_PATTERNS.get(slot)
    best: tuple[float, str, Passage] | None = None
    for p in passages:
        sv = vectors.get(p.id)
        if sv is None or not sv.sentences:
            continue
        sims = sv.vectors @ qvec
        for sentence, sim in zip(sv.sentences, sims, strict=True):
            if sim < SLOT_MEANING or (pattern is not None and not pattern.search(sentence)):
                continue
            if slot in NEEDS_NUMBER and not _DIGIT.search(sentence):
                continue
            if best is None or sim > best[0]:
                best = (float(sim), plain(sentence), p)
    return (best[1], best[2]) if best else None


def compose(question: str, qvec: np.ndarray, retrieval: Retrieval, vectors: dict[str, SentenceVectors],
            rare_weight: Callable[[str, Passage], float] | None = None, focus: np.ndarray | None = None,
            qtype: str | None = None, exclude: set[str] | None = None, max_words: int = 60,
            word_weights: dict[str, float] | None = None) -> Composed:
    """The answering sentence first, then up to two supporting ones, within `max_words`.

    Relevance of a passage = its cosine + 0.15 per rare query word it holds (lexical evidence that a question
    about "headaches" wants the passage that says "headaches"), counted only when one of its sentences is on
    the question. `focus` (the patient's own words, when a follow-up was rewritten) picks the sentences;
    `exclude` holds replies already given, whose sentences are not shown again ("tell me more").
    """
    candidates = [p for p in retrieval.passages[:5] if p.id in vectors and vectors[p.id].sentences]
    if not candidates:
        return Composed(text="")
    weigh = rare_weight or (lambda _q, _p: 0.0)
    # A follow-up's own words pick the sentence, steered by the topic it follows ("how long is it?" + psoas).
    picker = qvec if focus is None else (focus + qvec) / max(float(np.linalg.norm(focus + qvec)), 1e-6)
    rare = {t: w for t, w in (word_weights or {}).items() if t not in link_stems()}
    shown = " ".join(exclude or ())
    on_question = {p.id: float(np.max(vectors[p.id].vectors @ picker)) >= ON_QUESTION for p in candidates}
    relevance = {p.id: p.dense_score + (0.15 * weigh(question, p) if on_question[p.id] else 0.0) for p in candidates}
    ranked = sorted(candidates, key=lambda p: -relevance[p.id])
    top = relevance[ranked[0].id]
    cue_bonus, words = cues().get(qtype or "", (0.0, ()))
    scored: list[tuple[float, int, int, float]] = []  # (score, passage rank, sentence index, cosine)
    for rank, p in enumerate(ranked):
        sv = vectors[p.id]
        sims = sv.vectors @ picker
        for i, sentence in enumerate(sv.sentences):
            if plain(sentence) in shown:
                continue
            low = f" {sentence.lower()} "
            bonus = cue_bonus if any(w in low for w in words) else 0.0
            # The question's rare words in the sentence itself: "knee" finds the one list that names knees.
            bonus += min(WORD_CAP, WORD_BONUS * sum(rare.get(t, 0.0) for t in set(tokenize(sentence))))
            scored.append((float(sims[i]) + bonus + 0.5 * (relevance[p.id] - top), rank, i, float(sims[i])))
    if not scored:
        return Composed(text="")
    scored.sort(key=lambda x: -x[0])
    _, first_rank, first_i, _ = scored[0]
    chosen = [(first_rank, first_i)]
    budget = max_words - _words(vectors[ranked[first_rank].id].sentences[first_i])
    # Support: the next sentences of the same passage that stay on the question, in the article's order.
    same = ranked[first_rank]
    sv = vectors[same.id]
    sims = sv.vectors @ picker
    for i in range(len(sv.sentences)):
        if i == first_i or plain(sv.sentences[i]) in shown or len(chosen) >= 3:
            continue
        close = sims[i] >= SUPPORT or (i == first_i + 1 and sims[i] >= ON_QUESTION)
        if close and _words(sv.sentences[i]) <= budget:
            chosen.append((first_rank, i))
            budget -= _words(sv.sentences[i])
    # One strong sentence from another passage, when there is room.
    for _score, rank, i, cos in scored[1:]:
        if len(chosen) >= 3 or rank == first_rank:
            continue
        if cos >= OTHER_PASSAGE and _words(vectors[ranked[rank].id].sentences[i]) <= budget and all(
                float(vectors[ranked[rank].id].vectors[i] @ vectors[ranked[r].id].vectors[j]) < 0.9
                for r, j in chosen):
            chosen.append((rank, i))
        break
    first, rest = chosen[0], sorted(chosen[1:])
    r, i = first
    if i > 0 and _ANAPHORA.match(vectors[ranked[r].id].sentences[i]):
        # "That makes it one of the largest..." needs the sentence it points back to, just before it.
        rest = [x for x in rest if x != (r, i - 1)]
        return _render(ranked, vectors, [(r, i - 1), first, *rest])
    return _render(ranked, vectors, [first, *rest])


def _words(sentence: str) -> int:
    return len(sentence.split())


def _render(pool: list[Passage], vectors: dict[str, SentenceVectors], chosen: list[tuple[int, int]]) -> Composed:
    sentences = [plain(vectors[pool[r].id].sentences[i]) for r, i in chosen]
    used: list[Passage] = []
    citations: list[Citation] = []
    for (r, _i), text in zip(chosen, sentences, strict=True):
        p = pool[r]
        if p.source in {c.source for c in citations}:
            continue
        used.append(p)
        citations.append(Citation(title=p.title, source=p.source, url=p.href, snippet=text[:200]))
    return Composed(text=" ".join(sentences), sentences=sentences, citations=citations, passages=used)
