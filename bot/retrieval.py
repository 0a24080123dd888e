"""Hybrid retrieval: dense (Chroma) + lexical (BM25) fused by reciprocal rank, with a grounded signal."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import bm25s
import numpy as np
import Stemmer
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from bot.index import IndexReader, run_index_call
from bot.types import Passage

# bm25s sets its own logger to DEBUG on import and logs every index build: keep it to warnings.
logging.getLogger("bm25s").setLevel(logging.WARNING)
log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 20
# Spelling correction, BM25 and fusion run here when called from the event loop (CPU work, a few ms at most).
_CPU = ThreadPoolExecutor(max_workers=2, thread_name_prefix="retrieval")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Question and chat words that say nothing about a topic ("how do you even SAY psoas").
_STOP = set(bm25s.stopwords.STOPWORDS_EN) | {
    "tell", "know", "please", "thanks", "hi", "hello", "want", "like", "would", "could", "can", "does", "do",
    "did", "much", "say", "said", "get", "got", "make", "go", "going", "use", "used", "need", "think", "even",
    "really", "mean", "explain", "describe", "anything", "something", "thing", "things", "lot", "also", "ok",
    "okay", "yes", "hey", "im", "ive", "dont", "doesnt", "cant", "wondering", "question", "help", "just", "about",
    "besides", "actually", "usually", "maybe", "anyway"}
_stemmer = Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-case words without stop words, before stemming (what spelling correction compares)."""
    return [w for w in _TOKEN.findall(text.lower().replace("’", "'")) if w not in _STOP and len(w) > 1]


def tokenize(text: str) -> list[str]:
    """Lower-case word stems without stop words; the same for passages and queries."""
    return _stemmer.stemWords(words(text))


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours needed to turn `a` into `b`."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _swapped(a: str, b: str) -> bool:
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    return (len(a) == len(b) and len(diff) == 2 and diff[1] == diff[0] + 1
            and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]]))


class Speller:
    """Closest vocabulary word to a misspelled one, by rapidfuzz over an index of the vocabulary itself.

    Nothing is cached per query: the only keys held are the corpus's own words (grouped by first letter, and by
    all-but-the-first letter for a lost first letter), so patients' words leave memory with their request. At
    20k words a look-up compares against one first-letter group in C++ (difflib over every stem took 60-67 ms).
    """

    def __init__(self, vocab: Iterable[str]) -> None:
        self.vocab = set(vocab)
        groups: dict[str, list[str]] = defaultdict(list)
        for w in sorted(self.vocab):
            groups[w[0]].append(w)
        self._by_initial = dict(groups)
        self._by_tail = {w[1:]: w for w in sorted(self.vocab, reverse=True) if len(w) > 4}

    def closest(self, token: str) -> str | None:
        """The vocabulary word one slip away (two in a long word), or None.

        A typo is one slip in a word of four letters or more ("psaos", "releese"; two in a long one), and rarely a
        new first letter: two edits, or a new first letter, turn one real word into another ("tight" -> "thigh",
        "right"; "longer" -> "long").
        """
        if len(token) < 4:
            return None
        allowed = 1 if len(token) < 8 else 2
        found = process.extract(token, self._by_initial.get(token[0], ()), scorer=OSA.distance,
                                score_cutoff=allowed, limit=8)
        candidates = [(int(d), c) for c, d, _ in found]
        for c in (self._by_tail.get(token), token[1:]):  # "soas" -> "psoas"; "ppsoas" -> "psoas"
            if c and c in self.vocab:
                candidates.append((OSA.distance(token, c), c))
        for dist, c in sorted(candidates, key=lambda dc: (dc[0], -fuzz.ratio(token, dc[1]), dc[1])):
            # A swap of neighbours ("psao" -> "psoa") is one slip, though it scores low on the ratio.
            near = fuzz.ratio(token, c) >= 80 or _swapped(token, c)
            same_start = token[0] == c[0] or token == c[1:] or token[1:] == c
            if near and same_start and dist <= allowed and c != token:
                return c
        return None


@dataclass
class Retrieval:
    """The passages for a query, best first, and whether they are good enough to answer from."""

    passages: list[Passage]
    grounded: bool
    confidence: float
    dense_top: float
    lexical_hits: int
    ms: float


class LexicalIndex:
    """BM25 over one generation's passages, with spelling correction against its own vocabulary."""

    def __init__(self, passages: list[Passage]) -> None:
        self.ids = [p.id for p in passages]
        docs = [tokenize(f"{p.title} {p.section} {p.text}") for p in passages]
        self._tokens = {p.id: set(d) for p, d in zip(passages, docs, strict=True)}
        self.vocab = sorted({t for d in docs for t in d})
        self._vocab_set = set(self.vocab)
        self._df = {t: 0 for t in self.vocab}
        for d in docs:
            for t in set(d):
                self._df[t] += 1
        self._bm25 = bm25s.BM25()
        if passages:
            self._bm25.index(docs, show_progress=False)
        self._lock = threading.Lock()
        # The corpus's words before stemming, and the stem of each: a typo is corrected as the word it is
        # ("tightnes" -> "tightness" -> "tight"), not as its stem ("tightn", which matches nothing).
        surface = {w for p in passages for w in words(f"{p.title} {p.section} {p.text}")}
        self._stem_of = dict(zip(sorted(surface), _stemmer.stemWords(sorted(surface)), strict=True))
        self._words = Speller(surface)
        self._stems = Speller(self.vocab)

    def terms(self, query: str) -> list[str]:
        """The query's stems, each misspelled word first corrected against the corpus's own words."""
        out = []
        for w, stem in zip(ws := words(query), _stemmer.stemWords(ws), strict=True):
            if stem in self._vocab_set:
                out.append(stem)
                continue
            fixed = self._words.closest(w)
            if fixed is not None:
                out.append(self._stem_of[fixed])
            else:
                out.extend(self.correct([stem]))
        return out

    def correct(self, tokens: list[str]) -> list[str]:
        """Map misspelled stems onto the corpus's stems ("psao" -> "psoa"); unknown ones are dropped."""
        out = []
        for t in tokens:
            fixed = t if t in self._vocab_set else self._stems.closest(t)
            if fixed:
                out.append(fixed)
        return out

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top-k (id, BM25 score) for a query; empty when no query word is in the corpus."""
        tokens = self.terms(query)
        if not tokens or not self.ids:
            return []
        with self._lock:  # bm25s keeps per-call state; one query at a time
            scores = self._bm25.get_scores(tokens)
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def _passage_tokens(self, passage: Passage) -> set[str]:
        known = self._tokens.get(passage.id)
        return known if known is not None else set(tokenize(f"{passage.title} {passage.section} {passage.text}"))

    def rare_weight(self, query: str, passage: Passage) -> float:
        """Evidence from the query's words in a passage: 1 per rare word (in at most 2 passages), 1/3 per
        word in under half of them; common words say nothing about which passage answers."""
        tokens = set(self.terms(query))
        ptoks = self._passage_tokens(passage)
        half = max(1, len(self.ids) // 2)
        weight = 0.0
        for t in tokens & ptoks:
            df = self._df.get(t, 0)
            weight += 1.0 if df <= 2 else (1 / 3 if df <= half else 0.0)
        return weight

    def query_weights(self, query: str) -> dict[str, float]:
        """The query's word stems with their evidence weight (1 rare, 1/3 uncommon, common words left out)."""
        half = max(1, len(self.ids) // 2)
        weights: dict[str, float] = {}
        for t in set(self.correct(tokenize(query))):
            df = self._df.get(t, 0)
            if 0 < df <= half:
                weights[t] = 1.0 if df <= 2 else 1 / 3
        return weights

    def informative_hits(self, query: str, passage: Passage) -> int:
        """How many of the query's rarer words (in under half the passages) the passage contains."""
        tokens = set(self.terms(query))
        if not tokens:
            return 0
        ptoks = self._passage_tokens(passage)
        limit = max(1, len(self.ids) // 2)
        return sum(1 for t in tokens if t in ptoks and self._df.get(t, 0) <= limit)


class Retriever:
    """Hybrid search over the current generation."""

    def __init__(self, reader: IndexReader, grounded_threshold: float) -> None:
        self.reader = reader
        self.lexical = LexicalIndex(reader.passages)
        self.threshold = grounded_threshold

    def lexical_candidates(self, query: str) -> list[tuple[str, float]]:
        """The BM25 half of a search, which needs no vector (the pipeline runs it while embedding)."""
        return self.lexical.search(query, CANDIDATES)

    async def lexical_candidates_async(self, query: str) -> list[tuple[str, float]]:
        """`lexical_candidates` in the retrieval thread: spelling correction and BM25 never hold the event loop."""
        return await asyncio.get_running_loop().run_in_executor(_CPU, self.lexical_candidates, query)

    async def search_async(self, query: str, vector: np.ndarray | None, k: int = 5, mode: str = "hybrid",
                           lexical: list[tuple[str, float]] | None = None, *, timeout: float = 2.0) -> Retrieval:
        """`search` for the event loop: the dense query (a Chroma server's) runs in the index threads within
        `timeout` seconds (IndexUnavailable past it), BM25 and fusion in the retrieval thread."""
        dense: list[tuple[str, float]] = []
        if mode != "bm25" and vector is not None:
            dense = await self.reader.dense_async(vector, CANDIDATES, timeout)
        return await asyncio.get_running_loop().run_in_executor(
            _CPU, lambda: self.search(query, vector, k, mode, lexical, dense=dense))

    def search(self, query: str, vector: np.ndarray | None, k: int = 5, mode: str = "hybrid",
               lexical: list[tuple[str, float]] | None = None,
               dense: list[tuple[str, float]] | None = None) -> Retrieval:
        """Fuse dense and BM25 rankings; `mode` is hybrid, dense or bm25 (for the evaluation). `dense`: the dense
        ranking when the caller already has it (search_async)."""
        started = time.perf_counter()
        if dense is None:
            dense = self.reader.dense(vector, CANDIDATES) if mode != "bm25" and vector is not None else []
        if mode == "dense":
            lexical = []
        elif lexical is None:
            lexical = self.lexical.search(query, CANDIDATES)
        fused: dict[str, float] = {}
        for ranking in (dense, lexical):
            for rank, (pid, _) in enumerate(ranking):
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank + 1)
        dense_by = dict(dense)
        bm25_by = dict(lexical)
        order = sorted(fused, key=lambda i: (-fused[i], -dense_by.get(i, 0.0)))[:k]
        best = 2.0 / (RRF_K + 1)
        passages = [replace(self.reader.by_id[i], score=round(fused[i] / best, 4),
                            dense_score=round(dense_by.get(i, 0.0), 4), bm25_score=round(bm25_by.get(i, 0.0), 4))
                    for i in order]
        dense_top = max(dense_by.values(), default=0.0)
        hits = self.lexical.informative_hits(query, passages[0]) if passages else 0
        confidence = self.confidence(dense_top, hits) if mode != "bm25" else min(1.0, 0.25 * hits)
        return Retrieval(passages, confidence >= self.threshold, confidence, dense_top, hits,
                         (time.perf_counter() - started) * 1000)

    @staticmethod
    def confidence(dense_top: float, informative_hits: int) -> float:
        """Calibrated grounding score: the best cosine, nudged up when rare query words match too."""
        return dense_top + 0.05 * min(informative_hits, 2)


class LiveRetriever:
    """The retriever of the published generation; notices a new one and swaps only once it is open."""

    def __init__(self, store: object, grounded_threshold: float) -> None:
        from bot.index import IndexStore

        assert isinstance(store, IndexStore)
        self.store = store
        self.threshold = grounded_threshold
        self._retriever: Retriever | None = None
        self._stamp: float | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def current(self) -> Retriever | None:
        """The retriever to use now (None before the first ingest); reloads when the pointer moved.

        On a Chroma server, once a generation is open, the pointer is re-read in the background (one index
        thread at a time) and the open generation keeps answering meanwhile: a server that hangs never holds the
        caller. Raises IndexUnavailable when the store cannot be read and nothing is open yet.
        """
        stamp = self.store.pointer_stamp()
        if stamp == self._stamp:
            return self._retriever
        if self.store.server and self._retriever is not None:
            if self._refreshing.acquire(blocking=False):
                try:
                    from bot.index import _IO

                    _IO.submit(self._refresh, stamp)
                except BaseException:
                    self._refreshing.release()
                    raise
            return self._retriever
        self.reload(stamp)
        return self._retriever

    def _refresh(self, stamp: float) -> None:
        try:
            self.reload(stamp)
        except Exception as exc:  # the open generation keeps answering; the next look tries again
            log.warning("index pointer refresh failed: %s", type(exc).__name__)
        finally:
            self._refreshing.release()

    async def current_async(self, timeout: float = 2.0) -> Retriever | None:
        """`current` for the event loop: any store read runs in the index threads within `timeout` seconds
        (IndexUnavailable past it); an open generation on a server is returned at once (see `current`)."""
        if self._retriever is not None and (self.store.server or self.store.pointer_stamp() == self._stamp):
            return self.current()
        return await run_index_call(self.current, timeout=timeout)

    def reload(self, stamp: float | None = None) -> None:
        """Open the published generation; the old retriever keeps serving until the new one is ready."""
        with self._lock:
            stamp = self.store.pointer_stamp() if stamp is None else stamp
            if stamp == self._stamp and self._retriever is not None:
                return
            generation = self.store.current()
            if generation is None:
                self._stamp = stamp
                return
            if self._retriever is None or self._retriever.reader.generation != generation:
                self._retriever = Retriever(self.store.open_reader(generation), self.threshold)
            self._stamp = stamp
