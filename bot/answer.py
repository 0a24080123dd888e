"""The extractive composer: an answer made only of the retrieved passages' own sentences, attributed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bot.index import SentenceVectors
from bot.retrieval import Retrieval
from bot.types import Citation, Passage

MAX_SENTENCES = 4
MAX_CHARS = 520
# A sentence this close to the question (cosine) is about it; below, a shared word is likely a coincidence.
ON_QUESTION = 0.3
# A sentence that leans on the one before it ("It then crosses...") is not shown without it.
_ANAPHORA = re.compile(r"^(it|its|this|that|these|those|they|their|there|then|from there|because of this|"
                       r"together|such|he|she|also|so|which)\b", re.I)
_MARKDOWN = re.compile(r"(\*\*|__|`|^#+\s*|\[(?=[^\]]*\]\()|\]\([^)]*\))", re.M)

# A question about a price, a time, a duration or a name needs a sentence that holds one.
SLOT_PATTERNS: dict[str, re.Pattern[str]] = {
    "price": re.compile(r"(\$\s?\d|\b\d+\s?(dollars|usd)\b)", re.I),
    "hours": re.compile(r"\b(\d{1,2}(:\d\d)?\s?(am|pm|a\.m\.|p\.m\.)|open (daily|weekdays|from))\b", re.I),
    "duration": re.compile(r"\b\d+\s?(-\s?\d+\s?)?(minutes?|mins?|hours?|hrs?)\b", re.I),
    "insurance": re.compile(r"\b(insurance|medicare|medicaid|hsa|fsa)\b", re.I),
    "parking": re.compile(r"\bpark(ing)?\b", re.I),
    "staff": re.compile(r"\b(therapist|practitioner|owner)s? (is|are|named)\s+[A-Z][a-z]+", re.I),
    "location": re.compile(r"\b\d{1,5}\s+\w+(\s\w+)?\s(street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|"
                           r"lane|ln|way|highway|hwy)\b", re.I),
    "payment": re.compile(r"\b(credit cards?|cash|checks?|venmo|paypal|payment plans?)\b", re.I),
    "cancellation": re.compile(r"\bcancel(lation|ling)?\b.{0,40}\b(hours?|days?|fee|notice)\b", re.I),
}
# Discounts, free sessions and availability are never promised from an article.
ALWAYS_HANDOFF = {"discount", "availability"}


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


def article_phrase(title: str) -> str:
    """'The psoas muscle' -> 'our article on the psoas muscle'."""
    t = title.strip()
    if len(t) > 1 and t[0].isupper() and t[1:2].islower():
        t = t[0].lower() + t[1:]
    return f"our article on {t}"


def holds_slot(slot: str, passages: list[Passage]) -> bool:
    """Whether any passage states the kind of fact asked for (a price, hours, a duration, a name...)."""
    if slot in ALWAYS_HANDOFF:
        return False
    pattern = SLOT_PATTERNS.get(slot)
    return pattern is not None and any(pattern.search(p.text) for p in passages)


def compose(question: str, qvec: np.ndarray, retrieval: Retrieval, vectors: dict[str, SentenceVectors],
            rare_weight: Callable[[str, Passage], float] | None = None, focus: np.ndarray | None = None,
            max_sentences: int = MAX_SENTENCES) -> Composed:
    """Show the most relevant passage in its own order (readable), plus one strong sentence from another.

    Relevance = the passage's cosine + 0.15 per rare query word it holds (lexical evidence that a
    question about "headaches" wants the passage that says "headaches"), counted only when one of the
    passage's sentences is on the question. `focus` is the patient's own words when the question was
    rewritten from a follow-up: it picks the sentences.
    """
    candidates = [p for p in retrieval.passages[:5] if p.id in vectors and vectors[p.id].sentences]
    if not candidates:
        return Composed(text="")
    weigh = rare_weight or (lambda _q, _p: 0.0)
    picker = focus if focus is not None else qvec
    # Rare words are evidence only in a passage that has a sentence on the question: "deep" in "deep fears"
    # says nothing to "is it rough like deep tissue".
    on_question = {p.id: float(np.max(vectors[p.id].vectors @ picker)) >= ON_QUESTION for p in candidates}
    relevance = {p.id: p.dense_score + (0.15 * weigh(question, p) if on_question[p.id] else 0.0) for p in candidates}
    ranked = sorted(candidates, key=lambda p: -relevance[p.id])
    best = ranked[0]
    sv = vectors[best.id]
    sims = sv.vectors @ picker
    chosen = [(0, i) for i in _window(sv.sentences, int(np.argmax(sims)), max_sentences)]
    pool = [best]
    # One more sentence from another passage when that passage is nearly as relevant and the sentence strong.
    for other in ranked[1:3]:
        if relevance[other.id] < relevance[best.id] - 0.06:
            break
        osv = vectors[other.id]
        osims = osv.vectors @ picker
        j = int(np.argmax(osims))
        if osims[j] >= 0.5 and not _ANAPHORA.match(osv.sentences[j]) and all(
                float(osv.vectors[j] @ sv.vectors[i]) < 0.9 for _, i in chosen):
            pool.append(other)
            chosen.append((len(pool) - 1, j))
            break
    return _render(pool, vectors, chosen)


def _window(sentences: list[str], best: int, limit: int) -> list[int]:
    """Sentence indexes to show, in order: the whole passage when short, else a run around the best one."""
    if sum(len(s) for s in sentences[:limit]) <= MAX_CHARS and best < limit:
        return list(range(min(limit, len(sentences))))
    start = best - 1 if best > 0 and _ANAPHORA.match(sentences[best]) else best
    out: list[int] = []
    size = 0
    for i in range(start, len(sentences)):
        if out and (len(out) >= limit or size + len(sentences[i]) > MAX_CHARS):
            break
        out.append(i)
        size += len(sentences[i])
    return out


def _render(pool: list[Passage], vectors: dict[str, SentenceVectors], chosen: list[tuple[int, int]]) -> Composed:
    by_title: dict[str, list[tuple[Passage, str]]] = {}
    for pn, si in chosen:
        p = pool[pn]
        by_title.setdefault(p.title, []).append((p, plain(vectors[p.id].sentences[si])))
    parts: list[str] = []
    sentences: list[str] = []
    citations: list[Citation] = []
    used: list[Passage] = []
    for n, (title, rows) in enumerate(by_title.items()):
        texts = [s for _, s in rows]
        budget = MAX_CHARS - sum(len(x) for x in sentences)
        while len(texts) > 1 and sum(len(t) for t in texts) > budget:
            texts.pop()
        lead = article_phrase(title)
        lead = (lead[0].upper() + lead[1:] + " explains: ") if n == 0 else f"And {lead} adds: "
        parts.append(lead + " ".join(texts))
        sentences.extend(texts)
        first = rows[0][0]
        used.extend(p for p, _ in rows if p not in used)
        citations.append(Citation(title=title, source=first.source, url=first.href, snippet=texts[0][:200]))
    return Composed(text=" ".join(parts), sentences=sentences, citations=citations, passages=used)
