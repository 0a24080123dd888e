"""Staff answers in the console: write, preview, publish, review, history, clinic details, audit, export."""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictStr, field_validator

from bot.deps import RuntimeDep, SettingsDep, StaffDep
from bot.faq import ANSWER_MAX, APPLIES_MAX, PREVIEW, QUESTION_MAX, FaqIndex, passage
from bot.faq_store import Conflict, Content, KnowledgeStore, NotFound, Published
from bot.faq_workflow import Forbidden, Invalid, Workflow, stamp
from bot.index import IndexUnavailable
from bot.ratelimit import StaffLimit
from bot.types import IncomingMessage, Session

router = APIRouter()
T = TypeVar("T")
STORE_DOWN = "The database is not answering right now; try again in a minute (GET /health shows its state)."
Name = Annotated[StrictStr, Field(min_length=1, max_length=80, examples=["Ann"])]
# Ids and versions past 32 bits are a bad request (422), not a database error (503).
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1)]
VersionNo = Annotated[int, Query(ge=1, le=2**31 - 1)]


class _Text(BaseModel):
    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValueError("text must not contain NUL characters")
        if isinstance(value, str) and not value.strip() and value != "":
            raise ValueError("must have some text, not only spaces")
        return value


class EntryIn(_Text):
    """A staff answer: the question as patients ask it, the answer, other phrasings it applies to, who wrote it."""

    question: StrictStr = Field(min_length=1, max_length=QUESTION_MAX, examples=["Do you sell gift cards?"])
    answer: StrictStr = Field(min_length=1, max_length=ANSWER_MAX, examples=["Yes: ask at the front desk."])
    applies_to: list[Annotated[StrictStr, Field(min_length=1, max_length=QUESTION_MAX)]] = Field(
        default_factory=list, max_length=APPLIES_MAX)
    author: Name
    unanswered_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default_factory=list, max_length=1000)

    def content(self) -> Content:
        """The text to store."""
        return Content(self.question.strip(), self.answer.strip(), [a.strip() for a in self.applies_to if a.strip()])


class EntryUpdate(EntryIn):
    """A new version, based on the version the editor loaded (409 when someone saved in between)."""

    base_version: int = Field(ge=1, le=2**31)


class ActorIn(_Text):
    """Who does this."""

    actor: Name


class RollbackIn(ActorIn):
    """The version to bring back."""

    version: int = Field(ge=1, le=2**31)


class PreviewIn(_Text):
    """A test question, asked as a patient would."""

    message: StrictStr = Field(min_length=1, examples=["do u sell gift cards"])


class DetailIn(_Text):
    """A clinic detail's value (empty withdraws it)."""

    value: StrictStr = Field(max_length=ANSWER_MAX)
    author: Name
    base_version: int | None = Field(default=None, ge=1, le=2**31)


def _role(request: Request) -> str:
    return getattr(request.state, "staff_role", None) or "editor"


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call off the event loop; its refusals become 404/409/403/422, a database fault 503."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    except Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
    except Invalid as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    except Exception as exc:  # StoreUnavailable or a driver error: say so, never a 500
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=STORE_DOWN) from exc


def _workflow(runtime: Any) -> Workflow:
    return Workflow(KnowledgeStore(runtime.store))


def _entry_response(entry: dict[str, Any], code: int = 200) -> Response:
    import json

    return Response(json.dumps(entry), status_code=code, media_type="application/json",
                    headers={"ETag": f'"{entry["version"]}"'})


async def _published(runtime: Any, entry: dict[str, Any]) -> dict[str, Any]:
    # This worker answers from it at once; the others see the new revision within a second.
    await asyncio.to_thread(runtime.refresh_faq)
    return entry


@router.get("/staff/api/faq", tags=["staff"])
async def faq_list(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> dict[str, Any]:
    """Every staff answer and clinic detail with its latest version, newest change first."""
    return {"entries": await _call(KnowledgeStore(runtime.store).entries)}


@router.post("/staff/api/faq", tags=["staff"], status_code=201)
async def faq_create(body: EntryIn, request: Request, _staff: StaffDep, runtime: RuntimeDep,
                     _limit: StaffLimit) -> Response:
    """Save a new answer as a draft (it answers nobody until published)."""
    entry = await _call(_workflow(runtime).create, body.content(), body.author.strip(),
                        unanswered_ids=body.unanswered_ids, role=_role(request))
    return _entry_response(entry, 201)


@router.get("/staff/api/faq/export", tags=["staff"])
async def faq_export(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> Response:
    """Every entry as Markdown files in knowledge/ format, zipped (keep them in git; `bot faq import` reads them)."""
    files = await _call(_workflow(runtime).export)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in sorted(files.items()):
            zf.writestr(name, text)
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="staff-answers-{stamp()}.zip"'})


@router.get("/staff/api/faq/{entry_id}", tags=["staff"])
async def faq_get(entry_id: EntryId, _staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> Response:
    """One entry with every version, newest first; its ETag is the latest version."""
    return _entry_response(await _call(KnowledgeStore(runtime.store).entry, entry_id, with_versions=True))


@router.put("/staff/api/faq/{entry_id}", tags=["staff"])
async def faq_save(entry_id: EntryId, body: EntryUpdate, request: Request, _staff: StaffDep, runtime: RuntimeDep,
                   _limit: StaffLimit) -> Response:
    """Save a new version; 409 when `base_version` is no longer the latest (nothing is overwritten)."""
    entry = await _call(_workflow(runtime).save, entry_id, body.base_version, body.content(), body.author.strip(),
                        _role(request))
    return _entry_response(entry)


@router.post("/staff/api/faq/{entry_id}/publish", tags=["staff"])
async def faq_publish(entry_id: EntryId, body: ActorIn, request: Request, _staff: StaffDep, runtime: RuntimeDep,
                      _limit: StaffLimit) -> Response:
    """Publish the latest version; a flagged one waits for a reviewer (status "pending")."""
    entry = await _call(_workflow(runtime).publish, entry_id, body.actor.strip(), _role(request))
    return _entry_response(await _published(runtime, entry))


@router.post("/staff/api/faq/{entry_id}/approve", tags=["staff"])
async def faq_approve(entry_id: EntryId, body: ActorIn, request: Request, _staff: StaffDep, runtime: RuntimeDep,
                      _limit: StaffLimit) -> Response:
    """A reviewer (not the author) approves a flagged entry: it goes live."""
    entry = await _call(_workflow(runtime).approve, entry_id, body.actor.strip(), _role(request))
    return _entry_response(await _published(runtime, entry))


@router.post("/staff/api/faq/{entry_id}/unpublish", tags=["staff"])
async def faq_unpublish(entry_id: EntryId, body: ActorIn, _staff: StaffDep, runtime: RuntimeDep,
                        _limit: StaffLimit) -> Response:
    """Withdraw an entry; patients stop getting it within a second."""
    entry = await _call(_workflow(runtime).unpublish, entry_id, body.actor.strip())
    return _entry_response(await _published(runtime, entry))


@router.post("/staff/api/faq/{entry_id}/rollback", tags=["staff"])
async def faq_rollback(entry_id: EntryId, body: RollbackIn, request: Request, _staff: StaffDep, runtime: RuntimeDep,
                       _limit: StaffLimit) -> Response:
    """Bring an old version back as the newest one (live at once if it was published before)."""
    entry = await _call(_workflow(runtime).rollback, entry_id, body.version, body.actor.strip(), _role(request))
    return _entry_response(await _published(runtime, entry))


@router.get("/staff/api/faq/{entry_id}/diff", tags=["staff"])
async def faq_diff(entry_id: EntryId, a: VersionNo, b: VersionNo, _staff: StaffDep, runtime: RuntimeDep,
                   _limit: StaffLimit) -> dict[str, Any]:
    """What changed between versions `a` and `b`."""
    return await _call(_workflow(runtime).diff, entry_id, a, b)


@router.post("/staff/api/faq/{entry_id}/preview", tags=["staff"])
async def faq_preview(entry_id: EntryId, body: PreviewIn, _staff: StaffDep, runtime: RuntimeDep,
                      settings: SettingsDep, _limit: StaffLimit) -> dict[str, Any]:
    """The exact reply a patient would get with this entry's latest version live, and the article passages it
    outranks (same pipeline and triage; nothing is stored)."""
    if len(body.message) > settings.max_message_chars:
        raise HTTPException(422, detail=f"message is {len(body.message)} characters; the limit is "
                                        f"{settings.max_message_chars}. Please shorten it.")
    entry = await _call(KnowledgeStore(runtime.store).entry, entry_id)
    item = Published(entry["id"], entry["kind"], entry["slug"], 0,
                     Content(entry["question"], entry["answer"], entry["applies_to"]), None, None)
    await asyncio.to_thread(runtime.faq.embed, item)
    token = PREVIEW.set(item)
    try:
        reply = await runtime.chatbot.reply(IncomingMessage(body.message, channel="staff"), Session(id="staff-preview"))
    finally:
        PREVIEW.reset(token)
    vec = (await asyncio.to_thread(runtime.embedder.embed, [body.message]))[0]
    hits = FaqIndex([item]).scores(vec, body.message)
    score = hits[0].score if hits else 0.0
    try:
        found = await runtime.search(body.message, 5)
    except IndexUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="The article index is not answering right now; try the preview again in a minute."
                            ) from exc
    answered = any(c.source == passage(item).source for c in reply.citations)
    return {"reply": reply.model_dump(), "answered_by_entry": answered, "entry_score": round(score, 4),
            "threshold": runtime.faq.threshold,
            "passages": [{"title": p.title, "section": p.section, "score": round(p.dense_score, 4),
                          "outranked": answered and p.source not in {c.source for c in reply.citations}}
                         for p in found.passages]}


@router.get("/staff/api/audit", tags=["staff"])
async def audit(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> dict[str, Any]:
    """Who created, saved, published, approved, unpublished or rolled back what, and when; newest first."""
    return {"items": await _call(KnowledgeStore(runtime.store).audit)}


@router.get("/staff/api/audit.csv", tags=["staff"])
async def audit_csv(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> StreamingResponse:
    """The audit log as a CSV download."""
    items = await _call(KnowledgeStore(runtime.store).audit, 100_000)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "at", "actor", "action", "entry_id", "version", "question"])
    writer.writeheader()
    for row in items:
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v) for k, v in row.items()})
    return StreamingResponse(iter([buf.getvalue()]), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="audit-{stamp()}.csv"'})


@router.get("/staff/api/clinic-details", tags=["staff"])
async def clinic_details(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> dict[str, Any]:
    """The clinic details form: each fact patients ask most, with what the clinic has said."""
    return {"fields": await _call(_workflow(runtime).details)}


@router.put("/staff/api/clinic-details/{key}", tags=["staff"])
async def clinic_detail_save(key: str, body: DetailIn, request: Request, _staff: StaffDep, runtime: RuntimeDep,
                             _limit: StaffLimit) -> Response:
    """Save and publish one clinic detail (prices, hours and insurance wait for a reviewer); empty withdraws it."""
    entry = await _call(_workflow(runtime).set_detail, key, body.value, body.author.strip(), body.base_version,
                        _role(request))
    return _entry_response(await _published(runtime, entry))
