"""One ASGI middleware for every request: id, body-size cap, security headers, metrics, one JSON log line."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import secrets
import threading
import time
from contextvars import ContextVar
from typing import Any

from bot import metrics

log = logging.getLogger("bot.access")

# The demo and staff pages use only their own scripts and styles: no inline code, no third party.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'self'; base-uri 'none'; form-action 'self'; object-src 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]
# widget.js is loaded by the clinic's own pages, so it must not carry frame or page rules of ours.
PAGE_PATHS = ("/", "/staff", "/docs", "/redoc", "/articles")
# FastAPI's /docs and /redoc load Swagger UI / ReDoc from a CDN and start them with an inline script: their own
# policy, so the patient pages' strict one can stay strict. They are staff pages (OPS_ACCESS), never a patient's.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; style-src 'self' "
            "'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src 'self' "
            "https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; object-src 'none'")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
JSON_ROUTES = {"/chat", "/chat/stream", "/feedback", "/search"}


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object a line; callers put only ids, numbers and names in them."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                                "logger": record.name, "msg": record.getMessage()}
        request_id = getattr(record, "request_id", None)
        if request_id:
            data["request_id"] = request_id
        for key in ("request", "ingest", "event"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info and record.exc_info[0] is not None:
            # The type and where it happened, never the exception's text (it may quote a patient).
            data["error"] = record.exc_info[0].__name__
            tb = record.exc_info[2]
            frames = []
            while tb is not None:
                frames.append(f"{tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}")
                tb = tb.tb_next
            data["where"] = frames[-4:]
        return json.dumps(data, default=str)


# The id of the request being served, for every log line written while serving it (background tasks included).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# Set when the worker has been told to stop: it still serves for a moment, but closes every connection after its
# response and reports 503 on /health, so proxies and keep-alive clients move away before it closes.
DRAINING = threading.Event()


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record."""
        record.request_id = REQUEST_ID.get()
        return True


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """The dictConfig for every process: uvicorn applies it in each worker it starts (`log_config`)."""
    quiet = {name: {"level": "WARNING"} for name in ("uvicorn.access", "httpx", "chromadb", "sentence_transformers",
                                                      "transformers")}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "bot.middleware.RequestIdFilter"}},
        "formatters": {"json": {"()": "bot.middleware.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "json",
                                "filters": ["request_id"]}},
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn's loggers carry handlers of their own unless told otherwise: theirs go through ours.
        "loggers": {"uvicorn": {"handlers": [], "propagate": True, "level": level},
                    "uvicorn.error": {"handlers": [], "propagate": True, "level": level}, **quiet},
    }


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for this process, warnings included (uvicorn's own access log is turned off)."""
    logging.config.dictConfig(logging_config(level))
    logging.captureWarnings(True)


WEBHOOK_PATH = "/messenger/webhook"


class RequestMiddleware:
    """Caps bodies before parsing, adds headers, counts and logs every request without its content."""

    def __init__(self, app: Any, max_body_bytes: int, webhook_body_bytes: int = 1024 * 1024,
                 read_timeout: float = 10.0) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.max_body = max_body_bytes
        # Meta batches many events into one signed POST; the webhook checks the signature before parsing.
        self.webhook_body = max(webhook_body_bytes, max_body_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        try:
            await self._serve(scope, receive, send, started, request_id)
        finally:
            REQUEST_ID.reset(token)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any, started: float, request_id: str) -> None:
        path = scope.get("path", "")
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if path in JSON_ROUTES and scope.get("method") == "POST" and ctype != b"application/json":
            # A form or text/plain POST is a "simple" cross-site request that skips the CORS pre-flight: JSON
            # routes take JSON only, so a page elsewhere cannot make a patient's browser post to them.
            await _reject(send, 415, "Send the body as JSON with the header Content-Type: application/json.")
            self._finish(scope, path, 415, started, request_id)
            return
        limit = self.webhook_body if path == WEBHOOK_PATH else self.max_body
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _reject(send, 413, f"Request body too large: the limit is {limit} bytes.")
            self._finish(scope, path, 413, started, request_id)
            return
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            # The whole body is read here, capped and timed, before any route sees it: a chunked body over the
            # cap is a 413 (FastAPI's body parser turned the cap's exception into a 400), a trickled one a 408.
            try:
                body = await self._read_body(receive, limit)
            except _TooLarge:
                await _reject(send, 413, f"Request body too large: the limit is {limit} bytes.")
                self._finish(scope, path, 413, started, request_id)
                return
            except _TooSlow:
                await _reject(send, 408, f"The request body did not arrive within {self.read_timeout:g} s.")
                self._finish(scope, path, 408, started, request_id)
                return
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # afterwards only http.disconnect (streaming replies listen for it)

            inner_receive: Any = replay
        else:
            inner_receive = receive

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = list(SECURITY_HEADERS) + [(b"x-request-id", request_id.encode())]
                if path in DOCS_PATHS:
                    extra.append((b"content-security-policy", DOCS_CSP.encode()))
                    extra.append((b"x-frame-options", b"SAMEORIGIN"))
                elif path in PAGE_PATHS or path.startswith("/articles"):
                    extra.append((b"content-security-policy", CSP.encode()))
                    extra.append((b"x-frame-options", b"SAMEORIGIN"))
                if DRAINING.is_set():  # stopping: no more requests on this connection (uvicorn closes it)
                    extra.append((b"connection", b"close"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, inner_receive, send_wrapper)
        finally:
            self._finish(scope, path, status["code"], started, request_id)

    async def _read_body(self, receive: Any, limit: int) -> bytes:
        chunks: list[bytes] = []
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        while True:
            try:  # a client that trickles its body holds a connection and a task: it gets REQUEST_READ_TIMEOUT
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                raise _TooSlow() from None
            if message["type"] != "http.request":  # the client went away
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                raise _TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _finish(scope: dict[str, Any], path: str, code: int, started: float, request_id: str) -> None:
        route = getattr(scope.get("route"), "path", None) or ("static" if code < 400 else "unmatched")
        elapsed = time.perf_counter() - started
        metrics.REQUESTS.labels(route, scope.get("method", ""), str(code)).inc()
        metrics.LATENCY.labels(route).observe(elapsed)
        info: dict[str, Any] = {"id": request_id, "method": scope.get("method"), "route": route,
                                "status": code, "ms": round(elapsed * 1000, 2)}
        reply = (scope.get("state") or {}).get("reply")
        trace = getattr(reply, "_trace", None)
        if reply is not None:
            info["kind"] = reply.kind
        if trace is not None:
            info.update(reason=trace.reason, score=round(trace.top_score, 3), grounded=trace.grounded)
        log.info("request", extra={"request": info})


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


async def _reject(send: Any, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
