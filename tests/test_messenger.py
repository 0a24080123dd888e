"""The Messenger channel against a loopback stand-in for the Graph API, with payloads shaped and signed like Meta's."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.channels import messenger_graph
from bot.channels import messenger_render as render
from bot.types import Action, Citation, IncomingMessage, Reply, ReplyTrace
from tests.graph_stub import GraphStub

SECRET = "test-app-secret-0123456789"
VERIFY = "test-verify-token-0123456789"
PAGE_TOKEN = "test-page-token-0123456789abcdef"
PAGE_ID = "104857600123456"
PSID = "6029384756102938"
OTHER = "7300112233445566"
INBOX_APP = "263902037430900"


# -- payloads as Meta sends them ------------------------------------------------------------------
def sign(raw: bytes, secret: str = SECRET) -> str:
    """X-Hub-Signature-256 the way Meta computes it: HMAC-SHA256 of the raw body, lowercase hex."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


# Meta's timestamps are epoch milliseconds; events older than MESSENGER_MAX_EVENT_AGE_S are dropped.
_ts = iter(range(int(time.time() * 1000), 1 << 62, 10))


def text_event(text: str, mid: str, psid: str = PSID) -> dict[str, Any]:
    """A `messages` event (with the `nlp` block Meta often adds)."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": next(_ts),
            "message": {"mid": mid, "text": text, "nlp": {"intents": [], "entities": {}, "traits": {}}}}


def quick_reply_event(title: str, payload: str, mid: str, psid: str = PSID) -> dict[str, Any]:
    """A tapped quick reply: the visible title as text, our payload alongside."""
    event = text_event(title, mid, psid)
    event["message"]["quick_reply"] = {"payload": payload}
    return event


def postback_event(payload: str, title: str, mid: str | None, psid: str = PSID) -> dict[str, Any]:
    """A `messaging_postbacks` event (Get Started, a menu item, an ice breaker)."""
    postback: dict[str, Any] = {"title": title, "payload": payload}
    if mid:
        postback["mid"] = mid
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": next(_ts), "postback": postback}


def attachment_event(mid: str, psid: str = PSID) -> dict[str, Any]:
    """A photo with no text."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": next(_ts),
            "message": {"mid": mid, "attachments": [{"type": "image",
                                                     "payload": {"url": "https://scontent.example/photo.jpg"}}]}}


def echo_event(mid: str, *, app_id: str, metadata: str | None = None, psid: str = PSID,
               text: str = "Hi, this is Sarah from the front desk.") -> dict[str, Any]:
    """A `message_echoes` event: the Page wrote to the patient (sender is the Page)."""
    message: dict[str, Any] = {"is_echo": True, "app_id": int(app_id), "mid": mid, "text": text}
    if metadata is not None:
        message["metadata"] = metadata
    return {"sender": {"id": PAGE_ID}, "recipient": {"id": psid}, "timestamp": next(_ts), "message": message}


def delivery_event(psid: str = PSID) -> dict[str, Any]:
    """A `message_deliveries` event (`mids` may be absent)."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID},
            "delivery": {"mids": ["m_delivered"], "watermark": next(_ts)}}


def read_event(psid: str = PSID) -> dict[str, Any]:
    """A `message_reads` event."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": next(_ts),
            "read": {"watermark": next(_ts)}}


def handback_event(psid: str = PSID) -> dict[str, Any]:
    """`messaging_handovers`: the Page Inbox passes the thread back to the bot."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": next(_ts),
            "pass_thread_control": {"previous_owner_app_id": INBOX_APP, "new_owner_app_id": "1234567890",
                                    "metadata": "Done"}}


def body(*entries: list[dict[str, Any]], standby: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The webhook envelope: one `entry` per list of events."""
    out = [{"id": PAGE_ID, "time": next(_ts), "messaging": events} for events in entries]
    if standby:
        out.append({"id": PAGE_ID, "time": next(_ts), "standby": standby})
    return {"object": "page", "entry": out}


def post(client: Any, payload: dict[str, Any] | bytes, *, secret: str = SECRET,
         signature: str | None = None, ascii_only: bool = True) -> httpx.Response:
    """POST to the webhook with the bytes signed as Meta signs them."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=ascii_only).encode()
    headers = {"content-type": "application/json"}
    sig = sign(raw, secret) if signature is None else signature
    if sig:
        headers["x-hub-signature-256"] = sig
    return client.post("/messenger/webhook", content=raw, headers=headers)


def settle(client: Any, timeout: float = 20.0) -> None:
    """Wait until the channel has handled everything it accepted."""
    channel = client.app.state.messenger
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if channel.pending == 0:
            return
        time.sleep(0.02)
    raise AssertionError("background processing did not finish")


def posts(stub: GraphStub) -> list[Any]:
    """Calls other than the start-up token check (`GET /me`)."""
    return [c for c in stub.calls if c.method != "GET"]


def texts(messages: list[dict[str, Any]]) -> list[str]:
    """The visible text of each message (plain text or template text)."""
    out = []
    for m in messages:
        if "text" in m:
            out.append(m["text"])
        else:
            out.append(m["attachment"]["payload"]["text"])
    return out


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The buttons of a button template."""
    return message["attachment"]["payload"]["buttons"]


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged, structured extras included."""
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        for key in ("event", "request", "ingest"):
            if hasattr(r, key):
                parts.append(json.dumps(getattr(r, key), default=str))
        if r.exc_text:
            parts.append(r.exc_text)
    return "\n".join(parts)


class EchoBot:
    """A stand-in core for ordering and length tests: echoes the text, slowly for the first message."""

    def __init__(self, reply_text: str | None = None, slow_first: float = 0.0, **extra: Any) -> None:
        self.seen: list[IncomingMessage] = []
        self.reply_text = reply_text
        self.slow_first = slow_first
        self.extra = extra

    async def respond(self, message: IncomingMessage) -> Reply:
        self.seen.append(message)
        if self.slow_first and len(self.seen) == 1:
            await asyncio.sleep(self.slow_first)
        reply = Reply(kind="answer", reply=self.reply_text or f"echo: {message.text}", session_id="s-echo",
                      **self.extra)
        reply._trace = ReplyTrace(reason="answer")
        return reply

    async def respond_then_remember(self, message: IncomingMessage) -> tuple[Reply, Any]:
        reply = await self.respond(message)
        self.remembered: list[tuple[str, str]] = getattr(self, "remembered", [])

        async def remember() -> None:
            self.remembered.append((message.text, reply.reply))

        return reply, remember

    async def reply(self, message: IncomingMessage, session: Any) -> Reply:
        reply = Reply(kind="answer", reply="held")
        reply._trace = ReplyTrace(reason="answer")
        return reply


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def stub() -> Iterator[GraphStub]:
    """The Graph API stand-in on loopback."""
    s = GraphStub().start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same retry policy, shorter waits."""
    monkeypatch.setattr(messenger_graph, "RETRY_WAIT_INITIAL", 0.01)
    monkeypatch.setattr(messenger_graph, "RETRY_WAIT_MAX", 0.05)
    monkeypatch.setattr(messenger_graph, "TIMEOUT", httpx.Timeout(3.0))


@pytest.fixture
def messenger(make_client, data_dir, stub):
    """An app with the Messenger channel configured against the stub."""
    def factory(**overrides: object):
        values: dict[str, object] = {"messenger_app_secret": SECRET, "messenger_verify_token": VERIFY,
                                     "messenger_page_access_token": PAGE_TOKEN, "graph_api_base": stub.url,
                                     # The same queue and outbox, on a test's time scale.
                                     "messenger_poll_s": 0.05, "messenger_retry_initial_s": 0.05,
                                     "messenger_retry_max_s": 0.3, "messenger_echo_wait_s": 1.0,
                                     "messenger_lease_s": 6.0}
        values.update(overrides)
        return make_client(data_dir, **values)

    return factory


# -- verification ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "token", "status"), [
    ("subscribe", VERIFY, 200),
    ("subscribe", "wrong-token", 403),
    ("unsubscribe", VERIFY, 403),
    (None, VERIFY, 403),
    ("subscribe", None, 403),
])
def test_verification(messenger, mode, token, status) -> None:
    client = messenger()
    params = {k: v for k, v in {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}.items()
              if v is not None}
    resp = client.get("/messenger/webhook", params=params)
    assert resp.status_code == status
    if status == 200:
        assert resp.text == "1158201444"
        assert resp.headers["content-type"].startswith("text/plain")


def test_verification_refused_without_a_verify_token(messenger) -> None:
    client = messenger(messenger_verify_token=None)
    resp = client.get("/messenger/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "",
                                                    "hub.challenge": "1"})
    assert resp.status_code == 403


# -- signatures -----------------------------------------------------------------------------------
RAW = json.dumps(body([text_event("What is the psoas?", "m_sig")])).encode()


@pytest.mark.parametrize("signature", [
    "",                                                      # missing
    sign(RAW, "some-other-secret-0123456789"),               # wrong secret
    sign(RAW + b" "),                                        # signed other bytes
    "sha256=" + "zz" * 32,                                   # not hex
    "sha256=" + hmac.new(SECRET.encode(), RAW, hashlib.sha256).hexdigest()[:63],  # truncated
    "sha1=" + hmac.new(SECRET.encode(), RAW, hashlib.sha1).hexdigest(),         # the old SHA-1 header
    hmac.new(SECRET.encode(), RAW, hashlib.sha256).hexdigest(),                 # no "sha256=" prefix
    "sha256=",
], ids=["missing", "wrong-secret", "other-bytes", "not-hex", "truncated", "sha1", "no-prefix", "empty"])
def test_bad_signatures_are_refused(messenger, stub, signature) -> None:
    client = messenger()
    resp = post(client, RAW, signature=signature)
    assert resp.status_code == 403
    time.sleep(0.2)
    assert posts(stub) == []


def test_no_app_secret_refuses_every_post(messenger, stub) -> None:
    client = messenger(messenger_app_secret=None)
    for secret in (SECRET, ""):
        resp = post(client, RAW, secret=secret or "x")
        assert resp.status_code == 403
        assert "MESSENGER_APP_SECRET" in resp.json()["detail"]
    assert post(client, RAW, signature="").status_code == 403
    time.sleep(0.2)
    assert posts(stub) == []


@pytest.mark.parametrize("ascii_only", [True, False], ids=["u-escaped", "raw-utf8"])
def test_emoji_and_accents_verify(messenger, stub, ascii_only) -> None:
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    text = "Où se trouve le psoas ? Ça fait mal 😣🙏 — merci, Zoë"
    payload = body([text_event(text, f"m_utf_{ascii_only}")])
    raw = json.dumps(payload, ensure_ascii=ascii_only).encode()
    assert (b"\\u00f9" in raw) is ascii_only  # Meta's usual escaping, or plain UTF-8 bytes
    assert post(client, raw).status_code == 200
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert bot.seen[0].text == text
    assert bot.seen[0].channel == "messenger"
    # Signing a re-serialised body (what breaks naive checks) does not verify.
    other = json.dumps(payload, ensure_ascii=not ascii_only).encode()
    assert post(client, raw, signature=sign(other)).status_code == 403


# -- events ---------------------------------------------------------------------------------------
def test_batch_of_three_events_in_two_entries_answered_in_order(messenger, stub) -> None:
    client = messenger()
    bot = EchoBot(slow_first=0.4)  # if events ran concurrently, the second reply would overtake the first
    client.app.state.runtime.chatbot = bot
    payload = body([text_event("first", "m_b1"), text_event("second", "m_b2")],
                   [text_event("third", "m_b3"), text_event("other sender", "m_b4", psid=OTHER)])
    started = time.perf_counter()
    assert post(client, payload).status_code == 200
    assert time.perf_counter() - started < 0.4  # acknowledged before the slow reply
    stub.wait_for(lambda: len(stub.sent(PSID)) == 3 and len(stub.sent(OTHER)) == 1)
    settle(client)
    assert [m["text"] for m in stub.sent(PSID)] == [
        f"{render.DISCLOSE_START} echo: first", "echo: second", "echo: third"]
    assert [m.text for m in bot.seen if m.text != "other sender"] == ["first", "second", "third"]
    assert all(call.body["messaging_type"] == "RESPONSE" for call in stub.ok_calls() if call.message)
    assert all(call.message["metadata"].startswith(render.METADATA + ":") for call in stub.ok_calls() if call.message)
    assert len({call.message["metadata"] for call in stub.ok_calls() if call.message}) == 4  # one key a message
    sends = [call for call in stub.calls if call.path != "/v23.0/me"]  # the start-up token check aside
    assert all(call.headers["authorization"] == f"Bearer {PAGE_TOKEN}" and "access_token" not in call.query
               and call.query["appsecret_proof"] == messenger_graph.appsecret_proof(PAGE_TOKEN, SECRET)
               and call.path == "/v23.0/me/messages" for call in sends)


def test_sender_actions_come_before_the_reply(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    post(client, body([text_event("hello there", "m_sa")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    kinds = [c.body.get("sender_action") or "message" for c in stub.ok_calls() if c.body]
    assert kinds == ["mark_seen", "typing_on", "message"]


@pytest.mark.parametrize("payload", [
    {"object": "page", "entry": 5},
    {"object": "page", "entry": "x"},
    {"object": "page", "entry": [{"messaging": 7, "standby": 3}]},
    {"object": "page", "entry": [{"messaging": {"sender": {"id": "1"}}, "standby": {"a": 1}}]},
    {"object": "page", "entry": [{"messaging": [{"sender": 5, "message": "hi"}, 3, None]}]},
])
def test_signed_bodies_of_other_shapes_are_acknowledged_and_ignored(messenger, stub, payload) -> None:
    # Found by the fuzzer: a non-list `standby` or `messaging` was a 500.
    client = messenger()
    assert post(client, payload).status_code == 200
    settle(client)
    assert posts(stub) == []


def test_a_big_batch_passes_the_body_cap_and_a_huge_one_does_not(messenger, stub) -> None:
    # Meta batches events: a webhook POST may exceed MAX_BODY_BYTES (64 KB) that caps the chat routes.
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    events = [read_event() for _ in range(1500)] + [text_event("still answered", "m_big_batch")]
    raw = json.dumps(body(events)).encode()
    assert len(raw) > 100_000
    assert post(client, raw).status_code == 200
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert [m.text for m in bot.seen] == ["still answered"]
    huge = json.dumps(body([read_event() for _ in range(20000)])).encode()
    assert len(huge) > 1024 * 1024
    assert post(client, huge).status_code == 413


def test_echo_delivery_read_and_standby_are_not_answered(messenger, stub) -> None:
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    payload = body([delivery_event(), read_event(),
                    echo_event("m_our_echo", app_id="1234567890", metadata=render.METADATA)],
                   standby=[text_event("written while the inbox holds the thread", "m_standby")])
    assert post(client, payload).status_code == 200
    settle(client)
    time.sleep(0.2)
    assert posts(stub) == []
    # The standby message was read by the core, told a person holds the thread (the core then records it as
    # not sent: test_messenger_delivery checks the stored turn), and never answered.
    assert [(m.text, m.held) for m in bot.seen] == [("written while the inbox holds the thread", True)]
    # Our own echo did not put the thread on hold: the next message is answered.
    post(client, body([text_event("and now?", "m_after_echo")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)


def test_a_photo_gets_the_cannot_open_note_with_the_phone(messenger, stub) -> None:
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    post(client, body([attachment_event("m_photo")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    [message] = stub.sent(PSID)
    assert "can't open photos" in message["attachment"]["payload"]["text"]
    assert buttons(message) == [{"type": "phone_number", "title": "Call the clinic", "payload": "+18284587218"}]
    assert bot.seen == []


def test_quick_reply_sends_its_payload_to_the_core(messenger, stub) -> None:
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    question = "How is the psoas linked to back and hip pain?"
    post(client, body([quick_reply_event(render.short_title(question), question, "m_qr")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert bot.seen[0].text == question and bot.seen[0].payload == question


def test_get_started_postback_gets_the_welcome_with_suggestions(messenger, stub) -> None:
    client = messenger()
    post(client, body([postback_event("GET_STARTED", "Get Started", "m_pb_start")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    [message] = stub.sent(PSID)
    clinic = client.app.state.clinic
    assert message["text"].startswith(clinic.greeting)
    assert message["text"].count("automated assistant") == 1  # the greeting already says it
    quick = message["quick_replies"]
    assert [q["payload"] for q in quick] == clinic.suggested_questions[:4]
    assert all(len(q["title"]) <= 20 and q["content_type"] == "text" for q in quick)


@pytest.mark.parametrize(("payload", "title"), [("BOOK", "Book"), ("CALL", "Call the clinic")])
def test_menu_postbacks_become_booking_replies(messenger, stub, payload, title) -> None:
    client = messenger()
    post(client, body([postback_event(payload, title, None)]))  # older postbacks carry no mid
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    message = stub.sent(PSID)[-1]
    assert {"type": "phone_number", "title": "Call the clinic", "payload": "+18284587218"} in buttons(message)


def test_articles_postback_says_what_the_assistant_covers(messenger, stub) -> None:
    client = messenger()
    post(client, body([postback_event("ARTICLES", "Our articles", "m_pb_articles")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    [message] = stub.sent(PSID)
    assert client.app.state.clinic.scope in message["text"] and message["quick_replies"]


def test_ice_breaker_postback_is_answered_from_the_articles(messenger, stub) -> None:
    client = messenger()
    post(client, body([postback_event("What is the psoas?", "What is the psoas?", "m_ice")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) >= 1)
    settle(client)
    joined = " ".join(texts(stub.sent(PSID)))
    assert "psoas" in joined.lower() and "Source: " in joined


# -- dedupe ---------------------------------------------------------------------------------------
def test_same_mid_answered_once_even_after_a_restart(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    payload = body([text_event("hello again", "m_dup")])
    post(client, payload)
    post(client, payload)
    post(client, body([text_event("hello again", "m_dup")], [text_event("hello again", "m_dup")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    settle(client)
    # "Restart": a new app on the same DATA_DIR (same database).
    restarted = messenger()
    restarted.app.state.runtime.chatbot = EchoBot()
    post(restarted, payload)
    settle(restarted)
    time.sleep(0.2)
    assert len(stub.sent(PSID)) == 1


def test_database_down_answers_please_call_from_memory_once(messenger, stub, caplog) -> None:
    from bot.store import StoreUnavailable

    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    store = client.app.state.runtime.store
    working, status = store.enqueue_events, store.get_status

    def down(rows: Any) -> int:
        raise StoreUnavailable("OperationalError")

    store.enqueue_events = down
    # Down for the queue worker's periodic check too: a check that reached the database would rightly report the
    # intake durable again, and racing it made this test flaky on a busy machine.
    store.get_status = lambda: down(None)
    with caplog.at_level(logging.INFO):
        payload = body([text_event("is anyone there", "m_dbdown")])
        assert post(client, payload).status_code == 200
        assert post(client, payload).status_code == 200  # Meta's redelivery: answered once
        stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
        settle(client)
        health = client.get("/health").json()
    [message] = stub.sent(PSID)
    assert "please call the clinic at (828) 458-7218" in message["attachment"]["payload"]["text"].lower()
    assert "memory_fallback" in log_text(caplog) and health["messenger"]["intake"] == "memory_fallback"
    store.enqueue_events, store.get_status = working, status  # the database is back: durable again
    post(client, body([text_event("and now?", "m_dbup")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    assert client.get("/health").json()["messenger"]["intake"] == "durable"


def test_database_down_still_sends_an_emergency_instruction(messenger, stub) -> None:
    from bot.store import StoreUnavailable

    client = messenger()
    store = client.app.state.runtime.store

    def down(rows: Any) -> int:
        raise StoreUnavailable("OperationalError")

    store.enqueue_events = down
    post(client, body([text_event("I fell off a ladder and now I cannot stand up", "m_dbdown_er")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert "911" in stub.sent(PSID)[0]["text"]


# -- rendering through the real core ------------------------------------------------------------------
def test_emergency_first_and_alone_with_a_911_button(messenger, stub) -> None:
    client = messenger()
    post(client, body([text_event("I suddenly have numbness in my groin and I lost control of my bladder",
                                  "m_er")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    settle(client)
    time.sleep(0.1)
    [message] = stub.sent(PSID)
    # 911 cannot be a phone_number button (Meta wants "+<country code><number>"): it is in the text, which
    # Messenger shows as a tappable number, and the reply never needs a refused-template round trip.
    assert set(message) == {"text", "metadata"}
    assert "911" in message["text"] and len(message["text"]) <= 2000
    assert "automated assistant" not in message["text"]  # nothing else, not even the disclosure
    assert [c.status for c in posts(stub) if c.message] == [200]
    # The disclosure comes with the next reply instead.
    client.app.state.runtime.chatbot = EchoBot()
    post(client, body([text_event("ok", "m_er_next")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    assert stub.sent(PSID)[1]["text"].startswith(render.DISCLOSE_START)


def test_crisis_gets_988_and_911_buttons(messenger, stub) -> None:
    client = messenger()
    post(client, body([text_event("I want to kill myself", "m_crisis")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    [message] = stub.sent(PSID)
    assert "988" in message["text"] and "911" in message["text"] and "attachment" not in message


def test_phone_buttons_are_e164_only() -> None:
    actions = [Action(type="emergency", label="Call 911", value="tel:911"),
               Action(type="emergency", label="Call or text 988", value="tel:988"),
               Action(type="call", label="Call the clinic", value="tel:+1 (828) 458-7218")]
    assert render.emergency_buttons(actions) == [{"type": "phone_number", "title": "Call the clinic",
                                                  "payload": "+18284587218"}]
    assert render.contact_buttons(actions) == render.emergency_buttons(actions)
    only_short_codes = Reply(kind="emergency", reply="Call 911 now.", actions=actions[:2])
    assert render.render_emergency(only_short_codes) == {"text": "Call 911 now."}


def test_booking_is_a_button_template(messenger, stub) -> None:
    client = messenger()
    post(client, body([text_event("Can I book an appointment next week?", "m_book")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    [message] = stub.sent(PSID)
    payload = message["attachment"]["payload"]
    assert payload["template_type"] == "button" and len(payload["text"]) <= 640
    assert payload["text"].startswith(render.DISCLOSE_START)
    assert buttons(message) == [{"type": "phone_number", "title": "Call the clinic", "payload": "+18284587218"}]


def test_booking_with_a_booking_url_adds_book_online(messenger, stub) -> None:
    client = messenger()
    chatbot = client.app.state.runtime.chatbot
    chatbot.clinic = chatbot.clinic.model_copy(update={"booking_url": "https://clinic.example/book"})
    post(client, body([text_event("Can I book an appointment next week?", "m_book_url")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    found = buttons(stub.sent(PSID)[0])
    assert found == [{"type": "phone_number", "title": "Call the clinic", "payload": "+18284587218"},
                     {"type": "web_url", "title": "Book online", "url": "https://clinic.example/book"}]


def test_long_answer_is_split_at_sentences(messenger, stub) -> None:
    client = messenger()
    sentences = [f"Sentence number {n} explains a little more about how the psoas connects the spine to the "
                 f"legs and why that matters for posture." for n in range(1, 31)]
    long_text = " ".join(sentences)
    assert 2000 < len(long_text) < 4000
    client.app.state.runtime.chatbot = EchoBot(
        reply_text=long_text, citations=[Citation(title="The psoas", source="psoas-muscle.md",
                                                  url="https://clinic.example/psoas")])
    post(client, body([text_event("tell me everything", "m_long")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) >= 2)
    settle(client)
    parts = texts(stub.sent(PSID))
    assert len(parts) == 2
    assert all(len(p) <= 2000 for p in parts)
    assert parts[0].endswith("posture.")  # broken at a sentence, not mid-word
    joined = " ".join(parts)
    assert long_text in joined.removeprefix(render.DISCLOSE_START + " ")
    assert joined.endswith("Source: The psoas https://clinic.example/psoas")


def test_answer_carries_sources_disclaimer_and_suggestions(messenger, stub) -> None:
    client = messenger()
    post(client, body([text_event("What is the psoas?", "m_answer")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) >= 1)
    settle(client)
    sent = stub.sent(PSID)
    joined = "\n".join(texts(sent))
    assert "Source: " in joined and client.app.state.clinic.disclaimer in joined
    assert all(len(t) <= 2000 for t in texts(sent))
    last = sent[-1]
    assert 1 <= len(last["quick_replies"]) <= 13
    assert all(len(q["title"]) <= 20 for q in last["quick_replies"])
    if "attachment" in last:
        assert len(last["attachment"]["payload"]["text"]) <= 640 and len(buttons(last)) <= 3


# -- Graph API failures ---------------------------------------------------------------------------
def _is_message(call: Any) -> bool:
    return call.message is not None


def test_graph_500_twice_then_200_sends_one_reply(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    stub.fail(2, 500, match=_is_message)
    post(client, body([text_event("retry me", "m_retry")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    settle(client)
    attempts = [c for c in stub.calls if c.message is not None]
    assert [c.status for c in attempts] == [500, 500, 200]
    assert len(stub.sent(PSID)) == 1


@pytest.mark.parametrize(("status", "code"), [(429, 4), (400, 613), (400, 32)])
def test_rate_limits_are_retried(messenger, stub, status, code) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    stub.fail(2, status, error={"message": "Calls exceeded", "type": "OAuthException", "code": code},
              match=_is_message)
    post(client, body([text_event("slow down", f"m_rl_{code}")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)


def test_other_4xx_is_not_retried_and_is_logged_by_code(messenger, stub, caplog) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    stub.fail(5, 400, error={"message": "(#551) This person isn't available right now.", "type": "OAuthException",
                             "code": 551, "error_subcode": 1545041}, match=_is_message)
    with caplog.at_level(logging.INFO):
        post(client, body([text_event("private words", "m_551")]))
        settle(client)
    assert len([c for c in stub.calls if c.message is not None]) == 1
    logged = log_text(caplog)
    assert "551.1545041" in logged and "private words" not in logged


def test_graph_down_keeps_the_reply_queued_and_sends_it_once_when_back(messenger, stub, caplog) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    stub.down = True
    with caplog.at_level(logging.DEBUG):
        assert post(client, body([text_event("my hip hurts when I walk", "m_down")])).status_code == 200
        time.sleep(1.5)
        assert client.app.state.messenger.pending == 1  # queued, not dropped
        stub.down = False
        stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
        settle(client)
    logged = log_text(caplog)
    assert '"code": "unreachable"' in logged
    assert "my hip hurts" not in logged and PSID not in logged and PAGE_TOKEN not in logged
    assert stub.sent(PSID)[0]["text"] == f"{render.DISCLOSE_START} echo: my hip hurts when I walk"
    post(client, body([text_event("still there?", "m_up")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    assert stub.sent(PSID)[1]["text"] == "echo: still there?"  # disclosed once


# -- disclosure -----------------------------------------------------------------------------------
def test_disclosure_once_then_again_after_a_lapse(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    post(client, body([text_event("one", "m_d1")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    post(client, body([text_event("two", "m_d2")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    assert [m["text"] for m in stub.sent(PSID)] == [f"{render.DISCLOSE_START} echo: one", "echo: two"]
    # One conversation per sender: the second message continues the session the first one opened.
    assert [m.session_id for m in client.app.state.runtime.chatbot.seen] == [None, "s-echo"]
    settle(client)
    client.__exit__(None, None, None)  # stopped first: the queue is shared, so either app could take "three"
    lapsed = messenger(messenger_lapse_hours=0)  # every gap is a lapse
    lapsed.app.state.runtime.chatbot = EchoBot()
    post(lapsed, body([text_event("three", "m_d3")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 3)
    assert stub.sent(PSID)[2]["text"] == f"{render.DISCLOSE_START} echo: three"


# -- human handover -------------------------------------------------------------------------------
def test_handover_then_silence_then_handback(messenger, stub) -> None:
    client = messenger()
    post(client, body([text_event("I'd like to talk to a person please", "m_h1")]))
    stub.wait_for(lambda: any(c.path.endswith("/pass_thread_control") for c in stub.ok_calls()))
    settle(client)
    [note] = stub.sent(PSID)
    note_text = note["attachment"]["payload"]["text"]
    assert "member of our team will reply" in note_text
    assert buttons(note)[0]["payload"] == "+18284587218"
    [handover] = [c for c in stub.calls if c.path.endswith("/pass_thread_control")]
    assert handover.path == f"/v23.0/{PAGE_ID}/pass_thread_control"
    assert handover.body["recipient"] == {"id": PSID} and handover.body["target_app_id"] == INBOX_APP
    assert handover.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    # While the person holds the thread the bot says nothing, even when the staff member writes.
    post(client, body([text_event("What is the psoas?", "m_h2"),
                       echo_event("m_staff", app_id=INBOX_APP)], [text_event("hello?", "m_h3")]))
    settle(client)
    time.sleep(0.2)
    assert len(stub.sent(PSID)) == 1
    # Page Inbox passes the thread back: the bot answers again and says it is the assistant.
    client.app.state.runtime.chatbot = EchoBot()
    post(client, body([handback_event()], [text_event("one more question", "m_h4")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    assert stub.sent(PSID)[1]["text"] == f"{render.DISCLOSE_BACK} echo: one more question"
    post(client, body([text_event("and another", "m_h5")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 3)
    assert stub.sent(PSID)[2]["text"] == "echo: and another"


@pytest.mark.parametrize("text", ["human", "Agent", "talk to a person"])
def test_short_requests_for_a_person_hand_over(messenger, stub, text) -> None:
    client = messenger()
    post(client, body([text_event(text, f"m_person_{text}")]))
    stub.wait_for(lambda: any(c.path.endswith("/pass_thread_control") for c in stub.ok_calls()))


def test_a_person_replying_from_the_inbox_silences_the_bot(messenger, stub) -> None:
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    post(client, body([echo_event("m_staff_first", app_id=INBOX_APP)], [text_event("thanks Sarah", "m_p1")]))
    settle(client)
    time.sleep(0.2)
    assert posts(stub) == []
    assert [text for text, _ in bot.remembered] == ["thanks Sarah"]  # read and recorded, not answered


def test_an_emergency_is_answered_even_while_a_person_holds_the_thread(messenger, stub) -> None:
    client = messenger()
    post(client, body([echo_event("m_staff_er", app_id=INBOX_APP)],
                      [text_event("I fell off a ladder and now I cannot stand up", "m_held_er")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert "911" in stub.sent(PSID)[0]["text"]


def test_hold_ends_after_the_configured_time(messenger, stub) -> None:
    client = messenger(messenger_handover_minutes=0)
    post(client, body([text_event("talk to a person", "m_t1")]))
    stub.wait_for(lambda: any(c.path.endswith("/pass_thread_control") for c in stub.ok_calls()))
    client.app.state.runtime.chatbot = EchoBot()
    post(client, body([text_event("anyone?", "m_t2")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    assert stub.sent(PSID)[1]["text"] == f"{render.DISCLOSE_BACK} echo: anyone?"


# -- privacy --------------------------------------------------------------------------------------
def test_logs_hold_no_text_no_psid_no_token(messenger, stub, caplog) -> None:
    client = messenger()
    secret_words = ["my lower back burns since the car ride", "talk to a person", "What is the psoas?"]
    with caplog.at_level(logging.DEBUG):
        for n, words in enumerate(secret_words):
            post(client, body([text_event(words, f"m_priv_{n}")]))
            settle(client)
        post(client, body([attachment_event("m_priv_att", psid=OTHER)]))
        settle(client)
    logged = log_text(caplog)
    assert "messenger reply" in logged  # there is something to look at
    for value in [*secret_words, "burns", PSID, OTHER, PAGE_TOKEN, SECRET, render.HANDOVER_NOTE[:30]]:
        assert value not in logged, value


# -- rendering units ------------------------------------------------------------------------------
def test_render_limits() -> None:
    reply = Reply(kind="answer", reply="A. " * 10,
                  suggestions=[f"Suggested question number {n} about the psoas?" for n in range(20)],
                  actions=[Action(type="call", label="Call the clinic right now please", value="tel:+18284587218")] * 5)
    messages = render.render(reply)
    quick = messages[-1]["quick_replies"]
    assert len(quick) == 13 and all(len(q["title"]) <= 20 for q in quick)
    assert quick[0]["payload"] == "Suggested question number 0 about the psoas?"
    template = messages[-1]["attachment"]["payload"]
    assert len(template["buttons"]) == 3 and all(len(b["title"]) <= 20 for b in template["buttons"])


def test_source_lines_link_our_article_pages_only_with_a_public_url() -> None:
    reply = Reply(kind="answer", reply="The psoas is a muscle.",
                  citations=[Citation(title="The psoas muscle", source="psoas-muscle.md", url="/articles/psoas-muscle"),
                             Citation(title="Elsewhere", source="x.md", url="https://clinic.example/x")])
    assert render.source_lines(reply) == ["Source: The psoas muscle", "Source: Elsewhere https://clinic.example/x"]
    assert render.source_lines(reply, "https://bot.example.org/")[0] == (
        "Source: The psoas muscle https://bot.example.org/articles/psoas-muscle")


def test_split_counts_emoji_as_meta_does() -> None:
    text = ("😀" * 999 + ". ") * 3
    parts = render.split_text(text)
    assert all(render.units(p) <= 2000 for p in parts) and len(parts) == 3
    giant = "x" * 4500
    assert [len(p) for p in render.split_text(giant)] == [2000, 2000, 500]


# -- Page set-up ------------------------------------------------------------------------------------
def test_messenger_setup_dry_run_and_twice(data_dir, stub, capsys) -> None:
    from bot.channels import messenger_setup
    from tests.conftest import make_settings

    settings = make_settings(data_dir, messenger_page_access_token=PAGE_TOKEN, graph_api_base=stub.url)
    assert messenger_setup.main(argparse.Namespace(dry_run=True), settings) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{"):])
    assert posts(stub) == []
    assert messenger_setup.main(argparse.Namespace(dry_run=False), settings) == 0
    assert messenger_setup.main(argparse.Namespace(dry_run=False), settings) == 0
    cleared, first, cleared_again, second = stub.calls
    assert first.path == "/v23.0/me/messenger_profile" and first.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert first.body == second.body == printed  # safe to run twice: same payload, same result
    assert cleared.method == "DELETE" and cleared.body == cleared_again.body == {"fields": ["ice_breakers"]}
    profile = first.body
    greeting = profile["greeting"][0]["text"]
    assert "automated assistant" in greeting and len(greeting) <= 160
    assert profile["get_started"] == {"payload": "GET_STARTED"} and "ice_breakers" not in profile
    menu = profile["persistent_menu"][0]["call_to_actions"]
    assert [m["title"] for m in menu] == ["Book", "Call the clinic", "Our articles"]
    assert all(m["type"] == "postback" for m in menu)  # no URLs configured, and menus cannot dial
    out = capsys.readouterr().out
    assert "get_started: payload GET_STARTED" in out and "result: success" in out
    # The other choice: ice breakers (the question is the payload), no Get Started and so no menu.
    settings = make_settings(data_dir, messenger_page_access_token=PAGE_TOKEN, graph_api_base=stub.url,
                             messenger_welcome="ice_breakers")
    assert messenger_setup.main(argparse.Namespace(dry_run=False), settings) == 0
    cleared, profile = [c.body for c in stub.calls[-2:]]
    assert cleared == {"fields": ["get_started", "persistent_menu"]} and set(profile) == {"greeting", "ice_breakers"}
    questions = profile["ice_breakers"][0]["call_to_actions"]
    assert 3 <= len(questions) <= 4 and all(q["question"] == q["payload"] for q in questions)
    assert "ice breaker: What is the psoas?" in capsys.readouterr().out


def test_messenger_setup_needs_a_page_token(data_dir, stub, capsys) -> None:
    from bot.channels import messenger_setup
    from tests.conftest import make_settings

    settings = make_settings(data_dir, messenger_page_access_token=None, graph_api_base=stub.url)
    assert messenger_setup.main(argparse.Namespace(dry_run=False), settings) == 2
    assert "MESSENGER_PAGE_ACCESS_TOKEN" in capsys.readouterr().err
    stub.fail(1, 400, error={"message": "bad", "type": "OAuthException", "code": 100})
    settings = make_settings(data_dir, messenger_page_access_token=PAGE_TOKEN, graph_api_base=stub.url)
    assert messenger_setup.main(argparse.Namespace(dry_run=False), settings) == 1


def test_messenger_setup_uses_urls_when_configured(data_dir) -> None:
    from bot.channels.messenger_setup import build_profile
    from bot.config import load_clinic
    from tests.conftest import KNOWLEDGE

    clinic = load_clinic(KNOWLEDGE).model_copy(update={"booking_url": "https://clinic.example/book",
                                                       "articles_url": "https://clinic.example/articles"})
    menu = build_profile(clinic)["persistent_menu"][0]["call_to_actions"]
    assert menu[0] == {"type": "web_url", "title": "Book online", "url": "https://clinic.example/book",
                       "webview_height_ratio": "full"}
    assert menu[1]["payload"] == "CALL" and menu[2]["url"] == "https://clinic.example/articles"


# -- a real server ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_live_webhook_answers_fast_while_graph_is_slow(data_dir: Path, stub: GraphStub) -> None:
    from tests.conftest import LiveServer

    stub.delay = 5.0
    server = LiveServer(data_dir, env={"MESSENGER_APP_SECRET": SECRET, "MESSENGER_VERIFY_TOKEN": VERIFY,
                                       "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN, "GRAPH_API_BASE": stub.url})
    try:
        server.wait_ready()
        for n in range(3):
            raw = json.dumps(body([text_event(f"What is the psoas? ({n})", f"m_live_{n}")])).encode()
            started = time.perf_counter()
            resp = httpx.post(server.url + "/messenger/webhook", content=raw, timeout=10,
                              headers={"content-type": "application/json", "x-hub-signature-256": sign(raw)})
            elapsed = time.perf_counter() - started
            assert resp.status_code == 200 and resp.text == "EVENT_RECEIVED"
            assert elapsed < 1.0, elapsed
        stub.wait_for(lambda: len(stub.sent(PSID)) >= 1, timeout=60)
    finally:
        server.stop()
    log = server.log.read_text()
    assert "What is the psoas" not in log and PSID not in log and PAGE_TOKEN not in log


# -- staff answers (issue 16) -----------------------------------------------------------------------
def test_a_published_staff_answer_reaches_messenger_with_its_source_line(messenger, stub) -> None:
    from tests.conftest import STAFF_TOKEN

    client = messenger(public_url="https://bot.example.org")
    staff = {"Authorization": f"Bearer {STAFF_TOKEN}"}
    entry = client.post("/staff/api/faq", headers=staff, json={
        "question": "Do you sell gift cards?", "author": "Ann",
        "answer": "Yes, gift cards are available at the front desk. <script>alert(1)</script>"}).json()
    client.post(f"/staff/api/faq/{entry['id']}/publish", headers=staff, json={"actor": "Ann"})
    post(client, body([text_event("can i buy a gift card for my mom", "m_gift")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) >= 1)
    settle(client)
    joined = " ".join(texts(stub.sent(PSID)))
    assert "gift cards are available at the front desk" in joined and "<script>" not in joined
    assert "https://bot.example.org/articles/faq/do-you-sell-gift-cards" in joined
