"""`python -m tools.bench_grouping`: grouping 500 distinct unanswered questions for the staff list, before and after."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bot.channels.staff import SIMILAR, group_questions
from tools.synthetic import distinct_questions

N = 500
RUNS = 5

Grouper = Callable[[list[dict[str, Any]], np.ndarray, float], list[dict[str, Any]]]


def greedy_baseline(rows: list[dict[str, Any]], vectors: np.ndarray,
                    threshold: float = SIMILAR) -> list[dict[str, Any]]:
    """The grouping before: per row, per group, re-stack the members and take their best cosine."""
    groups: list[dict[str, Any]] = []
    members: list[list[np.ndarray]] = []
    for row, vec in zip(rows, vectors, strict=True):
        best, best_sim = -1, threshold
        for n, vecs in enumerate(members):
            sim = float(np.max(np.stack(vecs) @ vec))
            if sim >= best_sim:
                best, best_sim = n, sim
        if best < 0:
            groups.append({"question": row["question"], "count": 0, "last_seen": row["created_at"], "ids": [],
                           "variants": []})
            members.append([])
            best = len(groups) - 1
        members[best].append(vec)
        group = groups[best]
        group["count"] += 1
        group["ids"].append(row["id"])
        group["last_seen"] = max(group["last_seen"], row["created_at"])
        text = row["question"]
        if text != group["question"] and text not in group["variants"] and len(group["variants"]) < 5:
            group["variants"].append(text)
    groups.sort(key=lambda g: (-g["count"], -datetime.fromisoformat(g["last_seen"]).timestamp()))
    return groups


def rows_for(texts: list[str]) -> list[dict[str, Any]]:
    """Store-shaped rows, newest first, one minute apart."""
    start = datetime(2026, 11, 24, tzinfo=UTC)
    return [{"id": len(texts) - n, "question": t, "created_at": (start - timedelta(minutes=n)).isoformat()}
            for n, t in enumerate(texts)]


def timed(fn: Grouper, rows: list[dict[str, Any]], vecs: np.ndarray) -> tuple[float, float, list[dict[str, Any]]]:
    """Median wall and CPU time (this process, all threads) of RUNS groupings, in ms, and the groups."""
    wall, cpu, groups = [], [], []
    for _ in range(RUNS):
        w, c = time.perf_counter(), time.process_time()
        groups = fn(rows, vecs, SIMILAR)
        wall.append((time.perf_counter() - w) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu), groups


def compare(label: str, rows: list[dict[str, Any]], vecs: np.ndarray) -> None:
    """Print before/after for one set of vectors, and whether both give the same groups."""
    before, before_cpu, old = timed(greedy_baseline, rows, vecs)
    after, after_cpu, new = timed(group_questions, rows, vecs)
    print(f"{label:<40} {len(old):>6} {before:>10.1f} {after:>9.2f} {before / after:>8.0f}x  "
          f"{before_cpu:>10.1f} {after_cpu:>9.2f}  {'yes' if old == new else 'NO'}")


def main() -> None:
    """Random unit vectors (every question its own group: the worst case) and real embeddings of patient questions."""
    from bot.config import Settings
    from bot.embeddings import make_embedder

    print(f"Grouping {N} distinct unanswered questions at cosine >= {SIMILAR}; median of {RUNS} runs.")
    # Wall time is what staff wait for; CPU time is what it takes from patients' chats on a busy machine.
    print(f"{'vectors':<40} {'groups':>6} {'before ms':>10} {'after ms':>9} {'speed-up':>9}  "
          f"{'before cpu':>10} {'after cpu':>9}  same groups")
    rng = np.random.default_rng(0)
    # distinct_questions' order follows set iteration (string hashes differ per process): fix it, so the greedy
    # grouping, which depends on the order, is the same in every run.
    texts = [str(t) for t in rng.permutation(sorted(distinct_questions(N)))]
    random = rng.standard_normal((N, 384)).astype(np.float32)
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    compare("random unit vectors (384-d)", rows_for(texts), random)
    embedder = make_embedder(Settings())
    embedder.embed(["warm up"])
    t = time.perf_counter()
    real = np.asarray(embedder.embed(texts), dtype=np.float32)
    embed_ms = (time.perf_counter() - t) * 1000
    compare(f"real embeddings ({embedder.name})", rows_for(texts), real)
    print(f"(embedding the {N} questions once took {embed_ms:.0f} ms; the route does it in the same thread hop)")


if __name__ == "__main__":
    main()
