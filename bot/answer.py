"""The extractive composer: an answer made only of the retrieved passages' own sentences, attributed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from bot.index import SentenceVectors
from bot.retrieval import Retrieval, tokenize
from bot.types import Citation, Passage

MAX_SENTENCES = 3
MAX_CHARS = 520
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


def compose(question: str, qvec: np.ndarray, retrieval: Retrieval,
            vectors: dict[str, SentenceVectors], max_sentences: int = MAX_SENTENCES) -> Composed:
    """Pick the few sentences that best answer the question, keep them readable, attribute them."""
    top = retrieval.passages[0].dense_score if retrieval.passages else 0.0
    pool = [p for n, p in enumerate(retrieval.passages[:3]) if n == 0 or p.dense_score >= top - 0.12]
    qtokens = set(tokenize(question))
    scored: list[tuple[float, int, int]] = []  # (score, passage index, sentence index)
    for pn, p in enumerate(pool):
        sv = vectors.get(p.id)
        if sv is None or not sv.sentences:
            continue
        sims = sv.vectors @ qvec
        for si, sentence in enumerate(sv.sentences):
            overlap = len(qtokens & set(tokenize(sentence)))
            scored.append((float(sims[si]) + 0.03 * min(overlap, 3) + (0.02 if pn == 0 else 0.0), pn, si))
    if not scored:
        return Composed(text="")
    scored.sort(reverse=True)
    best = scored[0][0]
    chosen: list[tuple[int, int]] = []
    chosen_vecs: list[np.ndarray] = []
    for score, pn, si in scored:
        if len(chosen) >= max_sentences or (chosen and score < max(best - 0.12, 0.25)):
            break
        vec = vectors[pool[pn].id].vectors[si]
        if any(float(vec @ v) > 0.92 for v in chosen_vecs):
            continue
        chosen.append((pn, si))
        chosen_vecs.append(vec)
    # Pull in the sentence a chosen one depends on, so no reply starts mid-thought.
    for pn, si in list(chosen):
        if si > 0 and (pn, si - 1) not in chosen and _ANAPHORA.match(vectors[pool[pn].id].sentences[si]):
            chosen.append((pn, si - 1))
    chosen.sort()
    return _render(pool, vectors, chosen)


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
        citations.append(Citation(title=title, source=first.source, url=first.url, snippet=texts[0][:200]))
    return Composed(text=" ".join(parts), sentences=sentences, citations=citations, passages=used)
