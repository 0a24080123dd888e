"""One ASGI middleware for every request: id, body-size cap, security headers, metrics, one JSON log line."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
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
JSON_ROUTES = {"/chat", "/chat/stream", "/feedback", "/search"}


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object a line; callers put only ids, numbers and names in them."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                                "logger": record.name, "msg": record.getMessage()}
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


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process (uvicorn's own access log is turned off)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "chromadb", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


WEBHOOK_PATH = "/messenger/webhook"


class RequestMiddleware:
    """Caps bodies before parsing, adds headers, counts and logs every request without its content."""

    def __init__(self, app: Any, max_body_bytes: int, webhook_body_bytes: int = 1024 * 1024) -> None:
        self.app = app
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
        path = scope.get("path", "")
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        if path in JSON_ROUTES and not headers.get(b"content-type", b"").startswith(b"application/json"):
            # `curl -d '{"query": ...}'` sends JSON labelled as a form; these routes only take JSON, so
            # read it as JSON (a body that is not JSON still gets a 422 saying so).
            scope["headers"] = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
            scope["headers"].append((b"content-type", b"application/json"))
        limit = self.webhook_body if path == WEBHOOK_PATH else self.max_body
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _reject(send, 413, f"Request body too large: the limit is {limit} bytes.")
            self._finish(scope, path, 413, started, request_id)
            return
        seen = 0

        async def capped_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = list(SECURITY_HEADERS) + [(b"x-request-id", request_id.encode())]
                if path in PAGE_PATHS or path.startswith("/articles"):
                    extra.append((b"content-security-policy", CSP.encode()))
                    extra.append((b"x-frame-options", b"SAMEORIGIN"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, capped_receive, send_wrapper)
        except _TooLarge:
            status["code"] = 413
            await _reject(send, 413, f"Request body too large: the limit is {limit} bytes.")
        finally:
            self._finish(scope, path, status["code"], started, request_id)

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


async def _reject(send: Any, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
