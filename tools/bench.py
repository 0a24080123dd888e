"""`python -m tools.bench`: the figures the README quotes, measured on this machine, printed in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings, get_settings
from tools.synthetic import distinct_questions, synthetic_corpus


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def bench_core(settings: Settings, quick: bool) -> dict[str, Any]:
    """Floor, retrieval latency, ingest timings and re-ingest of an unchanged corpus."""
    from bot.embeddings import make_embedder
    from bot.index import IndexStore
    from bot.indexing import ingest
    from bot.retrieval import Retriever

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    embedder = make_embedder(settings)
    embedder.embed(["warm up"])
    out["model_load_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        s = settings.model_copy(update={"data_dir": Path(tmp) / "data", "chroma_host": None})
        store = IndexStore(s)
        report = ingest(settings.knowledge_dir, store, embedder, progress=False)
        out["ingest_knowledge_s"] = report.seconds
        out["knowledge_passages"] = report.passages
        again = ingest(settings.knowledge_dir, store, embedder, progress=False)
        out["reingest_knowledge_s"], out["reingest_knowledge_embedded"] = again.seconds, again.embedded
        reader = store.open_reader(store.current() or "")
        retriever = Retriever(reader, settings.grounded_threshold)
        col = reader._collection
        questions = distinct_questions(100 if quick else 400)
        floor, full = [], []
        for q in questions:
            t = time.perf_counter()
            vec = embedder.embed([q])[0]
            col.query(query_embeddings=[vec], n_results=5, include=["distances"])
            floor.append((time.perf_counter() - t) * 1000)
        for q in questions:
            t = time.perf_counter()
            retriever.search(q, embedder.embed([q])[0], k=5)
            full.append((time.perf_counter() - t) * 1000)
        out["floor_p50_ms"], out["floor_p95_ms"] = pct(floor, 50), pct(floor, 95)
        out["retrieval_p50_ms"], out["retrieval_p95_ms"] = pct(full, 50), pct(full, 95)
        synth = Path(tmp) / "synthetic"
        synthetic_corpus(synth, 1000)
        s2 = settings.model_copy(update={"data_dir": Path(tmp) / "data-synth", "chroma_host": None})
        store2 = IndexStore(s2)
        r1 = ingest(synth, store2, embedder, progress=False)
        r2 = ingest(synth, store2, embedder, progress=False)
        out["ingest_1k_s"], out["ingest_1k_passages"] = r1.seconds, r1.passages
        out["reingest_1k_s"], out["reingest_1k_embedded"] = r2.seconds, r2.embedded
    return out


class Server:
    """`python -m bot serve` on a free port, timed from spawn to a 200 on /health."""

    def __init__(self, data_dir: Path, workers: int = 1, env: dict[str, str] | None = None,
                 module: str = "bot") -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self.log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)  # noqa: SIM115
        cmd = ([sys.executable, "-m", "bot", "serve", "--port", str(self.port), "--workers", str(workers)]
               if module == "bot" else [sys.executable, "-m", module, "--port", str(self.port)])
        self.proc = subprocess.Popen(
            cmd,
            # The load comes from one address standing in for many patients: lift the per-client limit.
            env={**os.environ, "DATA_DIR": str(data_dir), "RATE_LIMIT_CHAT": "10000000/minute", **(env or {})},
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180) -> float:
        """Seconds from spawn to ready."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(Path(self.log.name).read_text()[-3000:])
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError("server not ready")

    def rss_mb(self) -> float:
        """Resident memory of the server and its workers, in MB."""
        total = 0
        pids = [self.proc.pid]
        try:
            kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
            pids += [int(k) for k in kids]
        except OSError:
            pass
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def stop(self) -> None:
        """Stop it."""
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def load(url: str, questions: list[str], concurrency: int) -> dict[str, Any]:
    """POST /chat for every question with `concurrency` in flight; latencies and errors."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            q = queue.get_nowait()
            t = time.perf_counter()
            try:
                async with session.post(url + "/chat", json={"message": q}) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        errors += 1
                        continue
                    kind = json.loads(body)["kind"]
                    kinds[kind] = kinds.get(kind, 0) + 1
            except Exception:
                errors += 1
                continue
            latencies.append((time.perf_counter() - t) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": len(questions), "errors": errors, "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95),
            "p99_ms": pct(latencies, 99), "rps": len(questions) / elapsed, "kinds": kinds}


def warm_understanding(embedder: Any, data: Path) -> None:
    """The understanding model trained and cached in DATA_DIR, as after the first start: cold start is a restart."""
    from bot.understanding import make_understander

    make_understander(embedder, data / "cache")


def bench_naive(quick: bool, n32: int | None = None) -> dict[str, Any]:
    """The naive LangChain bot (tools/naive_bot.py) under the same load as the project, for the side-by-side."""
    server = Server(Path(tempfile.gettempdir()), module="tools.naive_bot", env={"HF_HUB_OFFLINE": "1"})
    out: dict[str, Any] = {}
    try:
        out["cold_start_s"] = server.wait()
        n = n32 or (2000 if not quick else 400)
        questions = distinct_questions(330 + n, seed=11)
        asyncio.run(load(server.url, questions[:30], 4))
        out["c1"] = asyncio.run(load(server.url, questions[30:330] if not quick else questions[30:130], 1))
        out["c32"] = asyncio.run(load(server.url, questions[330:330 + n], 32))
        out["server_rss_mb"] = server.rss_mb()
    finally:
        server.stop()
    return out


def bench_chat(settings: Settings, quick: bool, workers: int = 1, n32: int | None = None) -> dict[str, Any]:
    """Cold start, then /chat over HTTP at concurrency 1 and 32 with distinct questions."""
    from bot.embeddings import make_embedder
    from bot.index import IndexStore
    from bot.indexing import ingest

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        embedder = make_embedder(settings)
        ingest(settings.knowledge_dir, IndexStore(settings.model_copy(update={"data_dir": data, "chroma_host": None})),
               embedder, progress=False)
        warm_understanding(embedder, data)
        server = Server(data, workers=workers)
        try:
            out["cold_start_s"] = server.wait()
            n = n32 or (2000 if not quick else 400)
            questions = distinct_questions(330 + n, seed=11)
            warm = asyncio.run(load(server.url, questions[:30], 4))
            out["warmup_errors"] = warm["errors"]
            c1 = asyncio.run(load(server.url, questions[30:330] if not quick else questions[30:130], 1))
            c32 = asyncio.run(load(server.url, questions[330:330 + n], 32))
            out["c1"], out["c32"] = c1, c32
            out["server_rss_mb"] = server.rss_mb()
        finally:
            server.stop()
    return out


PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")


def bench_prod(settings: Settings, quick: bool, workers: int = 2) -> dict[str, Any]:
    """The production set-up on this machine: a Chroma server, PostgreSQL and Redis, `--workers 2`, under the load
    the embedded default gets (16 and 32 connections), with each service's per-request cost counted."""
    import psycopg

    from bot.embeddings import make_embedder
    from bot.index import IndexStore
    from bot.indexing import ingest
    from tools.bench_scale import _start_chroma

    chroma, port, chroma_dir = _start_chroma()
    db = f"bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
    out: dict[str, Any] = {"workers": workers}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            remote = settings.model_copy(update={"data_dir": data, "chroma_host": "127.0.0.1", "chroma_port": port})
            embedder = make_embedder(settings)
            ingest(settings.knowledge_dir, IndexStore(remote), embedder, progress=False)
            warm_understanding(embedder, data)
            url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{db}"
            env = {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(port), "DATABASE_URL": url, "REDIS_URL": REDIS}
            server = Server(data, workers=workers, env=env)
            try:
                out["cold_start_s"] = server.wait()
                n = 400 if quick else 2000
                questions = distinct_questions(60 + 2 * n, seed=13)
                asyncio.run(load(server.url, questions[:60], 4))
                out["c16"] = asyncio.run(load(server.url, questions[60:60 + n], 16))
                out["c32"] = asyncio.run(load(server.url, questions[60 + n:60 + 2 * n], 32))
                out["server_rss_mb"] = server.rss_mb()
            finally:
                server.stop()
    finally:
        chroma.terminate()
        chroma.wait(20)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        import shutil

        shutil.rmtree(chroma_dir, ignore_errors=True)
    return out


def main(args: argparse.Namespace) -> int:
    """Run the benchmark parts and print a table."""
    settings = get_settings()
    parts = set((args.only or "core,chat,load,prod,scale").split(","))
    results: dict[str, Any] = {"embedding_model": settings.embedding_model, "cpus": os.cpu_count()}
    if "core" in parts:
        results["core"] = bench_core(settings, args.quick)
    if "chat" in parts:
        # The same questions, the same load, one after the other in one run: the project, then the naive bot.
        results["chat"] = bench_chat(settings, args.quick)
        results["naive"] = bench_naive(args.quick)
    if "load" in parts:
        results["load"] = bench_chat(settings, args.quick, workers=2, n32=5000 if not args.quick else 500)
    if "prod" in parts:
        results["prod"] = bench_prod(settings, args.quick)
    if "scale" in parts:
        from tools.bench_scale import bench_scale

        results["scale"] = bench_scale(settings, args.quick)
    results["peak_rss_mb_bench_process"] = peak_rss_mb()
    print_report(results)
    out = Path(settings.data_dir) / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"\n(raw figures in {out})")
    return 0


def print_report(r: dict[str, Any]) -> None:
    """Human-readable table of whatever was measured."""
    print(f"embedding model: {r['embedding_model']}   cpus: {r['cpus']}")
    core = r.get("core")
    if core:
        print("\n== core ==")
        print(f"floor (1 query embedding + 1 Chroma query)   p50 {core['floor_p50_ms']:.2f} ms  "
              f"p95 {core['floor_p95_ms']:.2f} ms")
        print(f"retrieval (embed + hybrid dense+BM25)         p50 {core['retrieval_p50_ms']:.2f} ms  "
              f"p95 {core['retrieval_p95_ms']:.2f} ms")
        print(f"ingest knowledge/ ({core['knowledge_passages']} passages)          {core['ingest_knowledge_s']:.2f} s; "
              f"unchanged re-ingest {core['reingest_knowledge_s']:.3f} s, "
              f"embedded {core['reingest_knowledge_embedded']}")
        print(f"ingest synthetic {core['ingest_1k_passages']} passages            {core['ingest_1k_s']:.2f} s; "
              f"unchanged re-ingest {core['reingest_1k_s']:.3f} s, embedded {core['reingest_1k_embedded']}")
        print(f"model load                                    {core['model_load_s']:.2f} s")
    for name in ("chat", "load"):
        chat = r.get(name)
        if not chat:
            continue
        label = "/chat over HTTP, 1 worker" if name == "chat" else "/chat load, --workers 2"
        print(f"\n== {label} ==")
        print(f"cold start to ready (spawn -> /health 200)    {chat['cold_start_s']:.2f} s")
        for c in ("c1", "c32"):
            d = chat[c]
            print(f"concurrency {c[1:]:>2}: {d['requests']} requests, {d['errors']} errors, p50 {d['p50_ms']:.2f} ms, "
                  f"p95 {d['p95_ms']:.2f} ms, p99 {d.get('p99_ms', float('nan')):.2f} ms, {d['rps']:.1f} req/s  "
                  f"kinds {d['kinds']}")
        if core and name == "chat":
            print(f"/chat p50 / floor p50 = {chat['c1']['p50_ms'] / core['floor_p50_ms']:.2f}x")
        print(f"server peak RSS                               {chat['server_rss_mb']:.0f} MB")
    prod = r.get("prod")
    if prod:
        print(f"\n== production set-up: Chroma server + PostgreSQL + Redis, --workers {prod['workers']} ==")
        print(f"cold start to ready (spawn -> /health 200)    {prod['cold_start_s']:.2f} s")
        for c in ("c16", "c32"):
            d = prod[c]
            print(f"concurrency {c[1:]:>2}: {d['requests']} requests, {d['errors']} errors, p50 {d['p50_ms']:.2f} ms, "
                  f"p95 {d['p95_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms, {d['rps']:.1f} req/s")
        if r.get("load"):
            print(f"c32 throughput vs embedded --workers 2: {prod['c32']['rps'] / r['load']['c32']['rps']:.0%}")
    naive, chat = r.get("naive"), r.get("chat")
    if naive and chat:
        print("\n== side by side: this project (1 worker) vs the naive LangChain bot (tools/naive_bot.py) ==")
        print(f"{'':28}{'project':>12}{'naive':>12}{'ratio':>10}")
        rows = [("cold start s", chat["cold_start_s"], naive["cold_start_s"]),
                ("c1 p50 ms", chat["c1"]["p50_ms"], naive["c1"]["p50_ms"]),
                ("c1 p95 ms", chat["c1"]["p95_ms"], naive["c1"]["p95_ms"]),
                ("c32 req/s", chat["c32"]["rps"], naive["c32"]["rps"]),
                ("c32 p99 ms", chat["c32"]["p99_ms"], naive["c32"]["p99_ms"]),
                ("peak RSS MB", chat["server_rss_mb"], naive["server_rss_mb"])]
        for name, ours, theirs in rows:
            print(f"{name:28}{ours:>12.2f}{theirs:>12.2f}{ours / theirs:>9.2f}x")
        print(f"errors: project {chat['c1']['errors'] + chat['c32']['errors']}, "
              f"naive {naive['c1']['errors'] + naive['c32']['errors']}")
    if r.get("scale"):
        from tools.bench_scale import print_scale

        print_scale(r["scale"])
    print(f"\npeak RSS of the bench process                 {r['peak_rss_mb_bench_process']:.0f} MB")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options of `python -m tools.bench`."""
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=main.__doc__)
    p.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    p.add_argument("--only", default="", help="comma-separated parts: core,chat,load,prod,scale")
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main(parse_args()))
