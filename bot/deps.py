"""FastAPI dependencies as `Annotated` aliases; tests swap them with `app.dependency_overrides`.

All are `async def`: FastAPI runs a plain `def` dependency in a worker thread, which cost about
0.25 ms per dependency per request here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot import metrics
from bot.config import ClinicProfile, Settings

log = logging.getLogger("bot.auth")


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_clinic(request: Request) -> ClinicProfile:
    """The clinic profile."""
    return request.app.state.clinic


async def get_runtime(request: Request) -> Any:
    """The loaded model, index, store and chatbot; 503 while they are still loading."""
    runtime = request.app.state.runtime
    if not runtime.ready.is_set():
        detail = runtime.error or "The assistant is starting up; try again in a few seconds."
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail, headers={"Retry-After": "5"})
    return runtime


_bearer = HTTPBearer(auto_error=False, description="The staff token (STAFF_TOKEN)")


def staff_token_matches(settings: Settings, given: str) -> bool:
    """Whether `given` is the staff token (STAFF_TOKEN itself, or its hash when set as sha256:<hex>)."""
    return _token_matches(settings.staff_token_value, given)


def staff_role(settings: Settings, given: str) -> str | None:
    """The role a bearer token signs in as: "reviewer" (REVIEWER_TOKEN), "editor" (STAFF_TOKEN) or None."""
    if _token_matches(settings.reviewer_token_value, given):
        return "reviewer"
    return "editor" if _token_matches(settings.staff_token_value, given) else None


def _token_matches(expected: str | None, given: str) -> bool:
    if expected is None:
        return False
    if expected.startswith("sha256:"):
        # Constant-time compare of the hashes: the time taken says nothing about how much matched.
        digest = "sha256:" + hashlib.sha256(given.encode()).hexdigest()
        return hmac.compare_digest(digest.encode(), expected.lower().encode())
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_staff(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Staff routes: 503 when no STAFF_TOKEN is configured, 401 without the right bearer token, 429 after too many
    failed sign-ins from one address (or from everyone together)."""
    from bot.ratelimit import get_limiter

    if settings.staff_token_value is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="Staff access is off: set the STAFF_TOKEN environment variable "
                                   "(e.g. in .env) and restart the service.")
    limiter = get_limiter(request, settings)
    # Checked before the token is compared: a guesser over the limit learns nothing more, right or wrong.
    await limiter.refuse_blocked_staff(request)
    given = credentials.credentials if credentials else ""
    role = staff_role(settings, given)
    request.state.staff_role = role
    if role is None:
        await limiter.count_staff_failure(request)
        metrics.STAFF_AUTH_FAILURES.inc()
        # The hashed client key and the route; never the token that was tried.
        log.warning("staff sign-in failed", extra={"event": {"client": limiter.client_key(request),
                                                             "route": request.url.path,
                                                             "had_token": bool(given)}})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Missing or wrong staff token.",
                            headers={"WWW-Authenticate": "Bearer"})


async def require_reviewer(request: Request, _staff: Annotated[None, Depends(require_staff)]) -> None:
    """Routes only a reviewer may use (approving flagged staff entries): 403 for an editor's token."""
    if getattr(request.state, "staff_role", None) != "reviewer":
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail="Only a reviewer can approve: sign in with the reviewer token (REVIEWER_TOKEN).")


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClinicDep = Annotated[ClinicProfile, Depends(get_clinic)]
RuntimeDep = Annotated[Any, Depends(get_runtime)]
StaffDep = Annotated[None, Depends(require_staff)]
ReviewerDep = Annotated[None, Depends(require_reviewer)]
