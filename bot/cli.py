"""Command line: serve, ingest, ask, search, faq, messenger-setup (evaluation and benchmarks: tools/)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from bot.config import get_settings, load_clinic


def _runtime() -> Any:
    from bot.api import Runtime

    settings = get_settings()
    runtime = Runtime(settings, load_clinic(settings.knowledge_dir))
    runtime.load()
    if not runtime.ready.is_set():
        sys.exit(runtime.error or "start-up failed")
    return runtime


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest PATH (default KNOWLEDGE_DIR) into the index; prints what it did."""
    from bot.embeddings import make_embedder
    from bot.index import IndexStore
    from bot.indexing import ingest

    settings = get_settings()
    path = Path(args.path) if args.path else settings.knowledge_dir
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    report = ingest(path, IndexStore(settings), make_embedder(settings))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API (ingesting KNOWLEDGE_DIR first when the index is empty)."""
    import os
    import shutil

    import uvicorn

    from bot.index import IndexStore
    from bot.middleware import configure_logging, logging_config

    settings = get_settings()
    configure_logging()
    if IndexStore(settings).current() is None and settings.knowledge_dir.exists():
        from bot.embeddings import make_embedder
        from bot.indexing import ingest

        # Logged, not printed: a server's output is JSON lines only.
        report = ingest(settings.knowledge_dir, IndexStore(settings), make_embedder(settings), progress=False)
        logging.getLogger("bot.ingest").info("first-start ingest", extra={"ingest": report.as_dict()})
    # Each ready worker leaves a file here; /health answers 200 only once all of them have.
    run_dir = settings.data_dir / "run" / str(args.port)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    os.environ["BOT_RUN_DIR"], os.environ["BOT_WORKERS"] = str(run_dir.resolve()), str(args.workers)
    # multiprocessing's resource tracker (its own process, outside our logging) warns in bare text at shutdown
    # about semaphores the libraries in the workers leave behind; the OS frees them with the process.
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                           "ignore::UserWarning:multiprocessing.resource_tracker"]))
    if args.workers > 1:
        # Each worker counts in its own process; prometheus-client sums them from files in this folder.
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    # log_config: uvicorn applies it in every worker it starts (JSON lines with request ids, warnings included);
    # proxy headers are the app's business (FORWARDED_ALLOW_IPS, bot.api); a slow client is cut off by
    # TIMEOUT_KEEP_ALIVE between requests and REQUEST_READ_TIMEOUT within one (bot.middleware).
    limit_concurrency = args.limit_concurrency if args.limit_concurrency is not None else settings.limit_concurrency
    uvicorn.run("bot.api:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                access_log=False, log_config=logging_config(), proxy_headers=False,
                timeout_keep_alive=int(settings.timeout_keep_alive), limit_concurrency=limit_concurrency,
                timeout_graceful_shutdown=int(settings.graceful_timeout))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Ask one question as a patient would and print the reply."""
    from bot.types import IncomingMessage

    runtime = _runtime()
    reply = asyncio.run(runtime.chatbot.respond(IncomingMessage(text=args.question, session_id=args.session,
                                                                channel="cli")))
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    print(f"[{reply.kind}] {reply.reply}")
    for c in reply.citations:
        print(f"  source: {c.title} ({c.source}{' ' + c.url if c.url else ''})")
    for a in reply.actions:
        print(f"  action: {a.label} -> {a.value}")
    if reply.disclaimer:
        print(f"  note: {reply.disclaimer}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the passages a query finds, best first, with scores."""
    runtime = _runtime()
    found = asyncio.run(runtime.search(args.query, args.k))
    if args.json:
        print(json.dumps({"grounded": found.grounded, "confidence": found.confidence, "results": [
            {"title": p.title, "source": p.source, "url": p.url, "section": p.section, "text": p.text,
             "score": p.score, "dense_score": p.dense_score, "bm25_score": p.bm25_score} for p in found.passages]},
            indent=2))
        return 0
    print(f"grounded={found.grounded} confidence={found.confidence:.3f}")
    for n, p in enumerate(found.passages, 1):
        print(f"{n}. [{p.score:.3f} dense={p.dense_score:.3f} bm25={p.bm25_score:.2f}] {p.title} / {p.section}"
              f" ({p.source})\n   {p.text[:160]}")
    return 0


def cmd_messenger_setup(args: argparse.Namespace) -> int:
    """Set the Facebook Page's Messenger profile (greeting, Get Started, ice breakers, menu)."""
    from bot.channels.messenger_setup import main as setup

    return setup(args)


def cmd_faq(args: argparse.Namespace) -> int:
    """Staff answers as Markdown: `faq export DIR` writes them in knowledge/ format; `faq import PATH` reads a
    folder of them back, or a website's HTML export (one entry per section), publishing or sending to review."""
    from bot.faq_store import KnowledgeStore
    from bot.faq_workflow import Workflow
    from bot.store import Store

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    flow = Workflow(KnowledgeStore(store))
    path = Path(args.path)
    if args.action == "export":
        files = flow.export()
        for name, text in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text, encoding="utf-8")
        print(f"exported {len(files)} entries to {path}")
        return 0
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    # The CLI runs with the server's own access: flagged entries still wait for a reviewer in the console.
    report = flow.import_path(path, args.author)
    print(json.dumps(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `python -m bot`."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help=cmd_serve.__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--limit-concurrency", type=int, default=None)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("ingest", help=cmd_ingest.__doc__)
    p.add_argument("path", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("ask", help=cmd_ask.__doc__)
    p.add_argument("question")
    p.add_argument("--session")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser("search", help=cmd_search.__doc__)
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("faq", help=cmd_faq.__doc__)
    p.add_argument("action", choices=("export", "import"))
    p.add_argument("path")
    p.add_argument("--author", default="import", help="who the imported versions are by (the audit log shows it)")
    p.set_defaults(func=cmd_faq)
    p = sub.add_parser("messenger-setup", help=cmd_messenger_setup.__doc__)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_messenger_setup)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
