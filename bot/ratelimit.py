"""Per-client rate limits (the `limits` library, asyncio API), in memory or shared through Redis across workers.

Every Redis call is awaited with a short timeout: a Redis that stops answering (paused, a dead network path) must
not hold a request, let alone the worker's event loop. A check that cannot reach Redis fails open and is counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem, parse
from limits.aio import strategies
from limits.storage import storage_from_string

from bot import metrics
from bot.config import Settings
from bot.deps import SettingsDep

log = logging.getLogger(__name__)


def client_address(request: Request) -> str:
    """The client's address for limits: IPv4 as is, IPv6 by its /64 (one household or host gets many addresses).

    X-Forwarded-For is applied before this (uvicorn's ProxyHeadersMiddleware, only for FORWARDED_ALLOW_IPS).
    """
    host = request.client.host if request.client else "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def _async_url(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


class RateLimiter:
    """Moving-window limits per client and route; fails open (counted, logged once per outage) if Redis is down."""

    def __init__(self, settings: Settings) -> None:
        self.shared = settings.redis_url is not None
        self.timeout = settings.rate_limit_timeout
        self.retry_seconds = settings.rate_limit_retry_seconds
        if settings.redis_url is not None:
            # redis-py's asyncio client, with socket timeouts of its own as well as ours around every call.
            self._storage: Any = storage_from_string(
                _async_url(settings.redis_url_value or ""), implementation="redispy",
                socket_timeout=settings.rate_limit_timeout, socket_connect_timeout=settings.rate_limit_timeout)
        else:
            self._storage = storage_from_string("async+memory://")
        self._limiter = strategies.MovingWindowRateLimiter(self._storage)
        self._salt = (settings.staff_token_value or "clinic-bot").encode()
        self.limits = {"chat": parse(settings.rate_limit_chat), "feedback": parse(settings.rate_limit_chat),
                       "search": parse(settings.rate_limit_search), "staff": parse(settings.rate_limit_search),
                       "staff_failures": parse(settings.rate_limit_staff_failures),
                       "staff_failures_global": parse(settings.rate_limit_staff_failures_global)}
        self._down_until = 0.0

    def client_key(self, request: Request) -> str:
        """A hashed client address: limits need an identity, logs and Redis never get the IP itself."""
        return hashlib.sha256(self._salt + client_address(request).encode()).hexdigest()[:16]

    async def _call(self, op: str, *args: Any) -> Any:
        """One limiter call under the timeout; None when the limiter is unavailable (the caller fails open)."""
        if time.monotonic() < self._down_until:
            metrics.RATE_LIMIT_FAILURES.labels("skipped").inc()
            return None
        try:
            return await asyncio.wait_for(getattr(self._limiter, op)(*args), self.timeout)
        except Exception as exc:  # a limiter outage must not take the chat down with it
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            metrics.RATE_LIMIT_FAILURES.labels(reason).inc()
            if self._down_until == 0.0 or time.monotonic() >= self._down_until + self.retry_seconds:
                log.warning("rate limiter unavailable, failing open: %s", type(exc).__name__)
            self._down_until = time.monotonic() + self.retry_seconds
            return None

    async def _retry_after(self, item: RateLimitItem, *keys: str) -> int:
        stats = await self._call("get_window_stats", item, *keys)
        reset = stats.reset_time if stats is not None else time.time() + item.get_expiry()
        return max(1, math.ceil(reset - time.time()))

    async def check(self, name: str, request: Request) -> None:
        """Count a hit; 429 with Retry-After when over the limit."""
        item = self.limits[name]
        key = self.client_key(request)
        allowed = await self._call("hit", item, name, key)
        if allowed is None or allowed:
            return
        _too_many(await self._retry_after(item, name, key))

    async def refuse_blocked_staff(self, request: Request) -> None:
        """429 before the token is even compared when this client, or everyone together, failed too often."""
        for name, key in (("staff_failures", self.client_key(request)), ("staff_failures_global", "all")):
            item = self.limits[name]
            if await self._call("test", item, name, key) is False:
                _too_many(await self._retry_after(item, name, key), "Too many failed staff sign-ins")

    async def count_staff_failure(self, request: Request) -> None:
        """Record a failed staff sign-in against the client and the global budget."""
        await self._call("hit", self.limits["staff_failures"], "staff_failures", self.client_key(request))
        await self._call("hit", self.limits["staff_failures_global"], "staff_failures_global", "all")


def _too_many(retry: int, what: str = "Too many requests") -> None:
    raise HTTPException(429, detail=f"{what}: please wait {retry} s and try again.",
                        headers={"Retry-After": str(retry)})


def get_limiter(request: Request, settings: Settings) -> RateLimiter:
    """The app's limiter, made on first use."""
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is None:
        limiter = request.app.state.limiter = RateLimiter(settings)
    return limiter


def limit(name: str) -> Any:
    """A dependency that applies the named limit."""

    async def dependency(request: Request, settings: SettingsDep) -> None:
        await get_limiter(request, settings).check(name, request)

    return Depends(dependency)


ChatLimit = Annotated[None, limit("chat")]
FeedbackLimit = Annotated[None, limit("feedback")]
SearchLimit = Annotated[None, limit("search")]
StaffLimit = Annotated[None, limit("staff")]
