"""The Graph API client the Messenger channel uses: versioned URLs, the page token, retries with backoff.

The Page token goes in the `Authorization` header (never the query string, which proxies log), with
`appsecret_proof` (HMAC-SHA256 of the token, keyed by the app secret) when the app secret is set.
Retries (tenacity, exponential backoff with jitter): 5xx, timeouts, unreachable, HTTP 429 and Graph's
rate-limit / transient error codes. Any other 4xx fails at once. A call whose request may have reached
Meta (a timeout or a dropped connection after it was written) is marked `uncertain`: the Send API has no
idempotency key, so the channel never retries such a send blindly (callers pass attempts=1 for sends).
Errors carry the HTTP status and the Graph error code only: never the request (it holds the patient's
text) nor the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any

import httpx
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bot.config import Settings

log = logging.getLogger(__name__)

# Module constants so tests can shrink them; read at call time.
RETRY_ATTEMPTS = 4
RETRY_WAIT_INITIAL = 0.5
RETRY_WAIT_MAX = 8.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Graph error codes that mean "slow down" or "try again": 1/2 unknown or temporary, 4/17/32/613 rate
# limits (app, user, page, calls), 1200 Messenger's temporary send failure, 80001-80014 business limits.
RETRY_CODES = {1, 2, 4, 17, 32, 341, 613, 1200}
# 190: the access token is invalid or expired; 102: the session (token) is no longer valid.
TOKEN_CODES = ("190", "102")


class GraphError(Exception):
    """A Graph API call that failed; `code` is Graph's error code, or "timeout" / "unreachable"."""

    def __init__(self, op: str, status: int | None, code: str, retryable: bool, *, uncertain: bool = False) -> None:
        super().__init__(f"{op} failed: status={status} code={code}")
        self.op, self.status, self.code, self.retryable = op, status, code, retryable
        self.uncertain = uncertain  # the request may have reached Meta and been acted on

    @property
    def token_expired(self) -> bool:
        """Meta refused the Page token (expired, revoked, or the session ended)."""
        return self.code.split(".")[0] in TOKEN_CODES


def _retryable(exc: BaseException) -> bool:
    # A call that may have reached Meta is never repeated here: the caller decides (the outbox waits for the echo).
    return isinstance(exc, GraphError) and exc.retryable and not exc.uncertain


def interpret(response: httpx.Response, op: str) -> dict[str, Any]:
    """The JSON body of a successful response, or a GraphError saying whether to retry."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if status < 300:
        return body if isinstance(body, dict) else {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    transient = bool(error.get("is_transient"))
    retry = (status >= 500 or status == 429 or transient or code in RETRY_CODES
             or (isinstance(code, int) and 80001 <= code <= 80014))
    label = str(code) if isinstance(code, int) else f"http_{status}"
    if isinstance(error.get("error_subcode"), int):
        label += f".{error['error_subcode']}"
    raise GraphError(op, status, label, retry)


def _transport_error(exc: httpx.HTTPError, op: str) -> GraphError:
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    # Only a failure to connect (or to get a pooled connection) proves nothing was written.
    written = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return GraphError(op, None, code, True, uncertain=written)


def _retrying_kwargs(attempts: int | None) -> dict[str, Any]:
    return {"stop": stop_after_attempt(attempts or RETRY_ATTEMPTS),
            "wait": wait_exponential_jitter(initial=RETRY_WAIT_INITIAL, max=RETRY_WAIT_MAX,
                                            jitter=RETRY_WAIT_INITIAL / 2),
            "retry": retry_if_exception(_retryable), "reraise": True}


def appsecret_proof(token: str, app_secret: str) -> str:
    """Meta's `appsecret_proof`: lowercase hex HMAC-SHA256 of the access token, keyed by the app secret."""
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


class GraphClient:
    """Calls `{GRAPH_API_BASE}/{GRAPH_API_VERSION}/{path}` with the Page token in a header, with retries."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.graph_api_base.rstrip("/")
        self.version = settings.graph_api_version.strip("/")
        token = settings.messenger_page_access_token
        self.token = token.get_secret_value() if token is not None else ""
        secret = settings.messenger_app_secret
        self._proof = appsecret_proof(self.token, secret.get_secret_value()) if secret and self.token else None
        self._client: httpx.AsyncClient | None = None

    def url(self, path: str) -> str:
        """The versioned URL of a Graph path (no token in it)."""
        return f"{self.base}/{self.version}/{path.lstrip('/')}"

    def _auth(self) -> dict[str, Any]:
        params = {"appsecret_proof": self._proof} if self._proof else {}
        return {"headers": {"Authorization": f"Bearer {self.token}"}, "params": params}

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, op: str,
                      attempts: int | None = None) -> dict[str, Any]:
        """One Graph call; retries what is worth retrying (attempts=1: never); raises GraphError."""
        if not self.token:
            raise GraphError(op, None, "no_page_token", False)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        client = self._client
        async for attempt in AsyncRetrying(**_retrying_kwargs(attempts)):
            with attempt:
                try:
                    response = await client.request(method, self.url(path), json=body, **self._auth())
                except httpx.HTTPError as exc:
                    raise _transport_error(exc, op) from None
                return interpret(response, op)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or reraises

    async def post(self, path: str, body: dict[str, Any], *, op: str, attempts: int | None = None) -> dict[str, Any]:
        """POST JSON; retries what is worth retrying; raises GraphError."""
        return await self.request("POST", path, body, op=op, attempts=attempts)

    async def get(self, path: str, *, op: str, attempts: int | None = None) -> dict[str, Any]:
        """GET a Graph path (e.g. `me`, the token check)."""
        return await self.request("GET", path, op=op, attempts=attempts)

    def request_sync(self, method: str, path: str, body: dict[str, Any], *, op: str) -> dict[str, Any]:
        """The same call, blocking (for the set-up command)."""
        if not self.token:
            raise GraphError(op, None, "no_page_token", False)
        with httpx.Client(timeout=TIMEOUT) as client:
            for attempt in Retrying(**_retrying_kwargs(None)):
                with attempt:
                    try:
                        response = client.request(method, self.url(path), json=body, **self._auth())
                    except httpx.HTTPError as exc:
                        raise _transport_error(exc, op) from None
                    return interpret(response, op)
        raise AssertionError("unreachable")  # pragma: no cover

    def post_sync(self, path: str, body: dict[str, Any], *, op: str) -> dict[str, Any]:
        """POST, blocking (for the set-up command)."""
        return self.request_sync("POST", path, body, op=op)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class _ScrubToken(logging.Filter):
    """httpx logs request URLs at INFO; ours carry the page token in the query string."""

    _TOKEN = re.compile(r"(access_token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._TOKEN.sub(r"\1[redacted]", str(a)) if "access_token=" in str(a) else a
                                for a in record.args)
        if "access_token=" in str(record.msg):
            record.msg = self._TOKEN.sub(r"\1[redacted]", str(record.msg))
        return True


logging.getLogger("httpx").addFilter(_ScrubToken())
