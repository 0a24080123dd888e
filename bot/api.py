"""`create_app()`: loads the model and index once (in the background), mounts the channels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.chat import Chatbot
from bot.config import ClinicProfile, Settings, get_settings, load_clinic
from bot.embeddings import BatchingEmbedder, Embedder, make_embedder
from bot.index import IndexStore, IndexUnavailable, manifest
from bot.indexing import IngestReport, ingest
from bot.middleware import RequestMiddleware
from bot.retrieval import LiveRetriever, Retrieval

log = logging.getLogger(__name__)


class Runtime:
    """Everything heavy the app holds: embedder, index, store, chatbot; loaded once."""

    def __init__(self, settings: Settings, clinic: ClinicProfile) -> None:
        self.settings = settings
        self.clinic = clinic
        self.ready = threading.Event()
        self.error: str | None = None
        self.started = time.perf_counter()
        self.ready_seconds: float | None = None
        self.embedder: Embedder | None = None
        self.batcher: BatchingEmbedder | None = None
        self.index_store = IndexStore(settings)
        self.retriever = LiveRetriever(self.index_store, settings.grounded_threshold)
        self.store: Any = None
        self.chatbot: Chatbot | None = None
        self.last_ingest: IngestReport | None = None
        self._ingest_lock = threading.Lock()
        # Channels that report their own state on /health (Messenger: token and intake), by name.
        self.channel_health: dict[str, Callable[[], tuple[bool, dict[str, Any]]]] = {}

    def load(self, embedder: Embedder | None = None) -> None:
        """Load the model, build the index on an empty store, open the database; then mark ready."""
        try:
            # The database first: the Messenger webhook persists events while the model is still loading.
            self.store = _open_store(self.settings)
            self.embedder = embedder or make_embedder(self.settings)
            self.batcher = BatchingEmbedder(self.embedder)
            try:
                if self.index_store.current() is None and self.settings.knowledge_dir.exists():
                    self.reindex()
                self.retriever.reload()
            except IndexUnavailable as exc:  # answer what needs no index (triage, booking) and say degraded
                log.warning("index unavailable at start: %s", type(exc).__name__)
            self.llm = _make_llm(self.settings, self.embedder)
            self.chatbot = Chatbot(self.settings, self.clinic, self.batcher, self.retriever, self.store, self.llm)
            self.embedder.embed(["warm up"])  # the first call pays for lazy initialisation, not a patient
            self.ready_seconds = time.perf_counter() - self.started
            self.ready.set()
            log.info("ready", extra={"event": {"seconds": round(self.ready_seconds, 2)}})
        except Exception as exc:  # a failed start must say why on /health, not hang
            self.error = f"start-up failed: {type(exc).__name__}: {exc}"
            log.exception("start-up failed")

    def reindex(self) -> IngestReport:
        """Ingest KNOWLEDGE_DIR into a new generation (the staff button and first start)."""
        assert self.embedder is not None
        with self._ingest_lock:
            report = ingest(self.settings.knowledge_dir, self.index_store, self.embedder, progress=False)
            self.last_ingest = report
        self.retriever.reload()
        return report

    async def search(self, query: str, k: int) -> Retrieval:
        """Hybrid search for staff look-ups and the CLI."""
        assert self.batcher is not None
        retriever = await asyncio.to_thread(self.retriever.current)
        if retriever is None:
            from bot.retrieval import Retrieval as R

            return R([], False, 0.0, 0.0, 0, 0.0)
        vec = await self.batcher.embed_one(query)
        return retriever.search(query, vec, k=k)

    def health(self) -> tuple[int, dict[str, Any]]:
        """Status code and body for /health."""
        if not self.ready.is_set():
            return 503, {"status": "starting" if self.error is None else "failed", "detail": self.error}
        with contextlib.suppress(IndexUnavailable):  # a store that is down shows as degraded below
            self.retriever.current()
        retriever = self.retriever._retriever
        index = manifest(retriever.reader if retriever else None)
        metrics.INDEX_PASSAGES.set(index.get("passages", 0))
        checks = {"index": self.index_store.ping() and retriever is not None,
                  "database": bool(self.store and self.store.ping())}
        channels = {}
        for name, report in self.channel_health.items():
            healthy, channels[name] = report()
            checks[name] = healthy
        ok = all(checks.values())
        body = {"status": "ok" if ok else "degraded", "checks": checks, "index": index, **channels,
                "answer_mode": self.settings.answer_mode,
                "embedding_model": self.embedder.name if self.embedder else None,
                "ready_seconds": round(self.ready_seconds or 0, 2)}
        return (200 if ok else 503), body


async def _purge_forever(runtime: Runtime, every_s: float = 3600) -> None:
    """Delete stored text past RETENTION_DAYS at start and then hourly (any worker may do it; it is idempotent)."""
    while True:
        await asyncio.to_thread(runtime.ready.wait, 600)
        if runtime.store is not None:
            try:
                removed = await asyncio.to_thread(runtime.store.purge, runtime.settings.retention_days)
                log.info("retention purge", extra={"event": removed})
            except Exception as exc:
                log.warning("retention purge failed: %s", type(exc).__name__)
        await asyncio.sleep(every_s)


def _open_store(settings: Settings) -> Any:
    from bot.store import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.sqlalchemy_url, session_idle_minutes=settings.session_idle_minutes)
    try:
        store.migrate()
    except Exception as exc:  # the bot still answers without a database; /health says degraded
        log.warning("database unavailable at start: %s", type(exc).__name__)
    return store


def _make_llm(settings: Settings, embedder: Embedder) -> Any:
    """The verified LLM composer when ANSWER_MODE=llm (an unknown LLM_PROVIDER stops the start-up)."""
    if settings.answer_mode != "llm":
        return None
    # Imported only in this mode: extractive deployments never load the LangChain chat integrations.
    from bot.llm import LLMComposer, make_chat_model
    from bot.verifier import Verifier

    return LLMComposer(make_chat_model(settings), Verifier(embedder.embed), timeout=settings.llm_timeout)


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None,
               load_in_background: bool = True) -> FastAPI:
    """The whole service: API, widget, staff console and Messenger webhook."""
    settings = settings or get_settings()
    clinic = load_clinic(settings.knowledge_dir)
    runtime = Runtime(settings, clinic)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.ensure_future(asyncio.to_thread(runtime.load, embedder))
        if not load_in_background:
            await loader
        purger = asyncio.ensure_future(_purge_forever(runtime))
        yield
        purger.cancel()
        if runtime.store is not None:
            runtime.store.close()

    app = FastAPI(
        title="Clinic assistant",
        version="0.1.0",
        summary="Answers patients only from the clinic's articles, triages emergencies, hands off to booking.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clinic = clinic
    app.state.runtime = runtime

    from bot.channels import articles, messenger, staff, web, widget

    for channel in (web, widget, articles, staff, messenger):
        app.include_router(channel.router)

    @app.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        """200 `{"status": "ok"}` when ready; 503 while starting or when a dependency is down."""
        code, body = await asyncio.to_thread(runtime.health)
        return JSONResponse(body, status_code=code)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests, latencies, replies per kind, handoffs, emergencies, index size."""
        import os

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several workers: add up every worker's numbers
            from prometheus_client import CollectorRegistry, multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422,
                            content={"detail": _explain(exc.errors())})

    app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_origins, allow_credentials=False,
                       allow_methods=["GET", "POST"], allow_headers=["Content-Type", "Authorization"],
                       max_age=600)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


def _explain(errors: Any) -> str:
    """Validation errors as one sentence that says what to fix."""
    parts = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            parts.append("the body is not valid JSON (send UTF-8 JSON like {\"message\": \"...\"})")
        elif err.get("type") == "missing":
            parts.append(f"{loc} is required")
        else:
            parts.append(f"{loc}: {msg}")
    return "; ".join(parts) or "invalid request"
