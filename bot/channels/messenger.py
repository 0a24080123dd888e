"""Facebook Messenger: the signed webhook, what each event means, Send API replies, human handover.

The webhook checks Meta's signature on the raw body, writes every actionable event to the durable queue
(bot/store.py) and only then answers 200; messenger_delivery's worker loop turns each event into outbox
steps here (`plan`) and sends them once, in order per sender across workers. Patients' messages become
`IncomingMessage(channel="messenger")` for the core, whose `Reply` is rendered by messenger_render.
While a person holds the thread (Meta sends `standby` events, or a person wrote from the Page inbox) the
core still sees every message: it is recorded, and an emergency is answered at once and flagged for staff.
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
import secrets
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
from bot.channels.messenger_delivery import Delivery, Job, echoed_key, idem_key, send_metadata
from bot.channels.messenger_graph import GraphClient, GraphError
from bot.config import ClinicProfile, Settings
from bot.types import Action, IncomingMessage, Reply, Session

log = logging.getLogger(__name__)

STORE_WAIT_S = 10.0  # a webhook may arrive while the service is starting: wait this long for the database
MEMORY_SEND_ATTEMPTS = 8  # about a minute of backoff for a reply that has no outbox
RECENT_KEYS = 10_000  # message ids answered from memory while the database was down (per process)
_HEX = set(string.hexdigits)
# What the core may not read as a request for a person on its own ("human", "agent"): the issue's words.
_ASKS_PERSON = re.compile(r"^\W*(?:i want |i need |can i (?:get|have) )?(?:a |an |the )?(?:human|agent|person|"
                          r"operator|live agent|live person|real person|staff member|someone real)\W*$", re.I)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    channel = _channel(app)
    channel.start()
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
    queued = await _channel(request.app).accept(data) if data.get("object") == "page" else 0
    log.info("messenger webhook", extra={"event": {"messenger": "received", "queued": queued}})
    return PlainTextResponse("EVENT_RECEIVED")


def _items(value: Any) -> list[Any]:
    """A list field of Meta's payload, or nothing: a signed body of another shape is ignored, never a 500."""
    return value if isinstance(value, list) else []


HANDOVER_FIELDS = ("pass_thread_control", "take_thread_control", "request_thread_control")


def event_kind(event: dict[str, Any]) -> str | None:
    """message | echo | postback | handover, or None for what needs nothing (deliveries, reads, reactions)."""
    message = event.get("message")
    if isinstance(message, dict):
        return "echo" if message.get("is_echo") else "message"
    if isinstance(event.get("postback"), dict):
        return "postback"
    if any(isinstance(event.get(k), dict) for k in HANDOVER_FIELDS):
        return "handover"
    return None


def _event_time(event: dict[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and 0 < stamp < 10**14:
        return datetime.fromtimestamp(stamp / 1000, UTC)
    return None


@dataclass
class _Thread:
    last_seen: datetime | None = None
    human_until: datetime | None = None
    session_id: str | None = None


class MessengerChannel(Delivery):
    """Intake to the durable queue, each event planned as outbox steps, and the translation both ways."""

    def __init__(self, settings: Settings, clinic: ClinicProfile, runtime: Any) -> None:
        super().__init__(settings, runtime, GraphClient(settings))
        self.clinic = clinic
        self._secret = _secret(settings.messenger_app_secret)
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._side: set[asyncio.Task[None]] = set()
        self._memory_locks: dict[str, asyncio.Lock] = {}  # answers from memory keep each sender's order too
        if self.graph.token and isinstance(getattr(runtime, "channel_health", None), dict):
            runtime.channel_health["messenger"] = self.health

    def hash(self, psid: str) -> str:
        """The salted hash of a PSID: the only form of it in logs and the database."""
        return psid_hash(self._secret, psid)

    @property
    def pending(self) -> int:
        """Events accepted and not finished (in the queue, in flight, or answered from memory)."""
        try:
            stats = self.store.queue_stats() if self.store is not None else {}
        except Exception:
            stats = {}
        return int(stats.get("queued", 0)) + int(stats.get("running", 0)) + len(self._side)

    async def aclose(self) -> None:
        """Hand unfinished events back to the queue, finish answers from memory, close the client."""
        await self.stop()
        if self._side:
            await asyncio.wait(list(self._side), timeout=self.settings.messenger_shutdown_grace_s)
        await self.graph.aclose()

    # -- intake -------------------------------------------------------------------------------------
    async def accept(self, data: dict[str, Any]) -> int:
        """Persist every actionable event of every entry before Meta hears 200; how many were new."""
        rows: list[dict[str, Any]] = []
        raw: list[tuple[str, str, dict[str, Any]]] = []
        confirmed: list[tuple[str, str]] = []
        oldest = datetime.now(UTC) - timedelta(seconds=self.settings.messenger_max_event_age_s)
        for entry in _items(data.get("entry")):
            if not isinstance(entry, dict):
                continue
            page_id = str(entry.get("id") or "")
            for standby, events in ((False, _items(entry.get("messaging"))), (True, _items(entry.get("standby")))):
                for event in events:
                    if not isinstance(event, dict) or (psid := _user_of(event)) is None:
                        continue
                    kind = event_kind(event)
                    if kind is None or (standby and kind not in ("message", "echo")):
                        continue  # standby postbacks come without their payload: nothing to act on
                    message: dict[str, Any] = event["message"] if kind in ("message", "echo") else {}
                    if kind == "echo" and (ours := echoed_key(message.get("metadata"))) is not None:
                        if ours:  # Meta received this send: the outbox row is confirmed, whatever the worker heard
                            confirmed.append((ours, str(message.get("mid") or "echo")))
                        continue
                    key = _event_key(psid, kind, event)
                    when = _event_time(event)
                    too_old = when is not None and when < oldest
                    rows.append({"key": key, "psid_hash": self.hash(psid), "standby": standby,
                                 "event_time": when, "status": "dropped" if too_old else "queued",
                                 "outcome": "too_old" if too_old else None,
                                 "payload": None if too_old else json.dumps(
                                     {"psid": psid, "page_id": page_id, "event": event})})
                    if not too_old and kind in ("message", "postback"):
                        raw.append((key, psid, event))
        store = await self._store_ready()
        for key, mid in confirmed:
            with contextlib.suppress(Exception):
                if await asyncio.to_thread(store.outbox_confirm, key, mid):
                    self.wake()
        if not rows:
            return 0
        try:
            if store is None:
                raise RuntimeError("no store")
            new = await asyncio.to_thread(store.enqueue_events, rows)
        except Exception as exc:  # the database is down: answer from memory rather than stay silent
            metrics.STORE_FAILURES.labels("enqueue_events").inc()
            log.warning("messenger queue unavailable; answering from memory",
                        extra={"event": {"messenger": "memory_fallback", "error": type(exc).__name__,
                                         "count": len(raw)}})
            self.fallback_active = True
            for key, psid, event in raw:
                self._fallback(key, psid, event)
            return len(raw)
        self.fallback_active = False
        dropped = sum(1 for r in rows if r["status"] == "dropped")
        metrics.MESSENGER_EVENTS.labels("accepted").inc(len(rows) - dropped)
        if dropped:
            metrics.MESSENGER_EVENTS.labels("too_old").inc(dropped)
        if len(rows) > new:
            metrics.MESSENGER_EVENTS.labels("duplicate").inc(len(rows) - new)
        self.wake()
        return new

    async def _store_ready(self) -> Any:
        waited = 0.0
        while self.runtime.store is None and waited < STORE_WAIT_S:
            await asyncio.sleep(0.1)
            waited += 0.1
        return self.runtime.store

    def _fallback(self, key: str, psid: str, event: dict[str, Any]) -> None:
        if key in self._recent:  # a redelivery while the database is still down: answered already
            return
        self._recent[key] = None
        while len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)
        task = asyncio.create_task(self._answer_from_memory(key, psid, event))
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _answer_from_memory(self, key: str, psid: str, event: dict[str, Any]) -> None:
        """Triage still runs (it needs no database); everything else gets "please call". In order per sender."""
        lock = self._memory_locks.setdefault(psid, asyncio.Lock())
        try:
            async with lock:
                await self._answer_from_memory_now(key, psid, event)
        finally:
            if not lock.locked() and self._memory_locks.get(psid) is lock:
                self._memory_locks.pop(psid, None)

    async def _answer_from_memory_now(self, key: str, psid: str, event: dict[str, Any]) -> None:
        h = self.hash(psid)
        incoming, _fixed = self._translate(event)
        reply: Reply | None = None
        if incoming is not None and self.runtime.chatbot is not None:
            with contextlib.suppress(Exception):
                reply = await asyncio.wait_for(self.runtime.chatbot.reply(incoming, Session(id=secrets.token_urlsafe(
                    24))), self.settings.request_timeout)
        if reply is None or reply.kind != "emergency":
            reply = Reply(kind="handoff", reply=render.STORE_DOWN_NOTE.format(phone=self.clinic.phone),
                          actions=[self._call_action()])
        for n, message in enumerate(render.render(reply)):
            # Keyed like an outbox step (never confirmed: there is no row), so what reached Meta is attributable.
            message = {**message, "metadata": send_metadata(idem_key(key, 900 + n))}
            for attempt in range(MEMORY_SEND_ATTEMPTS):  # no outbox to fall back on: keep trying what is safe
                try:
                    await self.graph.post("me/messages", _send_body(psid, message), op="messages", attempts=1)
                    break
                except GraphError as exc:
                    self.graph_failed(exc, h)
                    if exc.uncertain or not exc.retryable or attempt == MEMORY_SEND_ATTEMPTS - 1:
                        return
                    await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
        metrics.MESSENGER_EVENTS.labels("answered_from_memory").inc()

    # -- planning one event -------------------------------------------------------------------------
    async def plan(self, job: Job) -> list[dict[str, Any]]:
        """What to send and do for one event, decided once (the core decides the reply)."""
        psid, page_id, event = str(job.payload["psid"]), str(job.payload.get("page_id") or ""), job.payload["event"]
        h = job.psid_hash
        kind = event_kind(event)
        if kind == "echo":  # written by a person from the Page inbox: they are answering
            await self._db("set_human_until", h, self._hold_until())
            log.info("messenger person replied", extra={"event": {"messenger": "person_replied", "psid": h}})
            return []
        if kind == "handover":
            await self._handover_event(h, event)
            return []
        incoming, fixed = self._translate(event)
        if incoming is None and fixed is None:
            return []
        thread = await self._thread(h)
        now = datetime.now(UTC)
        held = thread.human_until is not None and thread.human_until > now
        if job.standby and not held and thread.human_until is not None and await self._take_thread(psid, page_id, h):
            held = False  # the hold lapsed and the thread was idle: the bot has it again
        elif job.standby or held:
            return await self._while_held(job, psid, page_id, h, thread, incoming, standby=job.standby)
        return await self._answer(job, psid, page_id, h, thread, incoming, fixed)

    def _translate(self, event: dict[str, Any]) -> tuple[IncomingMessage | None, Reply | None]:
        """A patient's event as a message for the core, or a fixed note for what has no words."""
        message = event.get("message")
        if isinstance(message, dict):
            quick = message.get("quick_reply")
            payload = quick.get("payload") if isinstance(quick, dict) else None
            payload = payload if isinstance(payload, str) and payload.strip() else None
            # A tapped suggestion's payload is the whole question; its visible text is only the short title.
            text = (render.POSTBACK_TEXT.get(payload) or payload) if payload else message.get("text")
            if isinstance(text, str) and text.strip():  # a caption with a photo is read as text: never triage silence
                return self._incoming(text, payload), None
            attachments = [a for a in _items(message.get("attachments")) if isinstance(a, dict)]
            stickers = {s for s in [message.get("sticker_id"), *(a["payload"].get("sticker_id") for a in attachments
                                                                 if isinstance(a.get("payload"), dict))]
                        if isinstance(s, int) and not isinstance(s, bool)}
            if stickers & render.LIKE_STICKERS:  # the thumbs-up: the patient says thanks
                return self._incoming(render.LIKE_TEXT, None), None
            if stickers:
                return None, Reply(kind="smalltalk", reply=render.STICKER_NOTE)
            if attachments:
                return None, Reply(kind="handoff", reply=render.MEDIA_NOTE.format(phone=self.clinic.phone),
                                   actions=[self._call_action()])
            return None, None
        postback = event.get("postback")
        if isinstance(postback, dict):
            payload = str(postback.get("payload") or "")
            text = render.POSTBACK_TEXT.get(payload) or payload or str(postback.get("title") or "")
            if text.strip():
                return self._incoming(text, payload or None), None
        return None, None

    def _incoming(self, text: str, payload: str | None) -> IncomingMessage:
        return IncomingMessage(text=text[: self.settings.max_message_chars], channel="messenger", payload=payload)

    def _call_action(self) -> Action:
        return Action(type="call", label="Call the clinic", value=f"tel:{self.clinic.phone_e164}")

    async def _answer(self, job: Job, psid: str, page_id: str, h: str, thread: _Thread,
                      incoming: IncomingMessage | None, fixed: Reply | None) -> list[dict[str, Any]]:
        """The bot holds the thread: the core's reply, the disclosure when due, a handover when asked."""
        now = datetime.now(UTC)
        disclosure = None
        if thread.human_until is not None:
            disclosure = render.DISCLOSE_BACK
        elif thread.last_seen is None or now - thread.last_seen > timedelta(hours=self.settings.messenger_lapse_hours):
            disclosure = render.DISCLOSE_START
        typing = asyncio.create_task(self._sender_actions(psid, h))
        if incoming is None:
            assert fixed is not None
            reply = fixed
        else:
            reply = await self._ask_core(job, replace(incoming, session_id=thread.session_id), h)
        if reply.kind == "emergency":
            # First and alone: no waiting on typing indicators, no disclosure, no suggestions.
            if not typing.done():
                typing.cancel()
            with contextlib.suppress(BaseException):
                await typing
            return [_send_step(psid, render.render_emergency(reply))]
        await typing
        wants_person = incoming is not None and self._wants_person(reply, incoming.text)
        if wants_person:
            reply = reply.model_copy(update={"reply": render.HANDOVER_NOTE.format(phone=self.clinic.phone),
                                             "suggestions": [], "citations": [], "disclaimer": None})
        messages = render.render(reply, disclosure=disclosure, public_url=self.settings.public_url)
        steps = [_send_step(psid, m) for m in messages]
        steps.append({"kind": "local", "op": "thread", "session_id": reply.session_id or None,
                      "end_hold": thread.human_until is not None and not wants_person})
        if wants_person:
            steps.append(self._pass_step(psid, page_id, "The patient asked for a person.", on_ok=[
                {"kind": "local", "op": "hold"}], on_fail=[
                *[_send_step(psid, m) for m in render.render(Reply(
                    kind="handoff", reply=render.HANDOVER_FAILED_NOTE.format(phone=self.clinic.phone),
                    actions=[self._call_action()]))],
                {"kind": "local", "op": "flag", "reason": "handover_failed", "session_id": reply.session_id or None}]))
        log.info("messenger reply", extra={"event": {"messenger": "planned", "kind": reply.kind, "psid": h,
                                                     "handover": wants_person, "disclosed": disclosure is not None,
                                                     "messages": len(messages)}})
        return steps

    async def _while_held(self, job: Job, psid: str, page_id: str, h: str, thread: _Thread,
                          incoming: IncomingMessage | None, *, standby: bool) -> list[dict[str, Any]]:
        """A person holds the thread: the core still reads (and records) every message; only an emergency is sent."""
        if incoming is None:  # a sticker or photo while a person holds the thread: theirs to answer
            return []
        reply = await self._ask_core(job, replace(incoming, session_id=thread.session_id, held=True), h)
        steps: list[dict[str, Any]] = []
        if reply.kind == "emergency":
            if standby:  # another app owns the thread: take it for the instruction, then give it back
                steps.append({"kind": "graph", "op": "take_thread_control",
                              "path": f"{page_id or 'me'}/take_thread_control",
                              "body": {"recipient": {"id": psid},
                                       "metadata": "Emergency instructions from the assistant."},
                              "on_ok": [self._pass_step(psid, page_id, "Emergency instructions were sent; "
                                                                       "back to staff.")]})
            steps.append(_send_step(psid, render.render_emergency(reply)))
            steps.append({"kind": "local", "op": "flag", "reason": "emergency_while_held",
                          "session_id": reply.session_id or None})
            log.warning("messenger emergency while held", extra={"event": {"messenger": "emergency_while_held",
                                                                           "psid": h, "standby": standby}})
        else:
            # The core recorded it as not sent (held=True); nothing goes to the patient.
            log.info("messenger silent", extra={"event": {"messenger": "held_by_person", "psid": h,
                                                          "standby": standby}})
        steps.append({"kind": "local", "op": "session", "session_id": reply.session_id or None})
        return steps

    async def _ask_core(self, job: Job, incoming: IncomingMessage, h: str) -> Reply:
        try:
            reply, remember = await asyncio.wait_for(self.runtime.chatbot.respond_then_remember(incoming),
                                                     self.settings.request_timeout)
        except Exception as exc:
            log.error("messenger core failed", extra={"event": {"messenger": "core_failed",
                                                                "error": type(exc).__name__, "psid": h}})
            return Reply(kind="handoff", reply=f"Sorry, I can't answer right now. Please call the clinic at "
                                               f"{self.clinic.phone} and we'll be glad to help.",
                         actions=[self._call_action()])
        job.after_plan = remember
        return reply

    def _wants_person(self, reply: Reply, text: str) -> bool:
        if not self.settings.messenger_handover_app_id:
            return False
        reason = getattr(getattr(reply, "_trace", None), "reason", "")
        return reason == "human" or (reply.kind != "emergency" and bool(_ASKS_PERSON.match(text)))

    def _pass_step(self, psid: str, page_id: str, note: str, **follow: list[dict[str, Any]]) -> dict[str, Any]:
        return {"kind": "graph", "op": "pass_thread_control", "path": f"{page_id or 'me'}/pass_thread_control",
                "body": {"recipient": {"id": psid}, "target_app_id": self.settings.messenger_handover_app_id,
                         "metadata": note}, **follow}

    async def local(self, job: Job, step: dict[str, Any]) -> None:
        """Database steps that belong after the sends before them."""
        h, op = job.psid_hash, step.get("op")
        if op == "thread":
            if step.get("sent_any"):
                await asyncio.to_thread(self.store.touch_thread, h, step.get("session_id"))
            if step.get("end_hold"):
                await asyncio.to_thread(self.store.set_human_until, h, None)
        elif op == "session" and step.get("session_id"):
            await asyncio.to_thread(self.store.touch_thread, h, step["session_id"])
        elif op == "hold":  # pass_thread_control succeeded: a person has it now
            await asyncio.to_thread(self.store.set_human_until, h, self._hold_until())
        elif op == "flag":
            await asyncio.to_thread(self.store.add_flag, h, str(step.get("reason")), step.get("session_id"))
            log.warning("messenger flagged for staff", extra={"event": {"messenger": "flagged", "psid": h,
                                                                        "reason": step.get("reason")}})

    async def _handover_event(self, h: str, event: dict[str, Any]) -> None:
        passed = event.get("pass_thread_control")
        if isinstance(passed, dict):
            new_owner = str(passed.get("new_owner_app_id") or "")
            if new_owner and new_owner == self.settings.messenger_handover_app_id:
                await self._db("set_human_until", h, self._hold_until())
                return
            # The thread came back to the bot: end the hold now; the next reply says who is answering.
            thread = await self._thread(h)
            if thread.human_until is not None:
                await self._db("set_human_until", h, datetime.now(UTC))
            log.info("messenger handover", extra={"event": {"messenger": "thread_returned", "psid": h}})
        elif isinstance(event.get("take_thread_control"), dict):
            await self._db("set_human_until", h, self._hold_until())
            log.info("messenger handover", extra={"event": {"messenger": "thread_taken", "psid": h}})

    # -- talking to Meta ----------------------------------------------------------------------------
    def _hold_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(minutes=self.settings.messenger_handover_minutes)

    async def _take_thread(self, psid: str, page_id: str, h: str) -> bool:
        """Take the thread back after a lapsed hold (Meta allows it when the thread is idle)."""
        try:
            await self.graph.post(f"{page_id or 'me'}/take_thread_control",
                                  {"recipient": {"id": psid}, "metadata": "The assistant is answering again."},
                                  op="take_thread_control", attempts=1)
        except GraphError as exc:
            self.graph_failed(exc, h)
            return False
        log.info("messenger handover", extra={"event": {"messenger": "thread_taken_back", "psid": h}})
        return True

    async def _sender_actions(self, psid: str, h: str) -> None:
        for action in ("mark_seen", "typing_on"):
            try:
                await self.graph.post("me/messages", {"recipient": {"id": psid}, "sender_action": action},
                                      op=action, attempts=2)
            except GraphError as exc:
                self.graph_failed(exc, h)
                if exc.retryable:  # Meta is down or busy: the reply itself matters more
                    return

    # -- thread state in the database ---------------------------------------------------------------
    async def _thread(self, h: str) -> _Thread:
        state = await asyncio.to_thread(self.store.thread_state, h)  # raises: the event is retried later
        return _Thread(last_seen=state.get("last_seen"), human_until=state.get("human_until"),
                       session_id=state.get("session_id"))

    async def _db(self, op: str, *args: Any) -> None:
        await asyncio.to_thread(getattr(self.store, op), *args)


def _send_body(psid: str, message: dict[str, Any]) -> dict[str, Any]:
    # RESPONSE: every message answers one the patient wrote within the last 24 hours (standby ones included).
    return {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": dict(message)}


def _send_step(psid: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "send", "body": _send_body(psid, message)}


def _event_key(psid: str, kind: str, event: dict[str, Any]) -> str:
    """The dedupe key: the message id when Meta gives one, else a stable hash of the event."""
    message = event.get("message") if isinstance(event.get("message"), dict) else None
    postback = event.get("postback") if isinstance(event.get("postback"), dict) else None
    mid = (message or postback or {}).get("mid")
    key = str(mid) if mid else _synthetic_id(psid, event)
    return key if len(key) <= 255 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _user_of(event: dict[str, Any]) -> str | None:
    """The patient's PSID: the recipient of an echo (the Page wrote it), else the sender."""
    message = event.get("message")
    side = "recipient" if isinstance(message, dict) and message.get("is_echo") else "sender"
    who = event.get(side)
    psid = who.get("id") if isinstance(who, dict) else None
    return str(psid) if psid else None


def _synthetic_id(psid: str, event: dict[str, Any]) -> str:
    """A stable dedupe key for an event without a `mid` (older postbacks): sender, time and payload."""
    blob = json.dumps([psid, event.get("timestamp"), event.get("postback") or event.get("message")
                       or {k: event.get(k) for k in HANDOVER_FIELDS}],
                      sort_keys=True, default=str)
    return "x:" + hashlib.sha256(blob.encode()).hexdigest()[:40]
