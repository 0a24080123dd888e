"""`python -m tools.profile_stages`: where a /chat reply's time goes, stage by stage, through the real pipeline.

The Chatbot is built as the service builds it (the environment's settings, a throwaway SQLite database) and each
stage's function is wrapped with a timer; distinct questions, each in a new session, are answered one at a time.
Stages nest (retrieval holds the vector query and BM25): the table says which; "other" is what no stage covers.
For a flame graph of the same run: `py-spy record -o docs/profile.svg -- python -m tools.profile_stages`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tools.synthetic import distinct_questions

TIMES: dict[str, list[float]] = defaultdict(list)


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapped_async(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                TIMES[name].append((time.perf_counter() - t) * 1000)
        return wrapped_async

    @functools.wraps(fn)
    def wrapped(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES[name].append((time.perf_counter() - t) * 1000)
    return wrapped


# (label, where it nests, object path, attribute): wrapped on the live objects the Chatbot uses.
STAGES = [
    ("session load", "", "chatbot", "_open_session"),
    ("normalise", "", "module:bot.chat", "normalise"),
    ("instructions strip", "", "module:bot.safety", "strip_instructions"),
    ("glossary expand", "", "chatbot", "_expand"),
    ("embedding (all texts)", "", "chatbot", "_vectors"),
    ("understanding + triage", "", "chatbot", "_understand_and_triage"),
    ("  understanding model", "understanding + triage", "understander", "understand"),
    ("  triage rules", "understanding + triage", "module:bot.safety", "triage"),
    ("retrieval (all)", "", "chatbot", "_retrieve"),
    ("  BM25 + spelling fix", "retrieval", "retriever", "lexical_candidates"),
    ("  vector query", "retrieval", "reader", "dense_async"),
    ("  fusion", "retrieval", "retriever", "search"),
    ("compose (all)", "", "chatbot", "_compose"),
    ("  sentence vectors", "compose", "reader", "sentence_vectors_async"),
    ("  extractive compose", "compose", "module:bot.chat", "compose"),
    ("reply framing", "", "chatbot", "_answer_reply"),
    ("session store", "", "chatbot", "_remember"),
]


def instrument(runtime: Any) -> None:
    """Wrap every stage's function on the objects this runtime answers with."""
    import importlib

    retriever = runtime.retriever.current()
    objects = {"chatbot": runtime.chatbot, "understander": runtime.chatbot.understander,
               "retriever": retriever, "reader": retriever.reader}
    for label, _, where, attr in STAGES:
        target = importlib.import_module(where[7:]) if where.startswith("module:") else objects[where]
        if target is None:
            continue
        setattr(target, attr, _timed(label.strip(), getattr(target, attr)))


async def _ask_all(runtime: Any, questions: list[str]) -> list[float]:
    from bot.types import IncomingMessage

    totals = []
    for q in questions:
        t = time.perf_counter()
        await runtime.chatbot.respond(IncomingMessage(text=q, channel="cli"))
        totals.append((time.perf_counter() - t) * 1000)
    return totals


def main(argv: list[str] | None = None) -> int:
    """Answer distinct questions one at a time and print each stage's share of a reply."""
    parser = argparse.ArgumentParser(prog="python -m tools.profile_stages", description=main.__doc__)
    parser.add_argument("-n", type=int, default=300, help="questions to time (after 30 to warm up)")
    args = parser.parse_args(argv)
    from tools.evaluate import build_runtime

    with tempfile.TemporaryDirectory(prefix="bot-profile-") as tmp:
        runtime = build_runtime(None, database=Path(tmp) / "profile.sqlite3")
        if not runtime.ready.is_set():
            print(f"not ready: {runtime.error}")
            return 1
        questions = distinct_questions(30 + args.n, seed=23)
        asyncio.run(_ask_all(runtime, questions[:30]))  # warm-up: first sight of passages, caches, JIT paths
        instrument(runtime)
        totals = asyncio.run(_ask_all(runtime, questions[30:]))
        if runtime.store is not None:
            runtime.store.close()
    n = len(totals)
    total_mean = float(np.mean(totals))
    print(f"embedding model: {runtime.settings.embedding_model}; {n} distinct questions, one at a time, in-process")
    print(f"{'stage':<28}{'calls/reply':>12}{'ms/reply':>10}{'p50 ms/call':>13}{'share':>8}")
    covered = 0.0
    for label, parent, _, _ in STAGES:
        values = TIMES.get(label.strip(), [])
        per_reply = sum(values) / n if n else 0.0
        if not parent:
            covered += per_reply
        p50 = float(np.percentile(values, 50)) if values else 0.0
        print(f"{label:<28}{len(values) / n:>12.2f}{per_reply:>10.2f}{p50:>13.2f}{100 * per_reply / total_mean:>7.1f}%")
    print(f"{'other (event loop, threads)':<28}{'':>12}{total_mean - covered:>10.2f}{'':>13}"
          f"{100 * (total_mean - covered) / total_mean:>7.1f}%")
    print(f"{'whole reply (respond)':<28}{'':>12}{total_mean:>10.2f}   p50 {np.percentile(totals, 50):.2f} ms, "
          f"p95 {np.percentile(totals, 95):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
