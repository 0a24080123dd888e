"""`create_app()`: loads the model and index once (in the background), mounts the channels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bot import metrics
from bot.chat import Chatbot
from bot.config import ClinicProfile, Settings, get_settings, load_clinic
from bot.embeddings import BatchingEmbedder, Embedder, make_embedder
from bot.faq import FaqLive
from bot.faq_store import KnowledgeStore
from bot.glossary import load_glossary
from bot.index import IndexStore, IndexUnavailable, manifest
from bot.middleware import DRAINING, RequestMiddleware
from bot.retrieval import LiveRetriever, Retrieval
from bot.understanding import Understander, make_understander

if TYPE_CHECKING:
    from bot.indexing import IngestReport

log = logging.getLogger(__name__)


# Health checks run here, one thread per dependency at most: a check stuck on a hung dependency holds its own
# thread, never the event loop or asyncio's default pool.
_HEALTH_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")


class HealthCheck:
    """One dependency check, at most one run at a time, answered within a budget.

    A run that has not finished in time counts as up only while it is young (GRACE seconds; a busy machine is not
    an outage) and the previous run said up; a dependency that hangs longer shows as down.
    """

    GRACE = 2.0

    def __init__(self, probe: Callable[[], bool]) -> None:
        self.probe = probe
        self._future: Future[Any] | None = None
        self._started = 0.0
        self._last = False

    async def run(self, budget: float) -> bool:
        """Whether the dependency is up, decided within `budget` seconds."""
        if self._future is None or self._future.done():
            self._future, self._started = _HEALTH_POOL.submit(self.probe), time.monotonic()
        future = self._future
        try:
            self._last = bool(await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), budget))
            return self._last
        except TimeoutError:
            if time.monotonic() - self._started > self.GRACE:
                metrics.DEPENDENCY_TIMEOUTS.labels("health").inc()
                return False
            return self._last
        except Exception:
            self._last = False
            return False


class Runtime:
    """Everything heavy the app holds: embedder, index, store, chatbot; loaded once."""

    def __init__(self, settings: Settings, clinic: ClinicProfile) -> None:
        self.settings = settings
        self.clinic = clinic
        self.ready = threading.Event()
        self.error: str | None = None
        self.started = time.perf_counter()
        self.ready_seconds: float | None = None
        self.start_stages: dict[str, float] = {}
        self.embedder: Embedder | None = None
        self.batcher: BatchingEmbedder | None = None
        self.index_store = IndexStore(settings)
        self.retriever = LiveRetriever(self.index_store, settings.grounded_threshold)
        self.store: Any = None
        self.chatbot: Chatbot | None = None
        self.understander: Understander | None = None
        self.faq: FaqLive | None = None
        self.last_ingest: IngestReport | None = None
        self._ingest_lock = threading.Lock()
        self._checks = {"index": HealthCheck(self._index_open), "database": HealthCheck(self._database_up)}
        # Channels that report their own state on /health (Messenger: token and intake), by name.
        self.channel_health: dict[str, Callable[[], tuple[bool, dict[str, Any]]]] = {}

    def load(self, embedder: Embedder | None = None) -> None:
        """Load the model, build the index on an empty store, open the database; then mark ready."""
        stages: dict[str, float] = {}
        mark = time.perf_counter()

        def done(stage: str) -> None:  # start-up time per stage, for the log and the cold-start profile
            nonlocal mark
            now = time.perf_counter()
            stages[stage], mark = round(now - mark, 3), now

        try:
            # The database first: the Messenger webhook persists events while the model is still loading.
            self.store = _open_store(self.settings)
            done("database")
            self.embedder = embedder or make_embedder(self.settings)
            self.batcher = BatchingEmbedder(self.embedder)
            done("embedder")
            try:
                if self.index_store.current() is None and self.settings.knowledge_dir.exists():
                    self.reindex()
                self.retriever.reload()
                opened = self.retriever._retriever
                if (opened is not None and opened.reader.model != self.embedder.name
                        and self.settings.knowledge_dir.exists()):
                    # EMBEDDING_MODEL changed (the int8 default, say): queries must meet passages embedded by
                    # the same model, so the articles are embedded again before the service says ready.
                    log.warning("index built with another embedding model: re-embedding",
                                extra={"event": {"index_model": opened.reader.model, "model": self.embedder.name}})
                    self.reindex()
            except IndexUnavailable as exc:  # answer what needs no index (triage, booking) and say degraded
                log.warning("index unavailable at start: %s", type(exc).__name__)
            done("index")
            self.llm = _make_llm(self.settings, self.embedder)
            self.understander = make_understander(self.embedder, self.settings.data_dir / "cache")
            self.faq = FaqLive(KnowledgeStore(self.store), self.embedder, self.settings.faq_threshold,
                               self.understander)
            self.refresh_faq()
            done("understanding")
            glossary = load_glossary(self.settings.knowledge_dir)
            self.chatbot = Chatbot(self.settings, self.clinic, self.batcher, self.retriever, self.store, self.llm,
                                   understander=self.understander, glossary=glossary, faq=self.faq)
            self.embedder.embed(["warm up"])  # the first call pays for lazy initialisation, not a patient
            done("warm-up")
            self.ready_seconds = time.perf_counter() - self.started
            self.start_stages = stages
            self.ready.set()
            _mark_worker(ready=True)
            log.info("ready", extra={"event": {"seconds": round(self.ready_seconds, 2), "stages": stages}})
        except Exception as exc:  # a failed start must say so on /health, not hang
            # The type only: an exception's text can hold a connection URL with its password, or a path.
            self.error = f"start-up failed ({type(exc).__name__}); the server log says where"
            log.exception("start-up failed")

    def refresh_faq(self, *, force: bool = False) -> bool:
        """Load staff answers published since the last look (every worker, every second); never raises."""
        if self.faq is None:
            return False
        try:
            return self.faq.refresh(force=force)
        except Exception as exc:  # the database is down: keep answering from what is loaded
            log.warning("staff answers not refreshed: %s", type(exc).__name__)
            return False

    def reindex(self) -> IngestReport:
        """Ingest KNOWLEDGE_DIR into a new generation (the staff button and first start)."""
        # Imported here: Markdown parsing and splitting (LangChain, trafilatura) are an ingest's, not a start's.
        from bot.indexing import ingest

        assert self.embedder is not None
        with self._ingest_lock:
            report = ingest(self.settings.knowledge_dir, self.index_store, self.embedder, progress=False)
            self.last_ingest = report
        self.retriever.reload()
        return report

    async def search(self, query: str, k: int) -> Retrieval:
        """Hybrid search for staff look-ups and the CLI; IndexUnavailable when the store is down or too slow."""
        assert self.batcher is not None
        timeout = self.settings.index_timeout
        retriever = await self.retriever.current_async(timeout)
        if retriever is None:
            from bot.retrieval import Retrieval as R

            return R([], False, 0.0, 0.0, 0, 0.0)
        vec = await self.batcher.embed_one(query)
        return await retriever.search_async(query, vec, k=k, timeout=timeout)

    def _index_open(self) -> bool:
        with contextlib.suppress(IndexUnavailable):  # a store that is down shows as degraded
            self.retriever.current()
        return self.index_store.ping() and self.retriever._retriever is not None

    def _database_up(self) -> bool:
        return bool(self.store and self.store.ping())

    async def health(self) -> tuple[int, dict[str, Any]]:
        """Status code and body for /health, within a fixed budget whatever a dependency does."""
        if not self.ready.is_set():
            return 503, {"status": "starting" if self.error is None else "failed", "detail": self.error}
        if DRAINING.is_set():
            return 503, {"status": "draining"}
        expected, ready = _workers_ready()
        if ready < expected:  # a load balancer must not send traffic to the port while a worker still starts
            return 503, {"status": "starting", "workers_ready": ready, "workers": expected}
        budget = self.settings.health_check_timeout
        index_ok, database_ok = await asyncio.gather(self._checks["index"].run(budget),
                                                     self._checks["database"].run(budget))
        retriever = self.retriever._retriever
        index = manifest(retriever.reader if retriever else None)
        metrics.INDEX_PASSAGES.set(index.get("passages", 0))
        checks = {"index": index_ok, "database": database_ok}
        channels = {}
        for name, report in self.channel_health.items():
            try:  # a channel's report may read the database: in a thread, within the same budget
                healthy, channels[name] = await asyncio.wait_for(asyncio.to_thread(report), max(budget, 0.05))
            except Exception:
                healthy, channels[name] = False, {"state": "no answer in time"}
            checks[name] = healthy
        ok = all(checks.values())
        body = {"status": "ok" if ok else "degraded", "checks": checks, "index": index, **channels,
                "answer_mode": self.settings.answer_mode,
                "embedding_model": self.embedder.name if self.embedder else None,
                "ready_seconds": round(self.ready_seconds or 0, 2)}
        return (200 if ok else 503), body


def _run_dir() -> Path | None:
    value = os.environ.get("BOT_RUN_DIR")
    return Path(value) if value else None


def _mark_worker(*, ready: bool) -> None:
    """A file per ready worker in BOT_RUN_DIR (set by `serve`), so any worker can tell whether all are ready."""
    run_dir = _run_dir()
    if run_dir is None:
        return
    marker = run_dir / f"{os.getpid()}.ready"
    if ready:
        run_dir.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def _workers_ready() -> tuple[int, int]:
    """(workers expected, workers ready and alive); (0, 0) outside `serve --workers N`."""
    run_dir, expected = _run_dir(), int(os.environ.get("BOT_WORKERS", "0") or 0)
    if run_dir is None or expected <= 1:
        return 0, 0
    alive = 0
    for marker in run_dir.glob("*.ready"):
        try:
            os.kill(int(marker.stem), 0)
            alive += 1
        except (ValueError, ProcessLookupError):
            marker.unlink(missing_ok=True)  # a worker that died without cleaning up
        except PermissionError:
            alive += 1
    return expected, alive


def _drain_on_sigterm(seconds: float) -> None:
    """Wrap the server's SIGTERM/SIGINT handler: first drain (503 on /health, `Connection: close` on every
    response) for `seconds`, then stop as the server would; a second signal stops at once."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        return  # not under a server that owns the signals (tests in-process)
    for sig in (signal.SIGTERM, signal.SIGINT):
        original = signal.getsignal(sig)
        if not callable(original):
            continue

        def handler(signum: int, frame: Any, original: Callable[..., Any] = original) -> None:
            if DRAINING.is_set():
                original(signum, frame)
                return
            DRAINING.set()
            log.info("draining before stop", extra={"event": {"seconds": seconds}})
            threading.Timer(seconds, original, (signum, frame)).start()

        signal.signal(sig, handler)


async def _refresh_faq_forever(runtime: Runtime, every_s: float = 1.0) -> None:
    """Look for newly published staff answers once a second: another worker's publish reaches this one in ~1 s."""
    await asyncio.to_thread(runtime.ready.wait, 600)
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(runtime.refresh_faq)


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
    logging.captureWarnings(True)  # in every worker: warnings become JSON log lines, not bare text
    clinic = load_clinic(settings.knowledge_dir)
    runtime = Runtime(settings, clinic)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _drain_on_sigterm(settings.shutdown_drain_seconds)
        loader = asyncio.ensure_future(asyncio.to_thread(runtime.load, embedder))
        if not load_in_background:
            await loader
        purger = asyncio.ensure_future(_purge_forever(runtime))
        refresher = asyncio.ensure_future(_refresh_faq_forever(runtime))
        yield
        purger.cancel()
        refresher.cancel()
        _mark_worker(ready=False)
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

    from bot.channels import articles, messenger, staff, staff_faq, web, widget

    for channel in (web, widget, articles, staff, staff_faq, messenger):
        app.include_router(channel.router)

    @app.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        """200 `{"status": "ok"}` when ready; 503 while starting or when a dependency is down."""
        code, body = await runtime.health()
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

    # DELETE: the widget's "Clear conversation"; Retry-After exposed so it can wait as long as the server asks.
    app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_origins, allow_credentials=False,
                       allow_methods=["GET", "POST", "DELETE"], allow_headers=["Content-Type", "Authorization"],
                       expose_headers=["Retry-After"], max_age=600)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes,
                       read_timeout=settings.request_read_timeout)
    app.add_middleware(OpsGuard, settings=settings)
    # Outermost: the client address comes from X-Forwarded-For only when the peer is a FORWARDED_ALLOW_IPS proxy
    # (uvicorn's own copy of this is turned off in `serve`, so the app behaves the same under any server).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips or [])
    return app


OPS_PATHS = ("/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


class OpsGuard:
    """/metrics and the API docs as OPS_ACCESS says: open, staff token, or loopback only (default: open in
    development, staff in production)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.mode = settings.ops_access or ("staff" if settings.env == "production" else "open")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.mode != "open" and scope.get("path") in OPS_PATHS:
            refusal = self._refusal(scope)
            if refusal is not None:
                code, detail = refusal
                headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
                await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        if self.mode == "loopback":
            host = (scope.get("client") or ("", 0))[0]
            return None if host in ("127.0.0.1", "::1") else (403, "Only reachable from this machine (OPS_ACCESS).")
        from bot.deps import staff_token_matches

        auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token and staff_token_matches(self.settings, token):
            return None
        return 401, "Send the staff token (Authorization: Bearer <STAFF_TOKEN>) for this route (OPS_ACCESS)."


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
