"""The website widget: /widget.js, its small config, the demo clinic page at / and the static files."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from bot.assets import cached_file, versioned
from bot.deps import ClinicDep, SettingsDep

router = APIRouter()
STATIC = Path(__file__).resolve().parent.parent / "static"
# Only these files are served from /static: an allow-list, so no path ever reaches the file system.
STATIC_FILES = {"demo.css": "text/css; charset=utf-8", "staff.css": "text/css; charset=utf-8",
                "staff.js": "text/javascript; charset=utf-8"}
JS_TYPE = "text/javascript; charset=utf-8"


@router.head("/widget.js", include_in_schema=False)
@router.get("/widget.js", tags=["widget"], response_class=Response,
            responses={200: {"content": {"text/javascript": {}}}, 304: {"description": "Not modified"}})
async def widget_js(request: Request) -> Response:
    """The chat widget script for the clinic's site (gzip; ETag, 304 when unchanged; `?v=<hash>` cached a year)."""
    return cached_file(request, STATIC / "widget.js", JS_TYPE)


@router.get("/widget/config", tags=["widget"])
async def widget_config(clinic: ClinicDep, settings: SettingsDep) -> JSONResponse:
    """What the widget shows on open: greeting, suggested questions, phone and disclaimer."""
    body: dict[str, Any] = {
        "name": clinic.name,
        "greeting": clinic.greeting,
        "suggested_questions": clinic.suggested_questions[:4],
        "phone": clinic.phone,
        "phone_tel": f"tel:{clinic.phone_e164}",
        "booking_url": clinic.booking_url,
        "disclaimer": clinic.disclaimer,
        "emergency_number": clinic.emergency_number,
        "max_message_chars": settings.max_message_chars,
        "lang": "en",  # the language of the texts above (clinic.toml); the widget marks them up with it
    }
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})


@router.get("/", tags=["widget"], response_class=HTMLResponse)
async def demo_page(clinic: ClinicDep) -> HTMLResponse:
    """A plain mock clinic page with the widget on it (what `make run` shows in a browser)."""
    template = (STATIC / "demo.html").read_text(encoding="utf-8")
    values = {"name": clinic.name, "city": clinic.city, "phone": clinic.phone, "phone_tel": f"tel:{clinic.phone_e164}",
              "widget_js": versioned(STATIC / "widget.js", "/widget.js"),
              "demo_css": versioned(STATIC / "demo.css", "/static/demo.css")}
    page = template
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", html.escape(value, quote=True))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}", tags=["widget"], response_class=Response)
async def static_file(name: str, request: Request) -> Response:
    """The demo page's and staff console's own CSS and JS (gzip; `?v=<hash>` cached a year)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(404, detail=f"No static file {name!r}; available: {', '.join(sorted(STATIC_FILES))}.")
    return cached_file(request, STATIC / name, media_type)
