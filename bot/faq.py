"""Staff FAQ entries and clinic details as live knowledge: the safety review, the in-memory index, the matcher.

Every worker keeps the published entries' vectors in memory and looks at the database's knowledge revision
once a second (`FaqLive.refresh`), so an entry published on one worker answers on every worker and channel
within about a second, without a re-ingest. Entries are few (hundreds at most): an exact cosine over them
costs microseconds, so they need no vector store of their own.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bot.faq_store import Content, KnowledgeStore, Published
from bot.retrieval import tokenize
from bot.types import Citation, Passage

log = logging.getLogger(__name__)
REVIEW_FILE = Path(__file__).with_name("understanding") / "review.yaml"
QUESTION_MAX, ANSWER_MAX, APPLIES_MAX = 300, 1500, 10
# The clinic details staff fill in, keyed by the understanding layer's fact slots; the question each answers
# (embedded, so a patient's wording that the slot model misses still finds it).
DETAILS: dict[str, tuple[str, str]] = {
    "hours": ("Opening hours", "What are your opening hours?"),
    "location": ("Address", "Where is the clinic? What is the address?"),
    "parking": ("Parking", "Where can I park?"),
    "wear_bring": ("What to wear or bring", "What should I wear or bring to my appointment?"),
    "cancellation": ("Cancellation policy", "What is your cancellation policy?"),
    "insurance": ("Insurance", "Do you take insurance?"),
    "price": ("Prices", "How much does a session cost?"),
    "payment": ("Payment options", "How can I pay?"),
    "first_visit": ("First visit", "What happens at a first visit?"),
    "duration": ("Session length", "How long is a session?"),
}
# A detail about money, opening times or insurance always needs a second person: a wrong one misleads patients.
ALWAYS_REVIEWED = ("price", "hours", "insurance", "payment")

# How an entry's match is scored: the best cosine to its question or an "applies to" phrase, nudged up when the
# understanding layer gives the message the same clinic-fact label as the entry's question (it has learned many
# wordings, Spanish too, from the example banks), and per shared topic word (two at most). Calibrated on
# tests/eval/faq_dev.yaml by `python -m tools.evaluate_faq --scan`.
SAME_FACT_BONUS = 0.35
WORD_BONUS = 0.05
# Stems that every clinic question shares: matching them says nothing about which entry is meant.
GENERIC = frozenset({"you", "your", "how", "what", "session", "appoint", "treatment", "clinic", "therapist",
                     "myofasci", "releas", "ok", "normal"})

# A draft being previewed by staff: the reply pipeline sees it as if it were published (this request only).
PREVIEW: contextvars.ContextVar[Published | None] = contextvars.ContextVar("faq_preview", default=None)


# -- the safety review ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _review_rules(path: Path = REVIEW_FILE) -> list[tuple[str, re.Pattern[str]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    def compile_(words: list[str], patterns: list[str]) -> re.Pattern[str]:
        parts = [r"\b" + re.escape(w[:-1]) + r"\w*" if w.endswith("*") else
                 r"(?<!\w)" + re.escape(w) + r"(?!\w)" for w in words]
        return re.compile("|".join(parts + list(patterns)), re.I)

    rules = [("medical claim", compile_(data["medical_claim"]["words"], data["medical_claim"]["patterns"]))]
    for fact, spec in data["clinic_fact"].items():
        rules.append((f"clinic fact: {fact}", compile_(spec["words"], spec["patterns"])))
    return rules


def review(content: Content, *, detail: str | None = None) -> list[str]:
    """Why this text needs a reviewer's approval ([] when it may publish at once): medical claims, or facts about
    prices, hours or insurance, quoted as found."""
    raw = " ".join([content.question, content.answer, *content.applies_to])
    # What patients read, too: Markdown markers or invisible characters inside a word ("c**ure**s", "cu\u200bres")
    # must not hide it from the review.
    visible = "".join(ch for ch in unicodedata.normalize("NFKC", raw) if unicodedata.category(ch) != "Cf")
    text = f"{raw} {visible} {plain_answer(visible)} {re.sub(r'[*_`~]', '', visible)}"
    reasons = []
    for name, pattern in _review_rules():
        found = sorted({m.group(0).strip().lower() for m in pattern.finditer(text)})
        if found:
            reasons.append(f"{name}: " + ", ".join(f"“{f}”" for f in found[:4]))
    if detail in ALWAYS_REVIEWED and not any(r.startswith(f"clinic fact: {detail}") for r in reasons):
        reasons.append(f"clinic fact: {detail}")
    return reasons


def validate(content: Content) -> str | None:
    """What is wrong with an entry (for a 422), or None."""
    if not content.question.strip() or not content.answer.strip():
        return "question and answer must both have some text"
    if len(content.question) > QUESTION_MAX:
        return f"question is {len(content.question)} characters; the limit is {QUESTION_MAX}"
    if len(content.answer) > ANSWER_MAX:
        return f"answer is {len(content.answer)} characters; the limit is {ANSWER_MAX}. Please shorten it."
    if len(content.applies_to) > APPLIES_MAX or any(len(a) > QUESTION_MAX for a in content.applies_to):
        return f"at most {APPLIES_MAX} 'applies to' phrases of up to {QUESTION_MAX} characters each"
    if "\x00" in content.question + content.answer + "".join(content.applies_to):
        return "text must not contain NUL characters"
    return None


# -- what a patient reads ------------------------------------------------------------------------------------------
# Bounded and bracket-free inside: "1[1[1[..." must not rescan the rest of the text from every "[" (quadratic).
_MD_LINK = re.compile(r"!?\[([^\[\]\n]{0,300})\]\(([^\s()]{1,500})\)")
_TAG_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.I | re.S)
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
# Line-start markers (headings, quotes, list bullets), and emphasis or code markers only in pairs around words:
# "snake_case", "2 * 3" and URLs keep their characters.
_MARKERS = re.compile(r"(?m)^[ \t]*(#{1,6}|>|[-*+]|\d+\.)[ \t]+")
_EMPHASIS = re.compile(r"(?<![\w*_`])(\*{1,3}|_{1,3}|`{1,3})(?=\S)([^\n]{1,300}?)(?<=\S)\1(?![\w*_`])")


def plain_answer(markdown: str) -> str:
    """The answer as plain text for every channel: no Markdown markers, no markup, links as "text (url)"."""
    text = _TAG.sub(" ", _TAG_BLOCK.sub(" ", markdown))
    text = _MD_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2), text)
    text = _MARKERS.sub("", text)
    for _ in range(3):  # nested emphasis ("***bold italic***", "**[link](url)**") unwraps one layer a pass
        text = _EMPHASIS.sub(r"\2", text)
    return re.sub(r"\s+", " ", text).strip()


def citation(item: Published) -> Citation:
    """How an answer from an entry is attributed: "Clinic FAQ: <question>", linking to its public page."""
    title = f"Clinic FAQ: {item.content.question}" if item.kind == "faq" else \
        f"Clinic details: {DETAILS.get(item.slug, (item.content.question,))[0]}"
    return Citation(title=title, source=f"faq/{item.slug}", url=f"/articles/faq/{item.slug}",
                    snippet=plain_answer(item.content.answer)[:200])


def passage(item: Published) -> Passage:
    """An entry as a passage (for traces and the composer's bookkeeping)."""
    c = citation(item)
    return Passage(id=f"faq:{item.entry_id}", text=plain_answer(item.content.answer), title=c.title, section="",
                   source=c.source)


def texts_to_embed(item: Published) -> list[str]:
    """What an entry is found by: its question, then each "applies to" phrase."""
    return [item.content.question, *item.content.applies_to]


# -- the index -----------------------------------------------------------------------------------------------------
@dataclass
class Hit:
    """The entry that answers a question, and how closely it matched."""

    item: Published
    score: float


def topic_words(text: str) -> frozenset[str]:
    """A text's word stems that can tell one entry from another."""
    return frozenset(tokenize(text)) - GENERIC


class FaqIndex:
    """Published entries' vectors in one matrix; a question's best entry is one matrix-vector product."""

    def __init__(self, items: list[Published]) -> None:
        self.items = [i for i in items if i.vectors is not None and len(i.vectors)]
        self._words = [topic_words(" ".join(texts_to_embed(i))) for i in self.items]
        self.details = {i.slug: i for i in items if i.kind == "fact"}
        rows = [i.vectors for i in self.items if i.vectors is not None]
        self._matrix = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 1), dtype=np.float32)
        self._owner = np.repeat(np.arange(len(self.items)), [len(r) for r in rows]) if rows else np.zeros(0, int)
        self._facts = np.array([i.fact or "" for i in self.items], dtype=object)

    def _scored(self, vector: np.ndarray, text: str, fact: str | None, floor: float | None) -> np.ndarray:
        """Each entry's match score; with `floor`, the word bonus is counted only where it could lift an entry
        to it (a tokenised comparison per entry would cost milliseconds at a few hundred entries)."""
        sims = self._matrix @ np.asarray(vector, dtype=np.float32)
        best = np.full(len(self.items), -1.0, dtype=np.float32)
        np.maximum.at(best, self._owner, sims)
        if fact is not None:
            best += SAME_FACT_BONUS * (self._facts == fact)
        if text:
            words = topic_words(text)
            reach = np.flatnonzero(best + 2 * WORD_BONUS >= floor) if floor is not None else range(len(self.items))
            for n in reach:
                best[n] += WORD_BONUS * min(len(words & self._words[n]), 2)
        return best

    def scores(self, vector: np.ndarray, text: str = "", fact: str | None = None) -> list[Hit]:
        """Every entry with its match score to the question (see SAME_FACT_BONUS), best first (for previews)."""
        if not self.items:
            return []
        best = self._scored(vector, text, fact, None)
        return [Hit(self.items[i], float(best[i])) for i in np.argsort(-best)]

    def match(self, vector: np.ndarray, threshold: float, text: str = "", fact: str | None = None) -> Hit | None:
        """The entry that answers this question, if one scores `threshold` or above."""
        if not self.items:
            return None
        best = self._scored(vector, text, fact, threshold)
        top = int(np.argmax(best))
        return Hit(self.items[top], float(best[top])) if best[top] >= threshold else None

    def detail(self, slot: str) -> Published | None:
        """The clinic's published answer for a fact slot ("hours", "price", ...), if it has given one."""
        return self.details.get(slot)


class FaqLive:
    """The index of what is published now; rebuilt when the database's knowledge revision moves."""

    def __init__(self, knowledge: KnowledgeStore | None, embedder: Any, threshold: float,
                 understander: Any = None) -> None:
        self.knowledge = knowledge
        self.embedder = embedder
        self.understander = understander
        self.threshold = threshold
        self._index = FaqIndex([])
        self._revision = -1
        self._lock = threading.Lock()

    @property
    def index(self) -> FaqIndex:
        """The live index, with a previewed draft in place of its published version (this request only)."""
        draft = PREVIEW.get()
        if draft is None:
            return self._index
        rest = [i for i in self._index.items if i.entry_id != draft.entry_id]
        rest += [i for i in self._index.details.values() if i.entry_id != draft.entry_id and i not in rest]
        return FaqIndex([*rest, draft])

    def match(self, vector: np.ndarray, text: str = "", fact: str | None = None) -> Hit | None:
        """The entry answering this question (its vector, words and fact label), if any."""
        return self.index.match(vector, self.threshold, text, fact)

    def detail(self, slot: str) -> Published | None:
        """The clinic detail for a fact slot, if published."""
        return self.index.detail(slot)

    def refresh(self, *, force: bool = False) -> bool:
        """Reload when something was published or withdrawn since the last look; True when it reloaded.

        Versions published without vectors (a crash between storing and embedding, or another model) are
        embedded here and written back: the database, not the index, is the source of truth.
        """
        if self.knowledge is None:
            return False
        with self._lock:
            revision = self.knowledge.revision()
            if revision == self._revision and not force:
                return False
            items = self.knowledge.published()
            for item in items:
                if item.vectors is not None and item.model == self.embedder.name:
                    self.label(item)
                    continue
                self.embed(item)
                try:
                    self.knowledge.set_vectors(item.version_id, item.vectors, self.embedder.name)
                except Exception as exc:  # the next worker or restart writes it; this one answers anyway
                    log.warning("could not store FAQ vectors: %s", type(exc).__name__)
            self._index = FaqIndex(items)
            self._revision = revision
            log.info("faq index loaded", extra={"faq": {"entries": len(items), "revision": revision}})
            return True

    def embed(self, item: Published) -> Published:
        """Give an entry its vectors (question and "applies to" phrases), in place."""
        item.vectors = np.asarray(self.embedder.embed(texts_to_embed(item)), dtype=np.float32)
        item.model = self.embedder.name
        return self.label(item)

    def label(self, item: Published) -> Published:
        """The clinic-fact label the understanding layer gives the entry's question, in place."""
        if self.understander is not None and item.vectors is not None:
            item.fact = self.understander.understand(item.content.question, item.vectors[0]).fact
        return item
