"""The vector store: the only importer of chromadb (reads and writes it directly); embedded or server, in generations.

An ingest writes a whole new generation (unchanged vectors copied, never re-embedded) and then flips a
pointer, so a running server answers from a complete index until the new one is whole.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from bot import metrics
from bot.config import Settings
from bot.types import Passage

log = logging.getLogger(__name__)
T = TypeVar("T")

# Calls to the vector store made for a request run here, never on the event loop and never in asyncio's default
# pool: a Chroma server that stops answering ties up these threads only (until the HTTP timeout below), while
# each request waits at most INDEX_TIMEOUT for them and then answers without the index.
_IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="index-io")
# Socket timeout of the Chroma HTTP client (chromadb's own is none at all: a paused server held a thread forever).
# Longer than a request's budget: an ingest writes big batches.
CHROMA_HTTP_TIMEOUT = 30.0


async def run_index_call(fn: Callable[..., T], *args: Any, timeout: float) -> T:
    """Run a blocking vector-store call in the index threads; IndexUnavailable when it takes over `timeout` s."""
    loop = asyncio.get_running_loop()
    job = loop.run_in_executor(_IO, functools.partial(fn, *args))
    try:
        return await asyncio.wait_for(job, timeout)
    except TimeoutError as exc:  # the thread finishes (or times out) on its own; the request goes on without it
        metrics.DEPENDENCY_TIMEOUTS.labels("index").inc()
        raise IndexUnavailable(f"the vector store did not answer within {timeout:g} s") from exc

_COSINE = {"hnsw": {"space": "cosine"}}
# Embedded generations up to this size are searched exactly in memory (about 30 MB of vectors at the limit);
# larger ones, and every generation on a Chroma server (shared, and able to go away), are queried in Chroma.
IN_MEMORY_MAX = 20_000


class IndexUnavailable(Exception):
    """The vector store cannot be reached (a Chroma server that is down, a missing index)."""


@dataclass
class SentenceVectors:
    """A passage's sentences and their vectors, for the composer."""

    sentences: list[str]
    vectors: np.ndarray


@dataclass
class IndexReader:
    """One complete, published generation, opened for reading."""

    generation: str
    model: str
    built_at: str
    passages: list[Passage]
    _collection: Any  # the passages' chromadb collection
    _sentences: Any
    _sentence_cache: dict[str, SentenceVectors] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timeout = 2.0  # seconds a dense query may take inside a request (IndexStore sets INDEX_TIMEOUT)
        self.by_id = {p.id: p for p in self.passages}
        self.sentence_counts: dict[str, int] = {}  # passage id -> its sentence rows, where the index stored them
        self._ids: list[str] = []
        self._matrix: np.ndarray | None = None

    def hold_in_memory(self) -> None:
        """Keep this generation's passage vectors in memory for exact search (a published generation never
        changes, so the copy cannot go stale); used in embedded mode for corpora up to IN_MEMORY_MAX."""
        got = _get_all(self._collection, ["embeddings"])
        self._ids = list(got["ids"])
        self._matrix = np.asarray(got["embeddings"], dtype=np.float32).reshape(len(self._ids), -1)

    @property
    def count(self) -> int:
        """How many passages this generation holds."""
        return len(self.passages)

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest passages as (id, cosine similarity), best first."""
        if not self.passages:
            return []
        if self._matrix is not None:
            # Exact cosine over normalised vectors: 0.02 ms for this clinic's articles vs 0.6 ms per Chroma query.
            sims = self._matrix @ vector
            k = min(k, len(self._ids))
            top = np.argpartition(-sims, k - 1)[:k]
            return [(self._ids[i], float(sims[i])) for i in top[np.argsort(-sims[top])]]
        if _on_event_loop():
            # A caller on the event loop (it should use dense_async): at most `timeout` of a frozen loop, not the
            # HTTP timeout's.
            try:
                return _IO.submit(self._query, vector, k).result(timeout=self.timeout)
            except FuturesTimeout as exc:
                metrics.DEPENDENCY_TIMEOUTS.labels("index").inc()
                raise IndexUnavailable(f"the vector store did not answer within {self.timeout:g} s") from exc
        return self._query(vector, k)

    def _query(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        # The raw collection query, not LangChain's similarity_search_by_vector: that one also fetches
        # documents and metadata we already hold in memory, 0.5 ms per query measured here.
        try:
            got: Any = self._collection.query(query_embeddings=[vector], n_results=min(k, len(self.passages)),
                                                include=["distances"])
        except Exception as exc:  # a dead server or a broken segment must not become a 500
            raise IndexUnavailable(str(exc)) from exc
        # Chroma's cosine space returns distance = 1 - cosine.
        return [(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)
                if i in self.by_id]

    @property
    def remote(self) -> bool:
        """Whether a dense query goes over the network (a Chroma server, or a generation too big for memory)."""
        return self._matrix is None

    async def dense_async(self, vector: np.ndarray, k: int, timeout: float) -> list[tuple[str, float]]:
        """`dense` without blocking the event loop: in memory directly, otherwise in the index threads with a
        time limit (IndexUnavailable past it)."""
        if not self.remote or not self.passages:
            return self.dense(vector, k)
        return await run_index_call(self.dense, vector, k, timeout=timeout)

    async def sentence_vectors_async(self, ids: Sequence[str], timeout: float) -> dict[str, SentenceVectors]:
        """`sentence_vectors` without blocking the event loop; cached passages need no call at all."""
        if all(i in self._sentence_cache for i in ids):
            return {i: self._sentence_cache[i] for i in ids}
        return await run_index_call(self.sentence_vectors, ids, timeout=timeout)

    def sentence_vectors(self, ids: Sequence[str]) -> dict[str, SentenceVectors]:
        """Sentences and vectors of the given passages, fetched once per generation and cached."""
        missing = [i for i in ids if i not in self._sentence_cache]
        if missing:
            counted = [i for i in missing if i in self.sentence_counts]
            try:
                if len(counted) == len(missing):
                    # By id ("<passage id>:<n>"): a look-up per row, whatever the corpus size. A metadata filter
                    # scans the sentence rows and grew 4 -> 82 ms from 1k to 100k passages (README, scaling).
                    row_ids = [f"{pid}:{n}" for pid in missing for n in range(self.sentence_counts[pid])]
                    got: Any = self._sentences.get(ids=row_ids, include=["embeddings", "documents", "metadatas"])
                else:  # a generation written before the counts were stored
                    got = self._sentences.get(where={"pid": {"$in": missing}},
                                              include=["embeddings", "documents", "metadatas"])
            except Exception as exc:
                raise IndexUnavailable(str(exc)) from exc
            grouped: dict[str, list[tuple[int, str, Any]]] = {i: [] for i in missing}
            for doc, meta, vec in zip(got["documents"], got["metadatas"], got["embeddings"], strict=True):
                grouped.setdefault(str(meta["pid"]), []).append((int(meta["i"]), doc, vec))
            for pid, rows in grouped.items():
                rows.sort(key=lambda r: r[0])
                vecs = np.array([r[2] for r in rows], dtype=np.float32).reshape(len(rows), -1)
                self._sentence_cache[pid] = SentenceVectors([r[1] for r in rows], vecs)
        return {i: self._sentence_cache[i] for i in ids if i in self._sentence_cache}


class IndexWriter:
    """A generation being built; invisible to readers until `IndexStore.publish`."""

    def __init__(self, store: IndexStore, generation: str, model: str, client: Any) -> None:
        self.generation = generation
        self._store = store
        meta = {"model": model, "built_at": datetime.now(UTC).isoformat(timespec="seconds")}
        names = store.collection_names(generation)
        self._passages = client.get_or_create_collection(names[0], configuration=_COSINE, metadata=meta,
                                                         embedding_function=None)
        self._sentences = client.get_or_create_collection(names[1], configuration=_COSINE,
                                                          embedding_function=None)
        self._batch = max(1, int(client.get_max_batch_size()))

    def add_passages(self, passages: Sequence[Passage], vectors: np.ndarray,
                     sentence_counts: dict[str, int] | None = None) -> None:
        """Write passages with their vectors (and how many sentence rows each has, so a reader fetches a
        passage's sentences by id instead of filtering every sentence row)."""
        counts = sentence_counts or {}
        for s in range(0, len(passages), self._batch):
            chunk = passages[s : s + self._batch]
            self._passages.upsert(
                ids=[p.id for p in chunk], embeddings=vectors[s : s + self._batch],
                documents=[p.text for p in chunk],
                metadatas=[{"title": p.title, "section": p.section, "source": p.source, "url": p.url,
                            "order": s + n, **({"sentences": counts[p.id]} if p.id in counts else {})}
                           for n, p in enumerate(chunk)],
            )

    def add_sentences(self, rows: Sequence[tuple[str, int, str]], vectors: np.ndarray) -> None:
        """Write (passage id, position, sentence) rows with their vectors."""
        for s in range(0, len(rows), self._batch):
            chunk = rows[s : s + self._batch]
            self._sentences.upsert(
                ids=[f"{pid}:{i}" for pid, i, _ in chunk], embeddings=vectors[s : s + self._batch],
                documents=[t for _, _, t in chunk], metadatas=[{"pid": pid, "i": i} for pid, i, _ in chunk],
            )


class IndexStore:
    """Where generations live: folders under DATA_DIR/index, or collections on a Chroma server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = bool(settings.chroma_host)
        self.root = settings.data_dir / "index"
        self._lock = threading.Lock()
        self._server_client: Any = None

    # -- clients ---------------------------------------------------------------------------------
    def _client(self, generation: str) -> Any:
        if self.server:
            if self._server_client is None:
                try:
                    client = chromadb.HttpClient(
                        host=self.settings.chroma_host or "", port=self.settings.chroma_port,
                        settings=ChromaSettings(anonymized_telemetry=False))
                    _set_http_timeout(client, CHROMA_HTTP_TIMEOUT)
                    self._server_client = client
                except Exception as exc:
                    raise IndexUnavailable(f"Chroma server unreachable: {exc}") from exc
            return self._server_client
        path = self.root / generation
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))

    def collection_names(self, generation: str) -> tuple[str, str]:
        """The passage and sentence collection names of a generation."""
        if self.server:
            return f"{self.settings.collection}-{generation}-p", f"{self.settings.collection}-{generation}-s"
        return "passages", "sentences"

    # -- the pointer -----------------------------------------------------------------------------
    def current(self) -> str | None:
        """The published generation, or None before the first ingest."""
        if self.server:
            try:
                col = self._client("").get_or_create_collection(f"{self.settings.collection}-current",
                                                                embedding_function=None)
            except IndexUnavailable:
                raise
            except Exception as exc:
                self._server_client = None
                raise IndexUnavailable(str(exc)) from exc
            return (col.metadata or {}).get("generation") or None
        try:
            return (self.root / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def pointer_stamp(self) -> float:
        """A cheap value that changes when a new generation is published (embedded mode: CURRENT's mtime)."""
        if self.server:
            return time.monotonic() // 2  # server mode: look again every two seconds
        try:
            return os.stat(self.root / "CURRENT").st_mtime_ns
        except FileNotFoundError:
            return 0.0

    def publish(self, generation: str) -> None:
        """Make a complete generation the one readers use, atomically."""
        if self.server:
            col = self._client("").get_or_create_collection(f"{self.settings.collection}-current",
                                                            embedding_function=None)
            col.modify(metadata={"generation": generation})
            return
        tmp = self.root / f".CURRENT.{secrets.token_hex(4)}"
        tmp.write_text(generation + "\n")
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / "CURRENT")  # rename is atomic: readers see old or new, never half

    # -- generations -----------------------------------------------------------------------------
    def new_writer(self, model: str) -> IndexWriter:
        """Start a new generation."""
        generation = datetime.now(UTC).strftime("g%Y%m%d%H%M%S") + secrets.token_hex(3)
        return IndexWriter(self, generation, model, self._client(generation))

    def open_reader(self, generation: str) -> IndexReader:
        """Open a published generation and load its passages into memory (for BM25 and lookups)."""
        try:
            client = self._client(generation)
            pname, sname = self.collection_names(generation)
            # chromadb alone to read (no embedding function: vectors always come from our embedder); importing
            # LangChain's wrapper for this cost a second of every start.
            col = client.get_collection(pname, embedding_function=None)
            got = _get_all(col, ["documents", "metadatas"])
            sentences = client.get_collection(sname, embedding_function=None)
        except IndexUnavailable:
            raise
        except Exception as exc:
            raise IndexUnavailable(f"cannot open index generation {generation}: {exc}") from exc
        rows = sorted(zip(got["ids"], got["documents"], got["metadatas"], strict=True),
                      key=lambda r: (str(r[2].get("source")), int(r[2].get("order", 0))))
        passages = [Passage(id=i, text=d, title=str(m.get("title", "")), section=str(m.get("section", "")),
                            source=str(m.get("source", "")), url=str(m.get("url", "")))
                    for i, d, m in rows]
        meta = col.metadata or {}
        reader = IndexReader(generation, str(meta.get("model", "")), str(meta.get("built_at", "")),
                             passages, col, sentences)
        reader.sentence_counts = {i: int(m["sentences"]) for i, m in zip(got["ids"], got["metadatas"], strict=True)
                                  if m and m.get("sentences") is not None}
        reader.timeout = self.settings.index_timeout
        if not self.server and len(passages) <= IN_MEMORY_MAX:
            reader.hold_in_memory()
        return reader

    def existing_vectors(self, reader: IndexReader | None, ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already in a generation, so unchanged passages are copied instead of re-embedded."""
        ids = list(ids)
        if reader is None or not ids:
            return {}
        out: dict[str, np.ndarray] = {}
        for s in range(0, len(ids), 1000):
            got: Any = reader._collection.get(ids=ids[s : s + 1000], include=["embeddings"])
            out.update({i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"],
                                                                          strict=True)})
        return out

    def existing_sentences(self, reader: IndexReader | None, pids: Sequence[str]) -> dict[str, SentenceVectors]:
        """Sentence rows of passages already indexed, for copying."""
        if reader is None or not pids:
            return {}
        out: dict[str, SentenceVectors] = {}
        for s in range(0, len(pids), 200):
            out.update(reader.sentence_vectors(pids[s : s + 200]))
        return out

    def cleanup(self, keep: set[str]) -> list[str]:
        """Delete generations other than `keep` (the current and the previous one, still in use)."""
        removed: list[str] = []
        if self.server:
            client = self._client("")
            prefix = f"{self.settings.collection}-"
            for col in client.list_collections():
                name = col.name if hasattr(col, "name") else str(col)
                parts = name[len(prefix):].rsplit("-", 1)
                if name.startswith(prefix) and len(parts) == 2 and parts[0] not in keep and parts[1] in "ps":
                    client.delete_collection(name)
                    removed.append(parts[0])
            return sorted(set(removed))
        if not self.root.exists():
            return removed
        for path in self.root.iterdir():
            if path.is_dir() and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    def ping(self) -> bool:
        """Whether the store answers (always true when embedded)."""
        if not self.server:
            return True
        try:
            self._client("").heartbeat()
            return True
        except Exception:
            self._server_client = None
            return False

    def size_bytes(self) -> int:
        """Bytes on disk of the embedded index (0 for a server)."""
        if self.server or not self.root.exists():
            return 0
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _set_http_timeout(client: Any, seconds: float) -> None:
    """Give chromadb's HTTP session a timeout (it is created with none)."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(seconds, connect=min(seconds, 5.0))
    else:  # a chromadb upgrade moved it: say so rather than hang silently
        log.warning("cannot set the Chroma client's HTTP timeout (chromadb internals changed)")


def _get_all(collection: Any, include: list[str], page: int = 5000) -> dict[str, list[Any]]:
    """Every row of a collection, fetched in pages (one big `get` overflows SQLite's variable limit)."""
    out: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
    offset = 0
    while True:
        got: Any = collection.get(include=include, limit=page, offset=offset)
        out["ids"].extend(got["ids"])
        for key in include:
            out[key].extend(got[key] if got[key] is not None else [])
        if len(got["ids"]) < page:
            return out
        offset += page


def manifest(reader: IndexReader | None) -> dict[str, Any]:
    """A summary of a generation for /health and the CLI."""
    if reader is None:
        return {"generation": None, "passages": 0}
    return {"generation": reader.generation, "passages": reader.count, "built_at": reader.built_at,
            "model": reader.model, "sources": len({p.source for p in reader.passages})}


def dumps(obj: Any) -> str:
    """JSON for CLI output."""
    return json.dumps(obj, indent=2, default=str)
