"""The ingest pipeline: documents -> passages -> embeddings -> a new index generation, reported."""

from __future__ import annotations

import fcntl
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bot.documents import embedding_text, load_passages
from bot.embeddings import Embedder
from bot.index import IndexReader, IndexStore, SentenceVectors
from bot.sentences import split_sentences
from bot.types import Passage

log = logging.getLogger(__name__)
BATCH = 64


@dataclass
class IngestReport:
    """What an ingest did, in numbers."""

    files: int = 0
    passages: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    sentences_embedded: int = 0
    seconds: float = 0.0
    generation: str | None = None
    published: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        return (f"ingest: {self.files} files, {self.passages} passages: {self.added} added, "
                f"{self.updated} updated, {self.removed} removed, {self.unchanged} unchanged; "
                f"embedded {self.embedded} passages and {self.sentences_embedded} sentences "
                f"in {self.seconds:.2f} s")

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-able data."""
        return asdict(self)


@contextmanager
def _ingest_lock(root: Path) -> Iterator[None]:
    # Two ingests at once would race on the pointer; the second waits for the first.
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".ingest.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _embed(embedder: Embedder, texts: Sequence[str], bar: tqdm | None) -> np.ndarray:
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for s in range(0, len(texts), BATCH):
        out[s : s + BATCH] = embedder.embed(texts[s : s + BATCH])
        if bar is not None:
            bar.update(len(texts[s : s + BATCH]))
    return out


def _diff(old: Sequence[Passage], new: Sequence[Passage], report: IngestReport) -> None:
    """Count per source: a changed passage in a file that already existed counts as updated."""
    old_ids, new_ids = {p.id for p in old}, {p.id for p in new}
    gone = Counter(p.source for p in old if p.id not in new_ids)
    came = Counter(p.source for p in new if p.id not in old_ids)
    report.unchanged = len(old_ids & new_ids)
    for source in set(gone) | set(came):
        paired = min(gone[source], came[source])
        report.updated += paired
        report.removed += gone[source] - paired
        report.added += came[source] - paired


def ingest(path: Path, store: IndexStore, embedder: Embedder, *, progress: bool | None = None,
           after_load: Callable[[], None] | None = None) -> IngestReport:
    """Mirror `path` (a folder, or one file to update) into a new generation; embed only what changed."""
    started = time.perf_counter()
    report = IngestReport()
    if progress is None:
        progress = sys.stderr.isatty()
    with _ingest_lock(store.root):
        loaded, sources, report.warnings = load_passages(path)
        for w in report.warnings:
            log.warning(w)
        current = store.current()
        reader: IndexReader | None = store.open_reader(current) if current else None
        old = reader.passages if reader else []
        if path.is_file() and reader is not None:
            # One file updates its own passages and leaves the rest of the index as it is.
            loaded = [p for p in old if p.source not in sources] + loaded
        report.files = len({p.source for p in loaded}) if path.is_file() else len(sources)
        report.passages = len(loaded)
        _diff(old, loaded, report)
        same_model = reader is not None and reader.model == embedder.name
        if same_model and {p.id for p in old} == {p.id for p in loaded}:
            report.generation = current
            report.seconds = time.perf_counter() - started
            return report
        if after_load:
            after_load()
        copy_from = reader if same_model else None
        vectors = store.existing_vectors(copy_from, [p.id for p in loaded])
        todo = [p for p in loaded if p.id not in vectors]
        old_sentences = store.existing_sentences(copy_from, [p.id for p in loaded if p.id in vectors])
        rows: list[tuple[str, int, str]] = []
        fresh_rows: list[int] = []
        for p in loaded:
            known = old_sentences.get(p.id)
            for i, sentence in enumerate(known.sentences if known else split_sentences(p.text)):
                if not known:
                    fresh_rows.append(len(rows))
                rows.append((p.id, i, sentence))
        # The new generation exists from here on; until it is published no reader looks at it, and a crash
        # leaves only a folder (or collections) that the next ingest removes.
        writer = store.new_writer(embedder.name)
        total = len(todo) + len(fresh_rows)
        bar = tqdm(total=total, desc="embedding", unit="text", disable=not progress or total == 0)
        new_vecs = _embed(embedder, [embedding_text(p) for p in todo], bar)
        vectors.update({p.id: v for p, v in zip(todo, new_vecs, strict=True)})
        svecs = np.zeros((len(rows), embedder.dim), dtype=np.float32)
        if fresh_rows:
            svecs[fresh_rows] = _embed(embedder, [rows[i][2] for i in fresh_rows], bar)
        _fill_known(rows, svecs, old_sentences)
        bar.close()
        writer.add_passages(loaded, np.stack([vectors[p.id] for p in loaded]) if loaded else
                            np.zeros((0, embedder.dim), dtype=np.float32),
                            {**dict.fromkeys((p.id for p in loaded), 0), **Counter(pid for pid, _, _ in rows)})
        writer.add_sentences(rows, svecs)
        store.publish(writer.generation)
        store.cleanup({writer.generation} | ({current} if current else set()))
        report.embedded, report.sentences_embedded = len(todo), len(fresh_rows)
        report.generation, report.published = writer.generation, True
    report.seconds = time.perf_counter() - started
    log.info("ingest done", extra={"ingest": {k: v for k, v in report.as_dict().items() if k != "warnings"}})
    return report


def _fill_known(rows: list[tuple[str, int, str]], svecs: np.ndarray, known: dict[str, SentenceVectors]) -> None:
    for n, (pid, i, _) in enumerate(rows):
        if pid in known:
            svecs[n] = known[pid].vectors[i]
