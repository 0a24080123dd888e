"""`python -m tools.bench_scale`: how cost grows with the corpus, through the real pipeline.

For each size (the clinic's own 17 passages, then the articles plus synthetic passages up to 1k, 10k and 100k) and
for the Chroma server at 10k, with the configured embedder (EMBEDDING_MODEL, int8 ONNX by default):

- ingest: the real `bot.indexing.ingest` (Markdown, splitting, passage *and* sentence vectors, Chroma writes) in a
  fresh process; the index's size on disk afterwards;
- serving: a fresh process loads the Runtime as `bot serve` does (index open, BM25 built, understanding model),
  answers distinct questions one at a time through `Chatbot.respond` (whole-reply p50/p95), then reports its RSS;
  per-stage times (BM25, vector query, sentence vectors) show what grows with the corpus.

Synthetic passages are three sentences from a fixed pool of article-like sentences (`tools.synthetic`): every
passage is a distinct text with its own vector, the sentence vectors are the pool's. Vectors are kept in a cache
on disk with the model seconds each one cost, so a re-run, a larger size or the server run re-uses them and ingest
time is reported as (ingest wall time outside the model) + (model time every vector cost when it was computed).
Past `--real-limit` passages (10k), a passage missing from the cache gets the normalised mean of its sentences'
real vectors instead of a model call, charged at the mean measured cost of a passage: embedding 100k passages
for real takes over an hour on this machine. The run prints how many vectors were approximated and how close the
approximation is to the real vector where both exist.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SIZES = [17, 1000, 10000, 100000]
SERVER_SIZES = [10000]
CACHE = Path(tempfile.gettempdir()) / "bench_scale_vectors"


# -- process memory ---------------------------------------------------------------------------------------------
def _status_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


# -- vectors: a disk cache that remembers what each one cost ----------------------------------------------------
class VectorCache:
    """Vectors by (model, text), with the model seconds each cost; real vectors only."""

    def __init__(self, folder: Path, model: str) -> None:
        self.path = folder / f"{model}.npz"
        self.vecs: dict[str, np.ndarray] = {}
        self.secs: dict[str, float] = {}
        self.added = 0
        if self.path.exists():
            got = np.load(self.path)
            for k, v, s in zip(got["keys"], got["vecs"], got["secs"], strict=True):
                self.vecs[str(k)], self.secs[str(k)] = v, float(s)

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def save(self) -> None:
        if not self.added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vecs)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vecs=np.stack([self.vecs[k] for k in keys]),
                 secs=np.array([self.secs[k] for k in keys]))
        os.replace(tmp, self.path)


class MeteredEmbedder:
    """The real embedder behind the cache: counts the model seconds every returned vector cost and the wall time
    spent in here, so ingest time = (ingest wall - time in here) + model seconds charged."""

    def __init__(self, inner: Any, cache: VectorCache, approximate: bool) -> None:
        self.inner, self.cache, self.approximate = inner, cache, approximate
        self.name, self.dim = inner.name, inner.dim
        self.charged = self.inside = 0.0
        self.real = self.cached = self.approximated = 0
        self.passage_cost = [0.0, 0]  # model seconds of real synthetic passages, and how many
        self.approx_cos: list[float] = []

    def _pieces(self, text: str) -> list[str]:
        from bot.sentences import split_sentences

        return [s for s in split_sentences(text) if VectorCache.key(s) in self.cache.vecs]

    def _mean_of(self, pieces: list[str]) -> np.ndarray:
        v = np.mean([self.cache.vecs[VectorCache.key(s)] for s in pieces], axis=0)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keys = [VectorCache.key(t) for t in texts]
        missing = []
        for n, (t, k) in enumerate(zip(texts, keys, strict=True)):
            if k in self.cache.vecs:
                out[n] = self.cache.vecs[k]
                self.charged += self.cache.secs[k]
                self.cached += 1
                pieces = self._pieces(t) if t.startswith("Synthetic ") else []
                if len(pieces) >= 3:  # a synthetic passage: its cost, and how far the approximation would be
                    self.passage_cost[0] += self.cache.secs[k]
                    self.passage_cost[1] += 1
                    if len(self.approx_cos) < 2000:
                        self.approx_cos.append(float(self._mean_of(pieces[-3:]) @ out[n]))
            elif self.approximate and t.startswith("Synthetic ") and len(pieces := self._pieces(t)) >= 3:
                out[n] = self._mean_of(pieces[-3:])
                self.charged += self.passage_cost[0] / max(1, int(self.passage_cost[1]))
                self.approximated += 1
            else:
                missing.append(n)
        if missing:
            began = time.perf_counter()
            vecs = self.inner.embed([texts[n] for n in missing])
            each = (time.perf_counter() - began) / len(missing)
            for n, v in zip(missing, vecs, strict=True):
                out[n] = v
                self.cache.vecs[keys[n]], self.cache.secs[keys[n]] = v, each
                if texts[n].startswith("Synthetic "):
                    self.passage_cost[0] += each
                    self.passage_cost[1] += 1
            self.charged += each * len(missing)
            self.real += len(missing)
            self.cache.added += len(missing)
        self.inside += time.perf_counter() - started
        return out


# -- corpora ----------------------------------------------------------------------------------------------------
def _knowledge(settings: Settings, folder: Path, total: int) -> int:
    """The clinic's articles (and clinic.toml, glossary) plus synthetic passages up to `total`; passages written."""
    from bot.documents import load_passages
    from tools.synthetic import pooled_corpus, sentence_pool

    shutil.copytree(settings.knowledge_dir, folder)
    real = len(load_passages(folder)[0])
    if total > real:
        pooled_corpus(folder / "synthetic", total - real, sentence_pool())
    return max(total, real)


# -- the two child phases ---------------------------------------------------------------------------------------
def _settings(work: Path, chroma: str | None) -> Settings:
    from bot.config import get_settings

    update: dict[str, Any] = {"data_dir": work / "data", "knowledge_dir": work / "knowledge", "collection": "scale"}
    if chroma:
        host, port = chroma.split(":")
        update |= {"chroma_host": host, "chroma_port": int(port)}
    return get_settings().model_copy(update=update)


def child_ingest(work: Path, chroma: str | None, approximate: bool, cache_dir: Path) -> dict[str, Any]:
    """Ingest the knowledge folder into a fresh index; times, vector accounting, size on disk."""
    from bot.embeddings import make_embedder
    from bot.index import IndexStore
    from bot.indexing import ingest

    settings = _settings(work, chroma)
    inner = make_embedder(settings)
    inner.embed(["warm up"])
    cache = VectorCache(cache_dir, inner.name)
    emb = MeteredEmbedder(inner, cache, approximate)
    store = IndexStore(settings)
    started = time.perf_counter()
    report = ingest(settings.knowledge_dir, store, emb, progress=False)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    cache.save()
    return {"passages": report.passages, "sentences": report.sentences_embedded,
            "ingest_s": wall - emb.inside + emb.charged, "ingest_wall_s": wall,
            "outside_model_s": wall - emb.inside, "model_s": emb.charged,
            "vectors_real": emb.real, "vectors_cached": emb.cached, "vectors_approximated": emb.approximated,
            "approx_cosine": float(np.mean(emb.approx_cos)) if emb.approx_cos else None,
            "disk_mb": _du_mb(settings.data_dir / "index") if not chroma else None,
            "ingest_peak_rss_mb": _status_mb(field="VmHWM")}


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _replies(chatbot: Any, questions: list[str]) -> tuple[list[float], dict[str, int]]:
    from bot.types import IncomingMessage

    out: list[float] = []
    kinds: dict[str, int] = {}
    for q in questions:
        t = time.perf_counter()
        reply = await chatbot.respond(IncomingMessage(text=q, channel="cli"))
        out.append((time.perf_counter() - t) * 1000)
        kinds[reply.kind] = kinds.get(reply.kind, 0) + 1
    return out, kinds


def child_serve(work: Path, chroma: str | None, n: int, cache_dir: Path) -> dict[str, Any]:
    """Load the Runtime as `bot serve` does, answer `n` distinct questions, report latency, stages and RSS.

    The understanding model's example vectors (kept under DATA_DIR/cache by a server after its first start) are
    seeded from the bench's cache: every size starts as a restarted server does, not as a first start."""
    import random

    from bot.api import Runtime
    from bot.config import load_clinic
    from tools import profile_stages
    from tools.synthetic import distinct_questions

    settings = _settings(work, chroma)
    seeded = cache_dir / "understanding"
    if seeded.is_dir():
        shutil.copytree(seeded, settings.data_dir / "cache", dirs_exist_ok=True)
    rss0 = _status_mb()
    t = time.perf_counter()
    runtime = Runtime(settings, load_clinic(settings.knowledge_dir))
    runtime.load()
    if not runtime.ready.is_set():
        raise RuntimeError(runtime.error or "not ready")
    load_s = time.perf_counter() - t
    if (settings.data_dir / "cache").is_dir():
        shutil.copytree(settings.data_dir / "cache", seeded, dirs_exist_ok=True)
    questions = distinct_questions(30 + 2 * n, seed=23)
    asyncio.run(_replies(runtime.chatbot, questions[:30]))  # warm-up
    whole, kinds = asyncio.run(_replies(runtime.chatbot, questions[30:30 + n]))
    rss = _status_mb()
    # Second pass, on other questions, with every stage timed (wrappers cost microseconds; not in `whole`).
    profile_stages.instrument(runtime)
    asyncio.run(_replies(runtime.chatbot, questions[30 + n:]))
    stages = {name: _pct(v, 50) for name, v in profile_stages.TIMES.items()}
    retriever = runtime.retriever.current()
    assert retriever is not None
    lexical, reader = retriever.lexical, retriever.reader
    # BM25 alone, and its scoring call alone (bm25s scores every document a query word occurs in).
    bm25, scores_ms, postings = [], [], []
    for q in questions[30:30 + n]:
        tokens = lexical.terms(q)
        if not tokens:
            continue
        t = time.perf_counter()
        lexical.search(q, 20)
        bm25.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        lexical._bm25.get_scores(tokens)
        scores_ms.append((time.perf_counter() - t) * 1000)
        postings.append(sum(lexical._df.get(tok, 0) for tok in set(tokens)))
    # Sentence vectors of passages not fetched before (the reply path caches them per generation).
    rng = random.Random(5)
    fetch = []
    for _ in range(40):
        ids = [p.id for p in rng.sample(reader.passages, min(3, reader.count))]
        t = time.perf_counter()
        reader.sentence_vectors(ids)
        fetch.append((time.perf_counter() - t) * 1000)
    out = {"load_s": load_s, "index_open_s": runtime.start_stages.get("index"),
           "reply_p50_ms": _pct(whole, 50), "reply_p95_ms": _pct(whole, 95), "replies": len(whole), "kinds": kinds,
           "rss_mb": rss, "rss_growth_mb": rss - rss0, "peak_rss_mb": _status_mb(field="VmHWM"),
           "bm25_p50_ms": _pct(bm25, 50), "bm25_scores_p50_ms": _pct(scores_ms, 50),
           "bm25_postings_p50": _pct(postings, 50), "sentence_fetch_p50_ms": _pct(fetch, 50),
           "dense_p50_ms": stages.get("vector query"), "embed_p50_ms": stages.get("embedding (all texts)"),
           "retrieval_p50_ms": stages.get("retrieval (all)"), "compose_p50_ms": stages.get("compose (all)"),
           "understanding_p50_ms": stages.get("understanding + triage"), "in_memory_vectors": not reader.remote}
    if runtime.store is not None:
        runtime.store.close()
    return out


# -- the parent: one size at a time, each phase in a fresh process ----------------------------------------------
def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tools.bench_scale", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def _one(settings: Settings, total: int, server: tuple[subprocess.Popen[bytes], int, Path] | None, n: int,
         real_limit: int, cache: Path, log: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"scale-{total}-") as tmp:
        work = Path(tmp)
        passages = _knowledge(settings, work / "knowledge", total)
        common = ["--work", str(work)] + (["--chroma", f"127.0.0.1:{server[1]}"] if server else [])
        row: dict[str, Any] = {"size": total, "store": "server" if server else "embedded"}
        log(f"[{row['store']} {total}] ingest ...")
        row |= _child(["--child", "ingest", *common, "--cache", str(cache)]
                      + (["--approximate"] if passages > real_limit else []))
        if server:
            row["disk_mb"] = _du_mb(server[2])
        log(f"[{row['store']} {total}] ingest {row['ingest_s']:.0f} s; serving ...")
        row |= _child(["--child", "serve", *common, "-n", str(n), "--cache", str(cache)])
        if server:
            row["chroma_rss_mb"] = _status_mb(server[0].pid)
        log(f"[{row['store']} {total}] reply p50 {row['reply_p50_ms']:.1f} ms")
        return row


def bench_scale(settings: Settings, quick: bool, sizes: list[int] | None = None,
                server_sizes: list[int] | None = None, n: int = 200, real_limit: int = 10000, cache: Path = CACHE,
                plot: Path | None = ROOT / "docs/scaling.png", log: Any = None) -> dict[str, Any]:
    """Rows for each corpus size (embedded) and for the server sizes over a real `chroma run`."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    sizes = sizes if sizes is not None else ([17, 1000] if quick else SIZES)
    server_sizes = server_sizes if server_sizes is not None else ([1000] if quick else SERVER_SIZES)
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:  # each row on disk as soon as it is measured (a long run can be cut)
        rows.append(row)
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "rows.json").write_text(json.dumps(rows, indent=2))

    for s in sizes:
        keep(_one(settings, s, None, n, real_limit, cache, log))
    for s in server_sizes:
        server = _start_chroma()
        try:
            keep(_one(settings, s, server, n, real_limit, cache, log))
        finally:
            server[0].terminate()
            server[0].wait(20)
            shutil.rmtree(server[2], ignore_errors=True)
    out = {"rows": rows, "embedding_model": settings.embedding_model, "cpus": os.cpu_count(),
           "date": date.today().isoformat(), "real_limit": real_limit, "replies": n}
    try:
        made = _plot(rows, plot, settings.embedding_model) if plot else None
    except Exception as exc:  # the figures matter more than the picture
        log(f"plot failed: {exc!r}")
        made = None
    out["plot"] = str(made) if made else None
    return out


def _start_chroma() -> tuple[subprocess.Popen[bytes], int, Path]:
    import socket

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


def _plot(rows: list[dict[str, Any]], out: Path, model: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    emb = [r for r in rows if r["store"] == "embedded"]
    srv = [r for r in rows if r["store"] == "server"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = [(axes[0], "whole reply (Chatbot.respond)", "ms", [("reply_p50_ms", "p50"), ("reply_p95_ms", "p95"),
                                                                  ("bm25_p50_ms", "BM25 p50")]),
              (axes[1], "ingest time", "s", [("ingest_s", "ingest")]),
              (axes[2], "memory and disk", "MB", [("rss_mb", "serving RSS"), ("disk_mb", "index on disk")])]
    for ax, title, unit, series in panels:
        for key, label in series:
            pts = [(r["size"], r[key]) for r in emb if r.get(key) is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{label} (embedded)")
            spts = [(r["size"], r[key]) for r in srv if r.get(key) is not None]
            if spts:
                ax.scatter([p[0] for p in spts], [p[1] for p in spts], marker="s", s=45, zorder=3,
                           label=f"{label} (Chroma server)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passages")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"How cost grows with the corpus (EMBEDDING_MODEL={model}, {os.cpu_count()} CPUs, "
                 f"{date.today().isoformat()})", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


def print_scale(scale: dict[str, Any]) -> None:
    """The scale table (Markdown, as in the README), then the stage times that show what grows."""
    print(f"\n== how cost grows ({scale['embedding_model']}, {scale['cpus']} CPUs, {scale['date']}, "
          f"{scale['replies']} distinct questions per size, one at a time) ==")
    print("| passages | store | reply p50 / p95 | serving RSS | ingest | index on disk |")
    print("|---:|---|---|---:|---:|---:|")
    for r in scale["rows"]:
        approx = " *" if r.get("vectors_approximated") else ""
        extra = f" (+{r['chroma_rss_mb']:.0f} MB Chroma)" if r.get("chroma_rss_mb") else ""
        disk = f"{r['disk_mb']:,.0f} MB" if r.get("disk_mb") is not None else "-"
        print(f"| {r['passages']:,} | {r['store']} | {r['reply_p50_ms']:.1f} / {r['reply_p95_ms']:.1f} ms | "
              f"{r['rss_mb']:,.0f} MB{extra} | {r['ingest_s']:,.0f} s{approx} | {disk} |")
    print("\nper stage, p50 ms (BM25 = spelling fix + scoring + top-k; scores = bm25s get_scores alone; postings ="
          " query words' document frequencies summed; sentence fetch = 3 passages not cached):")
    print(f"{'passages':>9} {'store':>8} {'embed':>6} {'dense':>6} {'BM25':>6} {'scores':>7} {'postings':>9} "
          f"{'sent.fetch':>10} {'retrieval':>9} {'compose':>8} {'load s':>7} {'ingest: model/other s':>22} "
          f"{'vectors real/cached/approx':>27}")
    for r in scale["rows"]:
        print(f"{r['passages']:>9,} {r['store']:>8} {_f(r['embed_p50_ms'], '.2f'):>6} "
              f"{_f(r['dense_p50_ms'], '.2f'):>6} "
              f"{_f(r['bm25_p50_ms'], '.2f'):>6} {_f(r['bm25_scores_p50_ms'], '.2f'):>7} "
              f"{_f(r['bm25_postings_p50'], ',.0f'):>9} {_f(r['sentence_fetch_p50_ms'], '.2f'):>10} "
              f"{_f(r['retrieval_p50_ms'], '.2f'):>9} {_f(r['compose_p50_ms'], '.2f'):>8} {r['load_s']:>7.1f} "
              f"{r['model_s']:>11.0f} / {r['outside_model_s']:<8.0f} "
              f"{r['vectors_real']:>9,}/{r['vectors_cached']:,}/{r['vectors_approximated']:,}")
    if any(r.get("vectors_approximated") for r in scale["rows"]):
        cos = [r["approx_cosine"] for r in scale["rows"] if r.get("approx_cosine")]
        print(f"\n* past {scale['real_limit']:,} passages, passage vectors not in the cache are the normalised mean of "
              f"their sentences' real vectors (no model call), charged at the mean measured cost of a passage; "
              f"mean cosine to the real vector where both exist: {_f(min(cos) if cos else None, '.3f')}")
    if scale.get("plot"):
        print(f"plot: {scale['plot']}")


def main(argv: list[str] | None = None) -> int:
    """Measure every size and print the table."""
    p = argparse.ArgumentParser(prog="python -m tools.bench_scale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="embedded corpus sizes (passages)")
    p.add_argument("--server-sizes", default=",".join(map(str, SERVER_SIZES)), help="sizes over a Chroma server")
    p.add_argument("-n", type=int, default=200, help="distinct questions timed per size (after 30 to warm up)")
    p.add_argument("--real-limit", type=int, default=10000, help="embed passages for real up to this size")
    p.add_argument("--cache", type=Path, default=CACHE, help="vector cache folder (re-used across runs)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--rows", type=Path, nargs="+", help="print (and plot) rows saved by earlier runs instead of "
                   "measuring; a later file's row for the same size and store replaces an earlier one's")
    p.add_argument("--child", choices=["ingest", "serve"], help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--chroma", help=argparse.SUPPRESS)
    p.add_argument("--approximate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "ingest":
        print(json.dumps(child_ingest(args.work, args.chroma, args.approximate, args.cache)))
        return 0
    if args.child == "serve":
        print(json.dumps(child_serve(args.work, args.chroma, args.n, args.cache)))
        return 0
    from bot.config import get_settings

    if args.rows:
        merged: dict[tuple[int, str], dict[str, Any]] = {}
        for path in args.rows:
            loaded = json.loads(path.read_text())
            for row in loaded["rows"] if isinstance(loaded, dict) else loaded:
                merged[(row["size"], row["store"])] = row
        rows = sorted(merged.values(), key=lambda r: (r["store"] != "embedded", r["size"]))
        model = get_settings().embedding_model
        made = None if args.no_plot else _plot(rows, ROOT / "docs/scaling.png", model)
        print_scale({"rows": rows, "embedding_model": model, "cpus": os.cpu_count(), "date": date.today().isoformat(),
                     "real_limit": args.real_limit, "replies": args.n, "plot": str(made) if made else None})
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    server_sizes = [int(s) for s in args.server_sizes.split(",") if s]
    scale = bench_scale(get_settings(), False, sizes, server_sizes, args.n, args.real_limit, args.cache,
                        None if args.no_plot else ROOT / "docs/scaling.png")
    if args.json:
        args.json.write_text(json.dumps(scale, indent=2))
    print_scale(scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
