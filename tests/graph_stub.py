"""A stand-in for Meta's Graph API: a real HTTP server on loopback that records every call.

It answers like the Send API (`{recipient_id, message_id}`), pass_thread_control (`{success: true}`) and the
Messenger profile (`{result: "success"}`), and can be told to fail: a status N times (optionally only for
calls that match), be slow, drop every connection ("down"), or take a send and then drop the connection
before answering ("lose_answers": Meta got it, the caller cannot know). Like Meta, it can echo every
delivered message back to the webhook (`echo_to`), signed, as a `message_echoes` event carrying the
message's `metadata`, retrying while the webhook is unreachable.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    """One request the stub received (and what it answered)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> dict[str, Any] | None:
        """The Send API `message`, when this call sent one."""
        return self.body.get("message") if isinstance(self.body, dict) else None

    @property
    def recipient(self) -> str | None:
        """The PSID the call was for."""
        if isinstance(self.body, dict) and isinstance(self.body.get("recipient"), dict):
            return self.body["recipient"].get("id")
        return None


@dataclass
class _Failure:
    remaining: int
    status: int
    body: dict[str, Any]
    match: Callable[[Call], bool] | None


@dataclass
class GraphStub:
    """Start with `start()`; `url` goes into GRAPH_API_BASE."""

    delay: float = 0.0
    down: bool = False
    lose_answers: int = 0
    delay_match: Callable[[Call], bool] | None = None
    echo_url: str | None = None
    echo_secret: str = ""
    page_id: str = "104857600123456"
    me_status: int = 200
    calls: list[Call] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def start(self) -> GraphStub:
        """Serve on a free loopback port in a daemon thread."""
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub._serve(self)

            do_GET = do_POST
            do_DELETE = do_POST

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        class Server(ThreadingHTTPServer):
            # socketserver's default listen backlog is 5: under a burst the kernel then drops connections the
            # client already wrote to, which looks like a send that may have reached Meta. Meta's is not 5.
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def fail(self, times: int, status: int = 500, *, error: dict[str, Any] | None = None,
             match: Callable[[Call], bool] | None = None) -> None:
        """Answer the next `times` (matching) calls with `status` and a Graph error body."""
        body = {"error": error or {"message": "stub failure", "type": "OAuthException", "code": 2,
                                   "fbtrace_id": "stub"}}
        with self._lock:
            self._failures.append(_Failure(times, status, body, match))

    def echo_to(self, url: str | None, secret: str) -> None:
        """Send Meta-shaped `message_echoes` events for delivered messages to this webhook URL (None: stop)."""
        self.echo_url, self.echo_secret = url, secret

    def _echo(self, call: Call, mid: str) -> None:
        message = dict(call.message or {})
        echo: dict[str, Any] = {"is_echo": True, "app_id": 1234567890, "mid": mid}
        for key in ("text", "metadata", "attachments", "quick_replies"):
            if key in message:
                echo[key] = message[key]
        stamp = int(time.time() * 1000)
        payload = {"object": "page", "entry": [{"id": self.page_id, "time": stamp, "messaging": [
            {"sender": {"id": self.page_id}, "recipient": {"id": call.recipient}, "timestamp": stamp,
             "message": echo}]}]}
        raw = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(self.echo_secret.encode(), raw, hashlib.sha256).hexdigest()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.echo_url:
            request = urllib.request.Request(self.echo_url, data=raw, method="POST", headers={
                "content-type": "application/json", "x-hub-signature-256": signature})
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except Exception:  # the bot is down or restarting: Meta retries too
                pass
            time.sleep(0.5)

    # -- what was called ----------------------------------------------------------------------------
    def ok_calls(self) -> list[Call]:
        """Calls that were answered 200."""
        with self._lock:
            return [c for c in self.calls if c.status == 200]

    def sent(self, psid: str | None = None) -> list[dict[str, Any]]:
        """Messages delivered (200) by the Send API, optionally to one PSID, in order."""
        return [c.message for c in self.ok_calls()
                if c.message is not None and (psid is None or c.recipient == psid)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Poll until predicate() is true, or fail the test."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s; calls: {[(c.path, c.status) for c in self.calls]}")

    # -- serving ------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        if self.down:  # like a network failure: the connection closes without an answer
            handler.close_connection = True
            handler.connection.close()
            return
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        call = Call(handler.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}, body,
                    headers={k.lower(): v for k, v in handler.headers.items()})
        status, answer = 200, self._answer(call)
        if call.path.endswith("/me") and self.me_status != 200:
            status, answer = self.me_status, {"error": {"message": "Error validating access token", "code": 190,
                                                        "error_subcode": 463, "type": "OAuthException"}}
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and (failure.match is None or failure.match(call)):
                    failure.remaining -= 1
                    status, answer = failure.status, failure.body
                    break
            call.status = status
            self.calls.append(call)
            lose = status == 200 and call.message is not None and self.lose_answers > 0
            if lose:
                self.lose_answers -= 1
        if status == 200 and call.message is not None and self.echo_url:
            threading.Thread(target=self._echo, args=(call, str(answer.get("message_id"))), daemon=True).start()
        # Slow to answer, not slow to act: like Meta, the call took effect when it arrived.
        if self.delay and (self.delay_match is None or self.delay_match(call)):
            time.sleep(self.delay)
        if lose:  # delivered, but the answer never reaches the caller
            handler.close_connection = True
            handler.connection.close()
            return
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, call: Call) -> dict[str, Any]:
        if call.path.endswith("/messages"):
            if call.message is None:
                return {"recipient_id": call.recipient}
            return {"recipient_id": call.recipient, "message_id": f"m_stub_{next(self._ids)}"}
        if call.path.endswith("/pass_thread_control") or call.path.endswith("/take_thread_control"):
            return {"success": True}
        if call.path.endswith("/messenger_profile"):
            return {"result": "success"}
        if call.path.endswith("/me"):
            return {"name": "Clinic Page", "id": self.page_id}
        return {}
