"""`python -m tools.bench_roundtrips`: what one /chat costs in each dependency, embedded against production.

Per request the service opens the session and stores the exchange (the database), asks the vector store for the
nearest passages, and checks the rate limit (Redis when REDIS_URL is set). Each is timed alone here, one call at a
time, on SQLite / in-memory search and on PostgreSQL / a real `chroma run` / Redis, all on this machine, so the
production set-up's extra cost per request can be read off (p50 and p95 in ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from bot.embeddings import make_embedder
from bot.index import IndexStore
from bot.indexing import ingest
from bot.store import Store
from tools.bench_scale import _start_chroma

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def _time(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(10):
        fn()
    laps = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        laps.append((time.perf_counter() - t) * 1000)
    laps.sort()
    return statistics.median(laps), laps[int(0.95 * (len(laps) - 1))]


def _store_exchange(store: Store) -> Callable[[], None]:
    def one() -> None:
        session = store.open_session(None, "web")
        store.record_exchange(session.id, "web", "what is the psoas", "answer", "The psoas is ...")
    return one


def main() -> None:
    """Print each dependency's per-request cost, embedded beside production."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="roundtrips-"))
    try:
        sqlite = Store(f"sqlite:///{tmp / 'bot.sqlite3'}")
        sqlite.migrate()
        rows.append(("session + exchange", "SQLite", *_time(_store_exchange(sqlite), args.n)))
        pg = Store(PG)
        pg.migrate()
        rows.append(("session + exchange", "PostgreSQL", *_time(_store_exchange(pg), args.n)))
        rows.append(("  of which: ping", "PostgreSQL", *_time(pg.ping, args.n)))

        embedder = make_embedder(Settings(_env_file=None))  # type: ignore[call-arg]
        vec = np.asarray(embedder.embed(["what is the psoas"])[0], dtype=np.float32)
        local = IndexStore(Settings(_env_file=None, data_dir=tmp / "embedded"))  # type: ignore[call-arg]
        ingest(ROOT / "knowledge", local, embedder, progress=False)
        reader = local.open_reader(local.current() or "")
        rows.append(("nearest passages", "in memory", *_time(lambda: reader.dense(vec, 20), args.n)))
        proc, port, chroma_dir = _start_chroma()
        try:
            remote = IndexStore(Settings(_env_file=None, data_dir=tmp / "server",  # type: ignore[call-arg]
                                         chroma_host="127.0.0.1", chroma_port=port, collection="roundtrips"))
            ingest(ROOT / "knowledge", remote, embedder, progress=False)
            rreader = remote.open_reader(remote.current() or "")
            rows.append(("nearest passages", "Chroma server", *_time(lambda: rreader.dense(vec, 20), args.n)))
            rows.append(("  of which: heartbeat", "Chroma server", *_time(remote.ping, args.n)))
        finally:
            proc.terminate()
            shutil.rmtree(chroma_dir, ignore_errors=True)
        rows.append(("rate-limit check", "in memory", 0.0, 0.0))
        try:
            import redis.asyncio as aioredis

            client = aioredis.from_url(REDIS)
            loop = asyncio.new_event_loop()

            def incr() -> None:
                loop.run_until_complete(client.incr("bench:roundtrip"))
            rows.append(("rate-limit (1 Redis trip)", "Redis", *_time(incr, args.n)))
            loop.run_until_complete(client.aclose())
            loop.close()
        except Exception as exc:  # no Redis here: say so instead of a figure
            rows.append((f"rate-limit check (Redis unavailable: {type(exc).__name__})", "Redis", float("nan"),
                         float("nan")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'per request':<28}{'where':<16}{'p50 ms':>9}{'p95 ms':>9}")
    for what, where, p50, p95 in rows:
        print(f"{what:<28}{where:<16}{p50:>9.2f}{p95:>9.2f}")


if __name__ == "__main__":
    main()
