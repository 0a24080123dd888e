"""Per-client rate limits (the `limits` library), in memory or shared through Redis across workers."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from limits import parse, storage, strategies

from bot.config import Settings
from bot.deps import SettingsDep

log = logging.getLogger(__name__)


class RateLimiter:
    """Moving-window limits per client and route; fails open (and says so in the log) if Redis is down."""

    def __init__(self, settings: Settings) -> None:
        url = settings.redis_url or "memory://"
        self.shared = settings.redis_url is not None
        self._storage = storage.storage_from_string(url)
        self._limiter = strategies.MovingWindowRateLimiter(self._storage)
        self._salt = (settings.staff_token_value or "clinic-bot").encode()
        self.limits = {"chat": parse(settings.rate_limit_chat), "feedback": parse(settings.rate_limit_chat),
                       "search": parse(settings.rate_limit_search), "staff": parse(settings.rate_limit_search)}

    def client_key(self, request: Request) -> str:
        """A hashed client address: limits need an identity, logs and Redis never get the IP itself."""
        host = request.client.host if request.client else "unknown"
        return hashlib.sha256(self._salt + host.encode()).hexdigest()[:16]

    def check(self, name: str, request: Request) -> None:
        """Count a hit; 429 with Retry-After when over the limit."""
        item = self.limits[name]
        key = self.client_key(request)
        try:
            allowed = self._limiter.hit(item, name, key)
            if allowed:
                return
            reset = self._limiter.get_window_stats(item, name, key).reset_time
        except Exception as exc:  # a limiter outage must not take the chat down with it
            log.warning("rate limiter unavailable: %s", type(exc).__name__)
            return
        retry = max(1, math.ceil(reset - time.time()))
        raise HTTPException(429, detail=f"Too many requests: please wait {retry} s and try again.",
                            headers={"Retry-After": str(retry)})


def limit(name: str) -> Any:
    """A dependency that applies the named limit."""

    async def dependency(request: Request, settings: SettingsDep) -> None:
        limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
        if limiter is None:
            limiter = request.app.state.limiter = RateLimiter(settings)
        limiter.check(name, request)

    return Depends(dependency)


ChatLimit = Annotated[None, limit("chat")]
FeedbackLimit = Annotated[None, limit("feedback")]
SearchLimit = Annotated[None, limit("search")]
StaffLimit = Annotated[None, limit("staff")]
