"""Ingest: idempotent, incremental, deletions, bad files, and readers never see a half-built index."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.index import IndexStore
from bot.indexing import ingest
from bot.retrieval import LiveRetriever
from tests.conftest import KNOWLEDGE, make_settings


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.name, self.dim, self.count = inner, inner.name, inner.dim, 0

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.count += len(texts)
        return self.inner.embed(texts)


@pytest.fixture
def kdir(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> IndexStore:
    return IndexStore(make_settings(tmp_path / "data"))


def test_second_run_embeds_nothing(kdir: Path, store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    counting = CountingEmbedder(embedder)
    first = ingest(kdir, store, counting, progress=False)
    assert first.added == first.passages > 10 and first.embedded == first.passages
    assert counting.count == first.embedded + first.sentences_embedded
    before = counting.count
    second = ingest(kdir, store, counting, progress=False)
    assert counting.count == before  # not one text embedded
    assert (second.embedded, second.added, second.updated, second.removed) == (0, 0, 0, 0)
    assert second.unchanged == first.passages and second.generation == first.generation
    assert "0 added" in second.summary() and "unchanged" in second.summary()


def test_edit_reembeds_only_changed_passages(kdir: Path, store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    ingest(kdir, store, embedder, progress=False)
    path = kdir / "psoas-muscle.md"
    path.write_text(path.read_text().replace("about 16 inches long", "about sixteen inches long"))
    counting = CountingEmbedder(embedder)
    report = ingest(kdir, store, counting, progress=False)
    assert (report.embedded, report.updated, report.added, report.removed) == (1, 1, 0, 0)
    assert report.sentences_embedded == 2  # the edited passage's two sentences, nothing else
    reader = store.open_reader(store.current() or "")
    assert any("sixteen inches" in p.text for p in reader.passages)
    assert not any("about 16 inches" in p.text for p in reader.passages)


def test_deleted_file_disappears_and_new_file_appears(kdir: Path, store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    first = ingest(kdir, store, embedder, progress=False)
    (kdir / "booking.md").unlink()
    (kdir / "new-article.md").write_text("---\ntitle: Stretching notes\n---\n\n## Gentle stretches\n\n"
                                         "Stretch slowly and breathe.\n")
    report = ingest(kdir, store, embedder, progress=False)
    reader = store.open_reader(store.current() or "")
    sources = {p.source for p in reader.passages}
    assert "booking.md" not in sources and "new-article.md" in sources
    assert report.removed >= 1 and report.added == 1 and report.embedded == 1
    # Old generations are cleaned up: only the current and the previous one stay on disk.
    gens = [p.name for p in store.root.iterdir() if p.is_dir()]
    assert set(gens) == {report.generation, first.generation}


def test_single_file_updates_only_that_file(kdir: Path, store: IndexStore, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ingest(kdir, store, embedder, progress=False)
    extra = tmp_path / "extra.txt"
    extra.write_text("Gift cards\n\nThis clinic article is only a test fixture about gift cards.\n")
    report = ingest(extra, store, embedder, progress=False)
    reader = store.open_reader(store.current() or "")
    sources = {p.source for p in reader.passages}
    assert {"extra.txt", "psoas-muscle.md", "booking.md"} <= sources
    assert report.removed == 0 and report.added >= 1


def test_bad_files_are_warned_and_rest_ingests(kdir: Path, store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    (kdir / "broken.md").write_bytes(b"\xff\xfe\x00\x01binary")
    (kdir / "empty.txt").write_text("")
    report = ingest(kdir, store, embedder, progress=False)
    assert len(report.warnings) == 2
    assert any("broken.md" in w for w in report.warnings) and any("empty.txt" in w for w in report.warnings)
    assert report.files == 4 and report.passages > 10


def test_readers_keep_the_old_index_until_the_new_one_is_whole(kdir: Path, store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    ingest(kdir, store, embedder, progress=False)
    live = LiveRetriever(store, 0.4)
    before = live.current()
    assert before is not None
    old_generation, old_count = before.reader.generation, before.reader.count
    (kdir / "extra.md").write_text("---\ntitle: Extra\n---\n\n## Extra\n\nA brand new passage about stretching.\n")
    reached, release = threading.Event(), threading.Event()

    def pause() -> None:  # called after loading, before anything is written
        reached.set()
        assert release.wait(30)

    worker = threading.Thread(target=lambda: ingest(kdir, store, embedder, progress=False, after_load=pause))
    worker.start()
    assert reached.wait(30)
    mid = live.current()
    assert mid is not None and mid.reader.generation == old_generation and mid.reader.count == old_count
    q = np.asarray(embedder.embed(["how long is the psoas"])[0])
    assert mid.search("how long is the psoas", q).passages[0].section == "How big the psoas is"
    release.set()
    worker.join(60)
    after = live.current()
    assert after is not None and after.reader.generation != old_generation
    assert after.reader.count == old_count + 1


def test_cli_ingest_prints_report(kdir: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATA_DIR": str(tmp_path / "cli-data"), "KNOWLEDGE_DIR": str(kdir)}
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "ingest.py", str(kdir)], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "added" in out.stdout and "unchanged" in out.stdout and " s" in out.stdout
    assert "embedding:" not in out.stderr  # no progress bar when not on a terminal
    again = subprocess.run([sys.executable, "-m", "bot", "ingest", "--json"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=300)
    import json

    data = json.loads(again.stdout)
    assert data["embedded"] == 0 and data["unchanged"] == data["passages"] > 0


def test_a_changed_embedding_model_re_embeds_the_articles_before_ready(data_dir: Path, embedder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Switching EMBEDDING_MODEL on an existing deployment: queries must never meet another model's vectors."""
    import bot.api
    from bot.api import Runtime
    from bot.config import load_clinic
    from bot.understanding import make_understander

    understander = make_understander(embedder, data_dir / "cache")
    monkeypatch.setattr(bot.api, "make_understander", lambda *_: understander)  # the index is what is under test
    renamed = CountingEmbedder(embedder)
    renamed.name = "another-model"
    runtime = Runtime(make_settings(data_dir), load_clinic(KNOWLEDGE))
    runtime.load(renamed)
    assert runtime.ready.is_set(), runtime.error
    current = runtime.retriever.current()
    assert current is not None and current.reader.model == "another-model"
    assert renamed.count >= len(current.reader.passages)  # every passage embedded again, by the new model
    if runtime.store is not None:
        runtime.store.close()


def test_the_same_embedding_model_starts_without_embedding_anything(data_dir: Path, embedder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import bot.api
    from bot.api import Runtime
    from bot.config import load_clinic
    from bot.understanding import make_understander

    understander = make_understander(embedder, data_dir / "cache")
    monkeypatch.setattr(bot.api, "make_understander", lambda *_: understander)
    counting = CountingEmbedder(embedder)
    runtime = Runtime(make_settings(data_dir), load_clinic(KNOWLEDGE))
    runtime.load(counting)
    assert runtime.ready.is_set(), runtime.error
    assert counting.count == 1  # the warm-up only: the published generation is this model's
    if runtime.store is not None:
        runtime.store.close()


def test_sentences_are_fetched_by_id_the_same_as_by_filter(kdir: Path, store: IndexStore, embedder) -> None:  # type: ignore[no-untyped-def]
    """The by-id fetch (constant per passage) returns exactly what the metadata filter (a scan) returned."""
    ingest(kdir, store, embedder, progress=False)
    reader = store.open_reader(store.current() or "")
    ids = [p.id for p in reader.passages[:5]]
    assert set(reader.sentence_counts) == set(reader.by_id) and all(reader.sentence_counts[i] > 0 for i in ids)
    by_id = reader.sentence_vectors(ids)
    legacy = store.open_reader(reader.generation)
    legacy.sentence_counts = {}  # as a generation written before the counts were stored
    by_filter = legacy.sentence_vectors(ids)
    for i in ids:
        assert by_id[i].sentences == by_filter[i].sentences
        assert np.array_equal(by_id[i].vectors, by_filter[i].vectors)
        assert len(by_id[i].sentences) == reader.sentence_counts[i]
