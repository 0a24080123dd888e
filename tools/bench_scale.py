"""How cost grows with the corpus: ingest, disk, memory and retrieval latency at 1k, 10k, 100k passages."""

from __future__ import annotations

import gc
import random
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from tools.synthetic import WORDS


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _passages(n: int, seed: int) -> list[Any]:
    from bot.types import Passage

    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                        for _ in range(3)) + f" Reference {i}."
        out.append(Passage(id=f"p{i:07d}", text=text, title=f"Synthetic {i // 50}", section=f"Note {i}",
                           source=f"synthetic-{i // 50:05d}.md"))
    return out


def _vectors(embedder: Any, passages: list[Any], real: bool, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Real embeddings (timed) or, past the real-embedding budget, random unit vectors (time extrapolated)."""
    from bot.documents import embedding_text

    if real:
        t = time.perf_counter()
        vecs = np.concatenate([embedder.embed([embedding_text(p) for p in passages[s:s + 64]])
                               for s in range(0, len(passages), 64)])
        return vecs, time.perf_counter() - t
    vecs = rng.standard_normal((len(passages), embedder.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs, float("nan")


def _one_size(settings: Settings, embedder: Any, n: int, real_limit: int, server: str | None,
              rate: float | None) -> dict[str, Any]:
    from bot.index import IndexStore
    from bot.retrieval import Retriever

    rng = np.random.default_rng(n)
    tmp = Path(tempfile.mkdtemp(prefix=f"scale-{n}-"))
    try:
        s = settings.model_copy(update={"data_dir": tmp, "chroma_host": server.split(":")[0] if server else None,
                                        "chroma_port": int(server.split(":")[1]) if server else settings.chroma_port,
                                        "collection": f"scale{n}"})
        store = IndexStore(s)
        passages = _passages(n, seed=n)
        real = n <= real_limit
        vecs, embed_s = _vectors(embedder, passages, real, rng)
        rss_before = _current_rss_mb()
        t = time.perf_counter()
        writer = store.new_writer(embedder.name)
        writer.add_passages(passages, vecs)
        writer.add_sentences([], np.zeros((0, embedder.dim), dtype=np.float32))
        store.publish(writer.generation)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        retriever = Retriever(store.open_reader(writer.generation), settings.grounded_threshold)
        open_s = time.perf_counter() - t
        queries = [" ".join(random.Random(i).choice(WORDS) for _ in range(5)) for i in range(200)]
        qvecs = embedder.embed(queries)
        lat: dict[str, list[float]] = {"dense": [], "bm25": [], "hybrid": []}
        for mode in lat:
            for q, v in zip(queries, qvecs, strict=True):
                t = time.perf_counter()
                retriever.search(q, v, k=5, mode=mode)
                lat[mode].append((time.perf_counter() - t) * 1000)
        if rate is None and real:
            rate = n / embed_s
        ingest_s = (embed_s if real else n / (rate or 1)) + write_s
        row = {"passages": n, "mode": "server" if server else "embedded", "real_embeddings": real,
               "ingest_s": ingest_s, "embed_s": embed_s if real else n / (rate or 1), "write_s": write_s,
               "open_s": open_s, "disk_mb": _du_mb(tmp) if not server else None,
               "rss_growth_mb": _current_rss_mb() - rss_before}
        for mode, values in lat.items():
            row[f"{mode}_p50_ms"] = float(np.percentile(values, 50))
            row[f"{mode}_p95_ms"] = float(np.percentile(values, 95))
        if server:
            store.cleanup(set())
        del retriever
        gc.collect()
        return row | {"rate": rate}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def bench_scale(settings: Settings, quick: bool) -> dict[str, Any]:
    """Rows for each corpus size, embedded and over a real Chroma server."""
    from bot.embeddings import make_embedder

    embedder = make_embedder(settings)
    sizes = [1000, 10000] if quick else [1000, 10000, 100000]
    real_limit = 1000 if quick else 10000
    rows: list[dict[str, Any]] = []
    rate = None
    for n in sizes:
        row = _one_size(settings, embedder, n, real_limit, None, rate)
        rate = row.pop("rate")
        rows.append(row)
    server = _start_chroma()
    try:
        for n in sizes:
            row = _one_size(settings, embedder, n, 0, f"127.0.0.1:{server[1]}", rate)
            row.pop("rate")
            rows.append(row)
    finally:
        server[0].terminate()
        server[0].wait(20)
        shutil.rmtree(server[2], ignore_errors=True)
    plot = _plot(rows, Path("docs/scaling.png"))
    return {"rows": rows, "embed_rate_per_s": rate, "plot": str(plot) if plot else None,
            "note": f"passage vectors only (no sentence vectors); real embeddings up to {real_limit} passages, "
                    f"beyond that random unit vectors, with embedding time extrapolated from the measured rate; "
                    f"1M passages not run: about 3 GB of vectors plus index, and ~2.5 h of embedding here"}


def _start_chroma() -> tuple[subprocess.Popen[bytes], int, Path]:
    import socket
    import sys

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = Path(tempfile.mkdtemp(prefix="chroma-bench-"))
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                return proc, port, path
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("chroma server did not start")


def _plot(rows: list[dict[str, Any]], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for mode in ("embedded", "server"):
        sub = [r for r in rows if r["mode"] == mode]
        xs = [r["passages"] for r in sub]
        for kind in ("dense", "bm25", "hybrid"):
            axes[0].plot(xs, [r[f"{kind}_p50_ms"] for r in sub], marker="o", label=f"{kind} ({mode})")
        axes[1].plot(xs, [r["ingest_s"] for r in sub], marker="o", label=f"ingest ({mode})")
    for ax, title, unit in ((axes[0], "retrieval p50", "ms"), (axes[1], "ingest time", "s")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passages")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def print_scale(scale: dict[str, Any]) -> None:
    """The scale table."""
    print("\n== how cost grows ==")
    print(scale["note"])
    head = (f"{'passages':>9} {'mode':>8} {'ingest s':>9} {'disk MB':>8} {'RSS+ MB':>8} "
            f"{'dense p50/p95':>14} {'bm25 p50/p95':>14} {'hybrid p50/p95':>15}")
    print(head)
    for r in scale["rows"]:
        disk = f"{r['disk_mb']:.0f}" if r["disk_mb"] is not None else "-"
        print(f"{r['passages']:>9} {r['mode']:>8} {r['ingest_s']:>9.1f} {disk:>8} {r['rss_growth_mb']:>8.0f} "
              f"{r['dense_p50_ms']:>6.2f}/{r['dense_p95_ms']:<7.2f} {r['bm25_p50_ms']:>6.2f}/{r['bm25_p95_ms']:<7.2f} "
              f"{r['hybrid_p50_ms']:>6.2f}/{r['hybrid_p95_ms']:<8.2f}")
    if scale.get("plot"):
        print(f"plot: {scale['plot']}")
