"""The web API: /chat, /chat/stream, /chat/session, /feedback and staff /search; JSON to the core and back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field, StrictStr, field_validator
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask

from bot.deps import RuntimeDep, SettingsDep, StaffDep
from bot.index import IndexUnavailable
from bot.ratelimit import ChatLimit, FeedbackLimit, SearchLimit
from bot.types import IncomingMessage, Reply

router = APIRouter()


def _check_text(value: str, field: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    return value


def _non_empty(value: str, field: str) -> str:
    _check_text(value, field)
    if not value.strip():
        raise ValueError(f"{field} must not be empty or only whitespace")
    return value


class ChatRequest(BaseModel):
    """A patient's message; `session_id` from the previous reply keeps the conversation going."""

    message: StrictStr = Field(description="What the patient wrote (plain text).",
                               examples=["How long is the psoas?"])
    session_id: StrictStr | None = Field(default=None, max_length=200,
                                         description="The id the previous reply returned; omit to start.")

    @field_validator("message")
    @classmethod
    def _message_ok(cls, value: str) -> str:
        return _non_empty(value, "message")

    @field_validator("session_id")
    @classmethod
    def _session_ok(cls, value: str | None) -> str | None:
        return _check_text(value, "session_id") if value is not None else None


class FeedbackRequest(BaseModel):
    """A thumbs up or down on one reply, with an optional comment."""

    reply_id: StrictStr = Field(max_length=100, description="The `reply_id` of the reply being rated.")
    rating: Literal["up", "down"]
    comment: StrictStr | None = Field(default=None, max_length=1000)


class SearchRequest(BaseModel):
    """A staff look-up over the knowledge base."""

    query: StrictStr = Field(min_length=1, max_length=500, examples=["how long is the psoas"])
    k: int = Field(default=5, ge=1, le=20)

    @field_validator("query")
    @classmethod
    def _query_ok(cls, value: str) -> str:
        return _non_empty(value, "query")


class SearchResult(BaseModel):
    """One passage, best first."""

    title: str
    source: str
    url: str
    section: str
    text: str
    score: float
    dense_score: float
    bm25_score: float


class SearchResponse(BaseModel):
    """Passages for a staff query, and whether the bot would answer from them."""

    results: list[SearchResult]
    grounded: bool
    confidence: float


CHAT_EXAMPLES = {
    "question": {"value": {"message": "How long is the psoas?"}},
    "follow-up": {"value": {"message": "Where does it attach?", "session_id": "<from the previous reply>"}},
    "booking": {"value": {"message": "Can I book an appointment next week?"}},
}


def _incoming(body: ChatRequest, settings: SettingsDep) -> IncomingMessage:
    if len(body.message) > settings.max_message_chars:
        raise HTTPException(422,
                            detail=f"message is {len(body.message)} characters; the limit is "
                                   f"{settings.max_message_chars}. Please shorten it.")
    return IncomingMessage(text=body.message, session_id=body.session_id, channel="web")


@router.post("/chat", response_model=Reply, tags=["chat"])
async def chat(body: Annotated[ChatRequest, Body(openapi_examples=CHAT_EXAMPLES)], runtime: RuntimeDep,
               settings: SettingsDep, request: Request, _limit: ChatLimit) -> Response:
    """Answer a patient's message from the clinic's articles (or triage, hand off, book)."""
    try:
        reply, remember = await asyncio.wait_for(runtime.chatbot.respond_then_remember(_incoming(body, settings)),
                                                 settings.request_timeout)
    except TimeoutError as exc:
        raise HTTPException(503, detail="The assistant took too long to answer; please try again.",
                            headers={"Retry-After": "5"}) from exc
    request.state.reply = reply
    # The Reply is already validated; serialising it once skips FastAPI's second validation pass.
    # The exchange is stored right after the response is sent, still within this request.
    return Response(reply.model_dump_json(), media_type="application/json", background=BackgroundTask(remember))


@router.post("/chat/stream", tags=["chat"], response_class=EventSourceResponse,
             responses={200: {"description": "Server-sent events: `sentence` events ({\"text\"}), then one "
                                             "`reply` event holding the whole Reply."}})
async def chat_stream(body: Annotated[ChatRequest, Body(openapi_examples=CHAT_EXAMPLES)], runtime: RuntimeDep,
                      settings: SettingsDep, request: Request, _limit: ChatLimit) -> EventSourceResponse:
    """The same reply as /chat, streamed sentence by sentence as server-sent events."""
    message = _incoming(body, settings)

    async def events() -> AsyncIterator[dict[str, str]]:
        async for kind, value in runtime.chatbot.stream(message):
            if kind == "sentence":
                yield {"event": "sentence", "data": json.dumps({"text": value})}
            else:
                request.state.reply = value
                yield {"event": "reply", "data": value.model_dump_json()}

    return EventSourceResponse(events(), ping=15)


@router.delete("/chat/session/{session_id}", tags=["chat"], status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
async def forget_session(session_id: Annotated[str, Path(max_length=200)], runtime: RuntimeDep,
                         _limit: ChatLimit) -> Response:
    """Forget a conversation now (the widget's "Clear conversation"): its stored turns are deleted. Always 204."""
    runtime.chatbot.forget(session_id)
    if runtime.store is not None:
        try:
            await asyncio.to_thread(runtime.store.forget_session, session_id)
        except Exception as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                detail="The conversation could not be deleted right now; please try again.") from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/feedback", tags=["chat"], status_code=status.HTTP_201_CREATED)
async def feedback(body: FeedbackRequest, runtime: RuntimeDep, _limit: FeedbackLimit) -> dict[str, str]:
    """Record a thumbs up or down (and an optional comment) on a reply."""
    from bot import safety

    comment = safety.redact(body.comment) if body.comment else None
    try:
        ok = await asyncio.to_thread(runtime.store.add_feedback, body.reply_id, body.rating, comment)
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="Feedback could not be saved right now; please try again.") from exc
    if not ok:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Unknown reply_id: send the reply_id of a reply "
                                                              "from this conversation.")
    return {"status": "saved"}


@router.post("/search", response_model=SearchResponse, tags=["staff"])
async def search(body: SearchRequest, runtime: RuntimeDep, _staff: StaffDep, _limit: SearchLimit) -> SearchResponse:
    """Staff look-up: the passages the bot would answer from, best first, with scores."""
    try:
        found = await runtime.search(body.query, body.k)
    except IndexUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"},
                            detail="The article index is not answering right now; try again shortly.") from exc
    return SearchResponse(
        results=[SearchResult(title=p.title, source=p.source, url=p.href, section=p.section, text=p.text,
                              score=p.score, dense_score=p.dense_score, bm25_score=p.bm25_score)
                 for p in found.passages],
        grounded=found.grounded, confidence=round(found.confidence, 4))
