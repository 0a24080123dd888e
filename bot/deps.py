"""FastAPI dependencies as `Annotated` aliases; tests swap them with `app.dependency_overrides`.

All are `async def`: FastAPI runs a plain `def` dependency in a worker thread, which cost about
0.25 ms per dependency per request here.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.config import ClinicProfile, Settings


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


async def require_staff(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Staff routes: 503 when no STAFF_TOKEN is configured, 401 without the right bearer token."""
    expected = settings.staff_token_value
    if expected is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="Staff access is off: set the STAFF_TOKEN environment variable "
                                   "(e.g. in .env) and restart the service.")
    given = credentials.credentials if credentials else ""
    # Constant-time compare: the time taken says nothing about how much of the token matched.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Missing or wrong staff token.",
                            headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClinicDep = Annotated[ClinicProfile, Depends(get_clinic)]
RuntimeDep = Annotated[Any, Depends(get_runtime)]
StaffDep = Annotated[None, Depends(require_staff)]
