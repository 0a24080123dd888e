"""Facebook Messenger: the signed webhook, per-sender background work, Send API replies, human handover.

The webhook checks Meta's signature on the raw body, answers 200 at once and queues each event for its
sender; one worker per sender handles that sender's events in order. Patients' messages become
`IncomingMessage(channel="messenger")` for the core, whose `Reply` is rendered by messenger_render.
Logs carry ids, counts and error codes only: never message text, and PSIDs only as salted hashes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import re
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from bot import metrics
from bot.channels import messenger_render as render
from bot.channels.messenger_graph import GraphClient, GraphError
from bot.config import ClinicProfile, Settings
from bot.types import Action, IncomingMessage, Reply, Session

log = logging.getLogger(__name__)

READY_WAIT_S = 120.0  # a webhook may arrive while the model is still loading
SHUTDOWN_GRACE_S = 5.0  # in-flight replies get this long to finish when the app stops
_HEX = set(string.hexdigits)
# What the core may not read as a request for a person on its own ("human", "agent"): the words.
_ASKS_PERSON = re.compile(r"^\W*(?:i want |i need |can i (?:get|have) )?(?:a |an |the )?(?:human|agent|person|"
                          r"operator|live agent|live person|real person|staff member|someone real)\W*$", re.I)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    channel = _channel(app)
    yield
    await channel.aclose()


router = APIRouter(tags=["messenger"], lifespan=_lifespan)


def _channel(app: Any) -> MessengerChannel:
    channel = getattr(app.state, "messenger", None)
    if channel is None:
        channel = MessengerChannel(app.state.settings, app.state.clinic, app.state.runtime)
        app.state.messenger = channel
    return channel


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def signature_ok(raw: bytes, header: str | None, secret: str) -> bool:
    """Whether `X-Hub-Signature-256` is `sha256=` + the HMAC-SHA256 of the raw body (constant-time compare)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    given = header[len("sha256="):].strip().lower()
    if len(given) != 64 or not set(given) <= _HEX:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


def psid_hash(secret: str, psid: str) -> str:
    """A PSID as it may appear in logs and the database: salted (from the app secret) SHA-256, truncated."""
    salt = hashlib.sha256(b"messenger-psid\x00" + secret.encode()).digest()
    return hashlib.sha256(salt + psid.encode()).hexdigest()[:20]


@router.get("/messenger/webhook", response_class=PlainTextResponse)
async def verify_webhook(request: Request) -> Response:
    """Meta's subscription check: echo `hub.challenge` when the mode and verify token match, else 403."""
    q = request.query_params
    expected = _secret(request.app.state.settings.messenger_verify_token)
    token = q.get("hub.verify_token", "")
    if (q.get("hub.mode") == "subscribe" and expected
            and hmac.compare_digest(token.encode(), expected.encode())):
        return PlainTextResponse(q.get("hub.challenge", ""))
    log.warning("messenger verification refused", extra={"event": {"messenger": "verify_refused"}})
    return PlainTextResponse("Forbidden", status_code=403)


@router.post("/messenger/webhook")
async def receive_webhook(request: Request) -> Response:
    """Events from Meta: checked against X-Hub-Signature-256, acknowledged at once, handled in the background."""
    settings: Settings = request.app.state.settings
    secret = _secret(settings.messenger_app_secret)
    if not secret:  # never run unverified
        log.warning("messenger event refused", extra={"event": {"messenger": "no_app_secret"}})
        return JSONResponse({"detail": "The Messenger channel is off: set MESSENGER_APP_SECRET."}, status_code=403)
    raw = await request.body()  # the exact bytes Meta signed; never re-serialised
    if not signature_ok(raw, request.headers.get("x-hub-signature-256"), secret):
        log.warning("messenger event refused", extra={"event": {"messenger": "bad_signature"}})
        return JSONResponse({"detail": "Missing or invalid X-Hub-Signature-256."}, status_code=403)
    try:
        data = json.loads(raw)
    except ValueError:
        return JSONResponse({"detail": "The body is not valid JSON."}, status_code=400)
    if not isinstance(data, dict):
        return JSONResponse({"detail": "Expected a JSON object."}, status_code=400)
    queued = _channel(request.app).accept(data) if data.get("object") == "page" else 0
    log.info("messenger webhook", extra={"event": {"messenger": "received", "queued": queued}})
    return PlainTextResponse("EVENT_RECEIVED")


def _items(value: Any) -> list[Any]:
    """A list field of Meta's payload, or nothing: a signed body of another shape is ignored, never a 500."""
    return value if isinstance(value, list) else []


@dataclass
class _Thread:
    last_seen: datetime | None = None
    human_until: datetime | None = None
    session_id: str | None = None


class MessengerChannel:
    """Per-sender queues and workers, the Graph client and the translation both ways."""

    def __init__(self, settings: Settings, clinic: ClinicProfile, runtime: Any) -> None:
        self.settings = settings
        self.clinic = clinic
        self.runtime = runtime
        self.graph = GraphClient(settings)
        self._secret = _secret(settings.messenger_app_secret)
        self._queues: dict[str, collections.deque[tuple[str, dict[str, Any]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.pending = 0  # events accepted and not yet handled (tests and shutdown wait on it)

    # -- intake -------------------------------------------------------------------------------------
    def accept(self, data: dict[str, Any]) -> int:
        """Queue every actionable event of every entry; returns how many were queued."""
        queued = 0
        for entry in _items(data.get("entry")):
            if not isinstance(entry, dict):
                continue
            page_id = str(entry.get("id") or "")
            if standby := _items(entry.get("standby")):  # another app holds these threads: not ours to answer
                log.info("messenger standby", extra={"event": {"messenger": "standby", "count": len(standby)}})
            for event in _items(entry.get("messaging")):
                if not isinstance(event, dict):
                    continue
                psid = _user_of(event)
                if psid is None:
                    continue
                self._submit(psid, page_id, event)
                queued += 1
        return queued

    def _submit(self, psid: str, page_id: str, event: dict[str, Any]) -> None:
        self._queues.setdefault(psid, collections.deque()).append((page_id, event))
        self.pending += 1
        if psid not in self._workers:
            self._workers[psid] = asyncio.create_task(self._drain(psid))

    async def _drain(self, psid: str) -> None:
        queue = self._queues[psid]
        try:
            while queue:
                page_id, event = queue.popleft()
                try:
                    await self._handle(psid, page_id, event)
                except Exception as exc:  # one bad event must not stop this sender's worker
                    log.error("messenger event failed", extra={"event": {"messenger": "event_failed",
                                                                         "error": type(exc).__name__,
                                                                         "psid": self.hash(psid)}})
                finally:
                    self.pending -= 1
        finally:  # no await between the empty check above and here: a new event starts a new worker
            self._workers.pop(psid, None)
            if not queue:
                self._queues.pop(psid, None)

    async def aclose(self) -> None:
        """Let in-flight replies finish for a moment, then cancel the rest and close the client."""
        workers = list(self._workers.values())
        if workers:
            _done, late = await asyncio.wait(workers, timeout=SHUTDOWN_GRACE_S)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(BaseException):
                    await task
        await self.graph.aclose()

    def hash(self, psid: str) -> str:
        """The salted hash of a PSID: the only form of it in logs and the database."""
        return psid_hash(self._secret, psid)

    # -- one event ----------------------------------------------------------------------------------
    async def _handle(self, psid: str, page_id: str, event: dict[str, Any]) -> None:
        if not await asyncio.to_thread(self.runtime.ready.wait, READY_WAIT_S) or self.runtime.chatbot is None:
            log.warning("messenger event dropped", extra={"event": {"messenger": "not_ready",
                                                                    "psid": self.hash(psid)}})
            return
        message = event.get("message")
        if isinstance(message, dict):
            if message.get("is_echo"):
                await self._echo(psid, message)
                return
            mid = str(message.get("mid") or "")
            quick = message.get("quick_reply")
            payload = quick.get("payload") if isinstance(quick, dict) else None
            payload = payload if isinstance(payload, str) and payload.strip() else None
            # A tapped suggestion's payload is the whole question; its visible text is only the short title.
            text = (render.POSTBACK_TEXT.get(payload) or payload) if payload else message.get("text")
            if isinstance(text, str) and text.strip():
                incoming = self._incoming(text, payload)
            elif message.get("attachments"):
                incoming = None  # a photo, voice note, sticker...: the text-only note
            else:
                return
            await self._patient(psid, page_id, mid or _synthetic_id(psid, event), incoming)
        elif isinstance(event.get("postback"), dict):
            postback = event["postback"]
            payload = str(postback.get("payload") or "")
            text = render.POSTBACK_TEXT.get(payload) or payload or str(postback.get("title") or "")
            if text.strip():
                key = str(postback.get("mid") or "") or _synthetic_id(psid, event)
                await self._patient(psid, page_id, key, self._incoming(text, payload or None))
        elif any(k in event for k in ("pass_thread_control", "take_thread_control", "request_thread_control")):
            await self._handover_event(psid, event)
        # deliveries, reads, reactions and anything else: nothing to answer

    def _incoming(self, text: str, payload: str | None) -> IncomingMessage:
        return IncomingMessage(text=text[: self.settings.max_message_chars], channel="messenger", payload=payload)

    async def _patient(self, psid: str, page_id: str, key: str, incoming: IncomingMessage | None) -> None:
        """A patient's message: dedupe, respect a person's hold, reply, hand over when asked."""
        h = self.hash(psid)
        store = self.runtime.store
        try:
            if store is None:
                raise RuntimeError("no store")
            claimed = await asyncio.to_thread(store.claim_message, key)
        except Exception as exc:  # without the database a re-delivery could be answered twice: stay silent
            metrics.STORE_FAILURES.labels("claim_message").inc()
            log.warning("messenger dedupe unavailable; not answering",
                        extra={"event": {"messenger": "dedupe_unavailable", "error": type(exc).__name__, "psid": h}})
            return
        if not claimed:
            log.info("messenger duplicate", extra={"event": {"messenger": "duplicate", "psid": h}})
            return
        thread = await self._thread(h)
        now = datetime.now(UTC)
        if thread.human_until is not None and thread.human_until > now:
            await self._while_held(psid, h, thread, incoming)
            return
        disclosure = None
        if thread.human_until is not None:
            disclosure = render.DISCLOSE_BACK
        elif thread.last_seen is None or now - thread.last_seen > timedelta(hours=self.settings.messenger_lapse_hours):
            disclosure = render.DISCLOSE_START
        typing = asyncio.create_task(self._sender_actions(psid, h))
        if incoming is None:
            reply = Reply(kind="smalltalk", reply=render.TEXT_ONLY_NOTE)
        else:
            reply = await self._ask_core(replace(incoming, session_id=thread.session_id), h)
        if reply.kind == "emergency":
            # First and alone: no waiting on typing indicators, no disclosure, no suggestions.
            if not typing.done():
                typing.cancel()
            with contextlib.suppress(BaseException):
                await typing
            await self._send_emergency(psid, h, reply)
            return
        await typing
        wants_person = incoming is not None and self._wants_person(reply, incoming.text)
        if wants_person:
            reply = reply.model_copy(update={"reply": render.HANDOVER_NOTE.format(phone=self.clinic.phone),
                                             "suggestions": [], "citations": [], "disclaimer": None})
        sent = await self._send(psid, h, render.render(reply, disclosure=disclosure,
                                                      public_url=self.settings.public_url))
        if wants_person:
            await self._hand_over(psid, page_id, h)
        elif thread.human_until is not None:
            await self._store("set_human_until", h, None)
        if sent:
            await self._store("touch_thread", h, reply.session_id or None)
        log.info("messenger reply", extra={"event": {"messenger": "replied" if sent else "not_sent",
                                                     "kind": reply.kind, "psid": h, "handover": wants_person,
                                                     "disclosed": disclosure is not None}})

    async def _ask_core(self, incoming: IncomingMessage, h: str) -> Reply:
        try:
            return await asyncio.wait_for(self.runtime.chatbot.respond(incoming), self.settings.request_timeout)
        except Exception as exc:
            log.error("messenger core failed", extra={"event": {"messenger": "core_failed",
                                                                "error": type(exc).__name__, "psid": h}})
            return Reply(kind="handoff", reply=f"Sorry, I can't answer right now. Please call the clinic at "
                                               f"{self.clinic.phone} and we'll be glad to help.",
                         actions=[Action(type="call", label="Call the clinic", value=f"tel:{self.clinic.phone_e164}")])

    def _wants_person(self, reply: Reply, text: str) -> bool:
        if not self.settings.messenger_handover_app_id:
            return False
        reason = getattr(getattr(reply, "_trace", None), "reason", "")
        return reason == "human" or (reply.kind != "emergency" and bool(_ASKS_PERSON.match(text)))

    async def _while_held(self, psid: str, h: str, thread: _Thread, incoming: IncomingMessage | None) -> None:
        """A person holds the thread: stay silent, except that an emergency still gets its instruction."""
        if incoming is not None:
            try:
                reply = await self.runtime.chatbot.reply(replace(incoming, session_id=thread.session_id),
                                                         Session(id=thread.session_id or "held"))
            except Exception as exc:
                log.error("messenger core failed", extra={"event": {"messenger": "core_failed",
                                                                    "error": type(exc).__name__, "psid": h}})
                return
            if reply.kind == "emergency":
                await self._send_emergency(psid, h, reply)
                return
        log.info("messenger silent", extra={"event": {"messenger": "held_by_person", "psid": h}})

    async def _echo(self, psid: str, message: dict[str, Any]) -> None:
        """Our own echoes are ignored; one written by someone else means a person is answering."""
        if message.get("metadata") == render.METADATA:
            return
        h = self.hash(psid)
        await self._store("set_human_until", h, self._hold_until())
        log.info("messenger person replied", extra={"event": {"messenger": "person_replied", "psid": h,
                                                              "app_id": str(message.get("app_id") or "")}})

    async def _handover_event(self, psid: str, event: dict[str, Any]) -> None:
        h = self.hash(psid)
        if isinstance(event.get("pass_thread_control"), dict):
            new_owner = str(event["pass_thread_control"].get("new_owner_app_id") or "")
            if new_owner and new_owner == self.settings.messenger_handover_app_id:
                await self._store("set_human_until", h, self._hold_until())
                return
            # The thread came back to the bot: end the hold now; the next reply says who is answering.
            thread = await self._thread(h)
            if thread.human_until is not None:
                await self._store("set_human_until", h, datetime.now(UTC))
            log.info("messenger handover", extra={"event": {"messenger": "thread_returned", "psid": h}})
        elif isinstance(event.get("take_thread_control"), dict):
            await self._store("set_human_until", h, self._hold_until())
            log.info("messenger handover", extra={"event": {"messenger": "thread_taken", "psid": h}})

    # -- talking to Meta ----------------------------------------------------------------------------
    def _hold_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(minutes=self.settings.messenger_handover_minutes)

    async def _hand_over(self, psid: str, page_id: str, h: str) -> None:
        await self._store("set_human_until", h, self._hold_until())
        body = {"recipient": {"id": psid}, "target_app_id": self.settings.messenger_handover_app_id,
                "metadata": "The patient asked for a person."}
        try:
            await self.graph.post(f"{page_id or 'me'}/pass_thread_control", body, op="pass_thread_control")
        except GraphError as exc:
            self._failed(exc, h)

    async def _sender_actions(self, psid: str, h: str) -> None:
        for action in ("mark_seen", "typing_on"):
            try:
                await self.graph.post("me/messages", {"recipient": {"id": psid}, "sender_action": action},
                                      op=action, attempts=2)
            except GraphError as exc:
                self._failed(exc, h)
                if exc.retryable:  # Meta is down or busy: the reply itself matters more
                    return

    async def _send(self, psid: str, h: str, messages: list[dict[str, Any]]) -> bool:
        """Send the messages in order; stop at the first that fails for good."""
        for message in messages:
            body = {"recipient": {"id": psid}, "messaging_type": "RESPONSE",
                    "message": {**message, "metadata": render.METADATA}}
            try:
                await self.graph.post("me/messages", body, op="messages")
            except GraphError as exc:
                self._failed(exc, h)
                return False
        return True

    async def _send_emergency(self, psid: str, h: str, reply: Reply) -> None:
        if await self._send(psid, h, [render.render_emergency(reply)]):
            log.info("messenger reply", extra={"event": {"messenger": "replied", "kind": "emergency", "psid": h}})
            return
        # The template was refused or Meta was unreachable: the instruction alone, as plain text.
        if await self._send(psid, h, [{"text": chunk} for chunk in render.split_text(reply.reply)[:1]]):
            log.info("messenger reply", extra={"event": {"messenger": "replied", "kind": "emergency",
                                                         "psid": h, "fallback": "text"}})

    def _failed(self, exc: GraphError, h: str) -> None:
        metrics.MESSENGER_SEND_FAILURES.labels(exc.code).inc()
        log.warning("messenger graph call failed", extra={"event": {"messenger": "graph_failed", "op": exc.op,
                                                                    "status": exc.status, "code": exc.code,
                                                                    "psid": h}})

    # -- thread state in the database ---------------------------------------------------------------
    async def _thread(self, h: str) -> _Thread:
        try:
            state = await asyncio.to_thread(self.runtime.store.thread_state, h)
        except Exception as exc:
            metrics.STORE_FAILURES.labels("thread_state").inc()
            log.warning("store unavailable: %s", type(exc).__name__)
            return _Thread()
        return _Thread(last_seen=state.get("last_seen"), human_until=state.get("human_until"),
                       session_id=state.get("session_id"))

    async def _store(self, op: str, *args: Any) -> None:
        try:
            await asyncio.to_thread(getattr(self.runtime.store, op), *args)
        except Exception as exc:
            metrics.STORE_FAILURES.labels(op).inc()
            log.warning("store unavailable: %s", type(exc).__name__)


def _user_of(event: dict[str, Any]) -> str | None:
    """The patient's PSID: the recipient of an echo (the Page wrote it), else the sender."""
    message = event.get("message")
    side = "recipient" if isinstance(message, dict) and message.get("is_echo") else "sender"
    who = event.get(side)
    psid = who.get("id") if isinstance(who, dict) else None
    return str(psid) if psid else None


def _synthetic_id(psid: str, event: dict[str, Any]) -> str:
    """A stable dedupe key for an event without a `mid` (older postbacks): sender, time and payload."""
    blob = json.dumps([psid, event.get("timestamp"), event.get("postback") or event.get("message")],
                      sort_keys=True, default=str)
    return "x:" + hashlib.sha256(blob.encode()).hexdigest()[:40]
