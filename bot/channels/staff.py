"""The staff console: the /staff page and its bearer-token API (ask as a patient, unanswered, feedback, stats)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StrictStr, field_validator

from bot.assets import versioned
from bot.deps import RuntimeDep, SettingsDep, StaffDep
from bot.ratelimit import StaffLimit
from bot.types import IncomingMessage, Reply, Session

router = APIRouter()
log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static"
KINDS = ("answer", "handoff", "emergency", "booking", "smalltalk")
# Two questions at or above this cosine are "the same question" for the staff list.
SIMILAR = 0.75
# How many of the most-asked groups the Unanswered list re-asks through the pipeline on each load.
PREVIEW_GROUPS = 40
STORE_DOWN = "The database is not answering right now; try again in a minute (GET /health shows its state)."


class AskRequest(BaseModel):
    """A question asked as a patient would ask it; nothing is stored."""

    message: StrictStr = Field(min_length=1, examples=["What is the psoas?"])

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if "\x00" in value or not value.strip():
            raise ValueError("message must be some text (not empty, no NUL characters)")
        return value


class HandledRequest(BaseModel):
    """The ids to mark as handled."""

    # Row ids are 64-bit: a larger number is a bad request (422), not a database error (503).
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=1000, examples=[[1, 2, 3]])


class UnansweredGroup(BaseModel):
    """Similar unanswered questions: one representative, how often and when last asked."""

    question: str
    count: int
    last_seen: str
    ids: list[int]
    variants: list[str]
    answered_now: bool = Field(description="the pipeline now answers the representative question from the articles "
                                           "(checked for the first PREVIEW_GROUPS groups; false for the rest)")


class UnansweredResponse(BaseModel):
    """Unanswered questions grouped by similarity, most asked first."""

    groups: list[UnansweredGroup]
    total: int


class FeedbackItem(BaseModel):
    """One thumbs-down on a reply, with the question it answered and the patient's comment."""

    id: int
    rating: str
    comment: str | None
    reply_kind: str | None
    reply_text: str | None
    question: str | None
    created_at: str


class FeedbackResponse(BaseModel):
    """Thumbs-down replies, newest first."""

    items: list[FeedbackItem]


class DayCounts(BaseModel):
    """Replies on one day, per kind."""

    date: str
    answer: int = 0
    handoff: int = 0
    emergency: int = 0
    booking: int = 0
    smalltalk: int = 0
    total: int = 0
    answered_share: float | None = Field(default=None,
                                         description="answer / (answer + handoff) that day; null when there were none")


class StatsResponse(BaseModel):
    """Replies per day and kind for the last 30 days, and the share of questions answered from the articles."""

    days: list[DayCounts]
    totals: dict[str, int]
    answered_share: float | None = Field(description="answer / (answer + handoff); null when there were none")


async def _store_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except Exception as exc:  # StoreUnavailable or a driver error: say so, never a 500
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=STORE_DOWN) from exc


def group_questions(rows: list[dict[str, Any]], vectors: np.ndarray,
                    threshold: float = SIMILAR) -> list[dict[str, Any]]:
    """Group L2-normalised question vectors (rows newest first) by their closest match; biggest groups first."""
    vecs = np.asarray(vectors, dtype=np.float32)
    if len(vecs) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(vecs)} vectors")
    # Every pairwise cosine in one product (the store caps the list at 500 rows: 1 MB); a broken (NaN) vector
    # matches nothing, as in the pairwise loop this replaced.
    sims = vecs @ vecs.T if len(vecs) else np.zeros((0, 0), dtype=np.float32)
    sims[np.isnan(sims)] = -np.inf
    # closest[g, j]: row j's best cosine with any member of group g so far, raised (np.maximum) as members join;
    # a row's best group is then one argmax down its column instead of a pass over every member.
    closest = np.empty_like(sims)
    groups: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        # A question joins the group holding its closest match (any member, not only the first): paraphrases
        # of paraphrases stay together. On a tie the later group wins, as it did in the loop.
        column = closest[: len(groups), i][::-1]
        best = len(groups) - 1 - int(column.argmax()) if len(groups) else -1
        if best < 0 or not closest[best, i] >= threshold:
            groups.append({"question": row["question"], "count": 0, "last_seen": row["created_at"], "ids": [],
                           "variants": []})
            best = len(groups) - 1
            closest[best] = sims[i]
        else:
            np.maximum(closest[best], sims[i], out=closest[best])
        group = groups[best]
        group["count"] += 1
        group["ids"].append(row["id"])
        group["last_seen"] = max(group["last_seen"], row["created_at"])
        text = row["question"]
        if text != group["question"] and text not in group["variants"] and len(group["variants"]) < 5:
            group["variants"].append(text)
    groups.sort(key=lambda g: (-g["count"], _neg_time(g["last_seen"])))
    return groups


def _neg_time(iso: str) -> float:
    try:
        return -datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


@router.get("/staff", tags=["staff"], response_class=HTMLResponse)
async def staff_page() -> HTMLResponse:
    """The staff console (sign in with the staff token)."""
    page = (STATIC / "staff.html").read_text(encoding="utf-8")
    for name in ("staff.css", "staff.js"):  # versioned URLs: the files themselves are cached for a year
        page = page.replace(f'"/static/{name}"', f'"{versioned(STATIC / name, "/static/" + name)}"')
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/staff/api/session", tags=["staff"])
async def staff_session(request: Request, _staff: StaffDep, _limit: StaffLimit) -> dict[str, Any]:
    """Check a staff token: 200 with its role (editor or reviewer), 401 when wrong, 503 when STAFF_TOKEN is unset."""
    return {"ok": True, "role": getattr(request.state, "staff_role", None) or "editor"}


@router.post("/staff/api/ask", tags=["staff"], response_model=Reply)
async def staff_ask(body: AskRequest, _staff: StaffDep, runtime: RuntimeDep, settings: SettingsDep,
                    _limit: StaffLimit) -> Response:
    """The exact reply a patient would get to this message (a fresh conversation; nothing is stored)."""
    if len(body.message) > settings.max_message_chars:
        raise HTTPException(422, detail=f"message is {len(body.message)} characters; the limit is "
                                        f"{settings.max_message_chars}. Please shorten it.")
    reply = await runtime.chatbot.reply(IncomingMessage(body.message, channel="staff"), Session(id="staff-preview"))
    return Response(reply.model_dump_json(), media_type="application/json")


@router.get("/staff/api/unanswered", tags=["staff"], response_model=UnansweredResponse)
async def staff_unanswered(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> UnansweredResponse:
    """Questions the articles could not answer, grouped by similarity, most asked first, and whether they are now."""
    rows = await _store_call(runtime.store.list_unanswered)
    if not rows:
        return UnansweredResponse(groups=[], total=0)
    # Embedding and grouping are CPU work: one hop to a thread, so patients' chats go on meanwhile.
    groups = await asyncio.to_thread(_embed_and_group, runtime.embedder, rows)
    # Each check is a whole pipeline run (embedding, retrieval, an LLM call in llm mode) on every load of the list,
    # so only the most-asked groups, where closing a gap matters most, are checked; run together, their queries
    # share the batching embedder's model calls instead of queueing one after another.
    preview = groups[:PREVIEW_GROUPS]
    answered = await asyncio.gather(*(_answers_now(runtime, g["question"]) for g in preview))
    answered += [False] * (len(groups) - len(preview))
    return UnansweredResponse(groups=[UnansweredGroup(**g, answered_now=a) for g, a in zip(groups, answered,
                                                                                            strict=True)],
                              total=len(rows))


# Vectors of questions already embedded for this list, keyed by a hash of (model, text): a reload of the list embeds
# only new questions (500 wordings took 11 s on a busy machine), and no patient text is held here past retention.
_VECTORS: OrderedDict[str, np.ndarray] = OrderedDict()
_VECTORS_MAX = 5000
_VECTORS_LOCK = threading.Lock()  # two staff loading the list at once run this in two threads


def _embed_and_group(embedder: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    texts = [r["question"] for r in rows]
    unique = list(dict.fromkeys(texts))  # embed each distinct wording once
    name = str(getattr(embedder, "name", ""))
    keys = {t: hashlib.sha256(f"{name}\x00{t}".encode()).hexdigest() for t in unique}
    with _VECTORS_LOCK:
        known = {t: _VECTORS[keys[t]] for t in unique if keys[t] in _VECTORS}
    todo = [t for t in unique if t not in known]
    if todo:
        known.update(zip(todo, np.asarray(embedder.embed(todo), dtype=np.float32), strict=True))
    with _VECTORS_LOCK:
        for t in unique:
            _VECTORS[keys[t]] = known[t]
            _VECTORS.move_to_end(keys[t])
        while len(_VECTORS) > _VECTORS_MAX:
            _VECTORS.popitem(last=False)
    return group_questions(rows, np.stack([known[t] for t in texts]))


async def _answers_now(runtime: Any, question: str) -> bool:
    """Whether a patient asking this now gets an answer; the same preview as staff_ask (nothing stored)."""
    try:
        reply = await runtime.chatbot.reply(IncomingMessage(question, channel="staff"), Session(id="staff-preview"))
    except Exception as exc:  # one failed check leaves its group unticked; the list still loads
        log.warning("answered_now check failed: %s", type(exc).__name__)
        return False
    return bool(reply.kind == "answer")


@router.post("/staff/api/unanswered/handled", tags=["staff"])
async def staff_unanswered_handled(body: HandledRequest, _staff: StaffDep, runtime: RuntimeDep,
                                   _limit: StaffLimit) -> dict[str, int]:
    """Mark unanswered questions as handled (e.g. an article now covers them)."""
    return {"handled": await _store_call(runtime.store.mark_unanswered_handled, body.ids)}


@router.get("/staff/api/feedback", tags=["staff"], response_model=FeedbackResponse)
async def staff_feedback(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> FeedbackResponse:
    """Thumbs-down replies with the question and the patient's comment, newest first."""
    rows = await _store_call(runtime.store.list_feedback, rating="down")
    return FeedbackResponse(items=[FeedbackItem(**{k: r.get(k) for k in FeedbackItem.model_fields}) for r in rows])


@router.post("/staff/api/feedback/handled", tags=["staff"])
async def staff_feedback_handled(body: HandledRequest, _staff: StaffDep, runtime: RuntimeDep,
                                 _limit: StaffLimit) -> dict[str, int]:
    """Mark feedback as handled."""
    return {"handled": await _store_call(runtime.store.mark_feedback_handled, body.ids)}


@router.post("/staff/api/reindex", tags=["staff"])
async def staff_reindex(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> dict[str, Any]:
    """Re-run ingest of KNOWLEDGE_DIR (only changed passages are embedded) and report its counts."""
    try:
        report = await asyncio.to_thread(runtime.reindex)
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"Re-index failed ({type(exc).__name__}); the current index stays in use. "
                                   "Check KNOWLEDGE_DIR and the index store, then try again.") from exc
    return dict(report.as_dict())


@router.get("/staff/api/stats", tags=["staff"], response_model=StatsResponse)
async def staff_stats(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> StatsResponse:
    """Replies per day and kind for the last 30 days, and the share answered from the articles."""
    rows = await _store_call(runtime.store.daily_counts, 30)
    today = datetime.now(UTC).date()
    days = {(today - timedelta(days=n)).isoformat(): DayCounts(date=(today - timedelta(days=n)).isoformat())
            for n in range(29, -1, -1)}
    totals = dict.fromkeys(KINDS, 0)
    for row in rows:
        day, kind, count = row["date"], row["kind"], int(row["count"])
        if day not in days or kind not in totals:
            continue
        setattr(days[day], kind, getattr(days[day], kind) + count)
        days[day].total += count
        totals[kind] += count
    for counts in days.values():
        asked_that_day = counts.answer + counts.handoff
        counts.answered_share = round(counts.answer / asked_that_day, 4) if asked_that_day else None
    asked = totals["answer"] + totals["handoff"]
    share = round(totals["answer"] / asked, 4) if asked else None
    return StatsResponse(days=list(days.values()), totals=totals, answered_share=share)


# -- Messenger (issue 14): the Page token's state, the queue, and conversations flagged for staff ------------------
@router.get("/staff/api/messenger", tags=["staff"])
async def staff_messenger(_staff: StaffDep, runtime: RuntimeDep, _limit: StaffLimit) -> dict[str, Any]:
    """The Messenger channel's state (token_expired shows as a banner), queue counts and flagged conversations."""
    report = runtime.channel_health.get("messenger")
    healthy, state = report() if report else (True, {"token": "not_configured"})
    return {"ok": healthy, **state, "queue": await _store_call(runtime.store.queue_stats),
            "flags": await _store_call(runtime.store.list_flags)}


@router.post("/staff/api/messenger/flags/handled", tags=["staff"])
async def staff_messenger_flags_handled(body: HandledRequest, _staff: StaffDep, runtime: RuntimeDep,
                                        _limit: StaffLimit) -> dict[str, int]:
    """Mark flagged Messenger conversations as handled."""
    return {"handled": await _store_call(runtime.store.mark_flags_handled, body.ids)}
