"""Messenger in a real Page deployment (issue 14): standby triage, handover failures, the durable queue and
outbox, token health, non-text messages. Payloads follow Meta's reference (tests/fixtures/messenger_standby.json
is the standby example from the Webhook Events reference, with our ids filled in)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

import tests.test_messenger as base
from bot.channels import messenger_render as render
from tests.conftest import STAFF_TOKEN
from tests.test_messenger import (
    INBOX_APP,
    PAGE_ID,
    PSID,
    EchoBot,
    body,
    buttons,
    echo_event,
    post,
    posts,
    settle,
    text_event,
)

# The Messenger suite's fixtures: the Graph stand-in, the configured app, short retry waits.
stub, messenger, fast_retries = base.stub, base.messenger, base.fast_retries

FIXTURE = Path(__file__).parent / "fixtures" / "messenger_standby.json"
STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}


def standby(text: str, mid: str, psid: str = PSID) -> dict[str, Any]:
    """Meta's standby webhook example with our page, sender, message and a current timestamp."""
    payload = copy.deepcopy(json.loads(FIXTURE.read_text()))
    entry = payload["entry"][0]
    entry["id"] = PAGE_ID
    entry["time"] = int(time.time() * 1000)
    event = entry["standby"][0]
    event["sender"]["id"], event["recipient"]["id"] = psid, PAGE_ID
    event["timestamp"] = entry["time"]
    event["message"].update(mid=mid, text=text)
    return payload


def sticker_event(mid: str, sticker_id: int) -> dict[str, Any]:
    """A sticker (the like button is sticker 369239263222822): an image attachment with a sticker_id."""
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": int(time.time() * 1000),
            "message": {"mid": mid, "sticker_id": sticker_id, "attachments": [
                {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/v/sticker.png",
                                              "sticker_id": sticker_id}}]}}


def media_event(mid: str, kind: str, text: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "attachments": [
        {"type": kind, "payload": {"url": f"https://cdn.fbsbx.com/v/{kind}.bin"}}]}
    if text is not None:
        message["text"] = text
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": int(time.time() * 1000),
            "message": message}


def graph_paths(graph: Any) -> list[str]:
    return [c.path.rsplit("/", 1)[-1] for c in posts(graph) if not c.body or "sender_action" not in c.body]


# -- 1. standby ---------------------------------------------------------------------------------------------------------
def test_standby_fixture_is_metas_shape() -> None:
    event = json.loads(FIXTURE.read_text())["entry"][0]["standby"][0]
    assert set(event) == {"sender", "recipient", "timestamp", "message"} and set(event["message"]) == {"mid", "text"}


def test_standby_emergency_takes_the_thread_sends_the_instruction_and_flags_staff(messenger, stub) -> None:
    client = messenger()
    assert post(client, standby("I suddenly can't feel my groin and I wet myself", "m_sb_er")).status_code == 200
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    settle(client)
    [message] = stub.sent(PSID)
    assert "911" in message["text"]
    assert graph_paths(stub) == ["take_thread_control", "messages", "pass_thread_control"]
    take, send, give_back = [c for c in posts(stub) if c.body and "sender_action" not in c.body]
    assert take.path == f"/v23.0/{PAGE_ID}/take_thread_control" and take.body["recipient"] == {"id": PSID}
    assert send.body["messaging_type"] == "RESPONSE"
    assert give_back.body["target_app_id"] == INBOX_APP  # the person keeps the conversation
    flags = client.get("/staff/api/messenger", headers=STAFF).json()["flags"]
    assert [f["reason"] for f in flags] == ["emergency_while_held"]


def test_standby_emergency_is_sent_as_the_page_when_the_thread_cannot_be_taken(messenger, stub) -> None:
    client = messenger()
    stub.fail(5, 400, error={"message": "(#10) Cannot take thread control", "type": "OAuthException", "code": 10},
              match=lambda c: c.path.endswith("/take_thread_control"))
    post(client, standby("I fell off a ladder and now I cannot stand up", "m_sb_er2"))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    settle(client)
    assert "911" in stub.sent(PSID)[0]["text"]
    assert "pass_thread_control" not in graph_paths(stub)


def test_standby_messages_are_recorded_redacted_and_not_answered(messenger, stub) -> None:
    client = messenger()
    post(client, standby("What is the psoas? My email is jane@example.com", "m_sb_q"))
    settle(client)
    time.sleep(0.2)
    assert posts(stub) == []
    store = client.app.state.runtime.store
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT role, text FROM turns ORDER BY id").all()
    assert rows[0][0] == "user" and "psoas" in rows[0][1] and "jane@example.com" not in rows[0][1]
    assert rows[1][1].startswith("[not sent")


def test_after_the_hold_lapses_a_standby_message_takes_the_thread_back_and_is_answered(messenger, stub) -> None:
    client = messenger(messenger_handover_minutes=0)
    client.app.state.runtime.chatbot = EchoBot()
    post(client, body([echo_event("m_staff", app_id=INBOX_APP)]))  # a person wrote: hold (0 minutes)
    settle(client)
    post(client, standby("are you still there?", "m_sb_back"))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert stub.sent(PSID)[0]["text"] == f"{render.DISCLOSE_BACK} echo: are you still there?"
    assert graph_paths(stub)[0] == "take_thread_control"


# -- 3. handover correctness --------------------------------------------------------------------------------------------
def test_failed_pass_thread_control_sets_no_hold_tells_the_patient_to_call_and_flags_staff(messenger, stub) -> None:
    client = messenger()
    stub.fail(10, 400, error={"message": "(#10) Application does not have permission", "type": "OAuthException",
                              "code": 10}, match=lambda c: c.path.endswith("/pass_thread_control"))
    post(client, body([text_event("talk to a person", "m_hf")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    settle(client)
    _note, sorry = stub.sent(PSID)
    assert "couldn't reach our staff" in sorry["attachment"]["payload"]["text"]
    assert buttons(sorry)[0]["payload"] == "+18284587218"
    assert [f["reason"] for f in client.get("/staff/api/messenger", headers=STAFF).json()["flags"]] == [
        "handover_failed"]
    client.app.state.runtime.chatbot = EchoBot()  # no hold: the bot still answers
    post(client, body([text_event("ok", "m_hf2")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 3)


# -- 2/7. durable, exactly once -----------------------------------------------------------------------------------------
def test_a_send_whose_answer_was_lost_is_confirmed_by_its_echo_not_sent_twice(messenger, stub) -> None:
    client = messenger(messenger_echo_wait_s=30.0)
    client.app.state.runtime.chatbot = EchoBot()
    stub.lose_answers = 1  # Meta takes the message; the connection drops before the answer
    post(client, body([text_event("hello", "m_lost")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    time.sleep(0.5)
    assert client.app.state.messenger.pending == 1  # not answered, not re-sent blindly: waiting for the echo
    [call] = [c for c in posts(stub) if c.message]
    echo = echo_event("m_echo_of_lost", app_id="1234567890", metadata=call.message["metadata"],
                      text=call.message["text"])
    post(client, body([echo]))
    settle(client)
    time.sleep(0.3)
    assert len(stub.sent(PSID)) == 1


def test_without_an_echo_the_uncertain_send_is_retried_after_the_wait(messenger, stub) -> None:
    client = messenger(messenger_echo_wait_s=0.5)
    client.app.state.runtime.chatbot = EchoBot()
    stub.down = True
    post(client, body([text_event("hello", "m_noecho")]))
    time.sleep(0.8)
    stub.down = False
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    settle(client)


def test_graph_500_storm_keeps_replies_queued_and_in_order(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    stub.fail(25, 500, match=lambda c: c.message is not None)
    for n in range(3):
        post(client, body([text_event(f"q{n}", f"m_storm_{n}")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 3, timeout=30)
    settle(client)
    assert [m["text"].rsplit(" ", 1)[-1] for m in stub.sent(PSID)] == ["q0", "q1", "q2"]
    assert len({m["metadata"] for m in stub.sent(PSID)}) == 3


def test_old_events_are_dropped_with_a_metric(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    event = text_event("from yesterday", "m_old")
    event["timestamp"] = int((time.time() - 86400) * 1000)
    post(client, body([event]))
    settle(client)
    assert posts(stub) == []
    metrics = client.get("/metrics").text
    assert 'bot_messenger_events_total{outcome="too_old"}' in metrics


def test_replayed_and_out_of_order_events_are_handled_once(messenger, stub) -> None:
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    first, second = text_event("one", "m_o1"), text_event("two", "m_o2")
    post(client, body([second]))
    post(client, body([first, second]))  # Meta redelivers the batch: m_o2 again
    stub.wait_for(lambda: len(stub.sent(PSID)) == 2)
    settle(client)
    time.sleep(0.2)
    assert [m["text"].rsplit(" ", 1)[-1] for m in stub.sent(PSID)] == ["two", "one"]


# -- 6. token health ----------------------------------------------------------------------------------------------------
def test_expired_token_shows_in_health_and_staff_and_replies_wait(messenger, stub) -> None:
    stub.me_status = 400
    client = messenger()
    client.app.state.runtime.chatbot = EchoBot()
    deadline = time.monotonic() + 10
    while client.get("/health").json().get("messenger", {}).get("token") != "token_expired":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert client.get("/staff/api/messenger", headers=STAFF).json()["token"] == "token_expired"
    assert "bot_messenger_token_expired 1.0" in client.get("/metrics").text
    expired = {"message": "Error validating access token: Session has expired", "type": "OAuthException",
               "code": 190, "error_subcode": 463}
    stub.fail(2, 400, error=expired, match=lambda c: c.message is not None)
    post(client, body([text_event("hello", "m_tok")]))
    stub.wait_for(lambda: len([c for c in posts(stub) if c.message]) == 2, timeout=15)
    assert stub.sent(PSID) == [] and client.app.state.messenger.pending == 1  # queued, not lost
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1, timeout=15)  # the token works again
    assert client.get("/health").json()["messenger"]["token"] == "ok"


# -- 5. non-text --------------------------------------------------------------------------------------------------------
def test_a_like_is_a_thanks_for_the_core(messenger, stub) -> None:
    client = messenger()
    bot = EchoBot()
    client.app.state.runtime.chatbot = bot
    post(client, body([sticker_event("m_like", 369239263222822)]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert [m.text for m in bot.seen] == ["thanks"]


def test_a_like_through_the_real_core_is_not_the_text_only_note(messenger, stub) -> None:
    client = messenger()
    post(client, body([sticker_event("m_like_real", 369239343222814)]))
    stub.wait_for(lambda: len(stub.sent(PSID)) >= 1)
    settle(client)
    joined = json.dumps(stub.sent(PSID))
    assert "only read text" not in joined and "can't open" not in joined


@pytest.mark.parametrize(("kind", "expected"), [("audio", "can't open"), ("file", "can't open"),
                                                 ("video", "can't open")])
def test_voice_files_and_videos_get_the_phone(messenger, stub, kind, expected) -> None:
    client = messenger()
    post(client, body([media_event(f"m_{kind}", kind)]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert expected in stub.sent(PSID)[0]["attachment"]["payload"]["text"]


def test_a_sticker_gets_a_friendly_reply(messenger, stub) -> None:
    client = messenger()
    post(client, body([sticker_event("m_sticker", 126361874215276)]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert stub.sent(PSID)[0]["text"].endswith(render.STICKER_NOTE)


def test_a_caption_is_triaged_as_text(messenger, stub) -> None:
    client = messenger()
    post(client, body([media_event("m_caption", "image", "I fell off a ladder and now I cannot stand up")]))
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert "911" in stub.sent(PSID)[0]["text"]


# -- 8. small ones ------------------------------------------------------------------------------------------------------
def test_quick_reply_titles_are_cut_in_utf16_units() -> None:
    titles = [q["title"] for q in render.quick_replies(["😀" * 15, "Is the psoas 😣 linked to my hip pain?"])]
    assert all(render.units(t) <= 20 for t in titles)
    assert titles[1] == "Is the psoas 😣…"


@pytest.mark.parametrize("welcome", ["get_started", "ice_breakers"])
def test_get_started_and_ice_breakers_are_not_configured_together(welcome) -> None:
    from bot.channels.messenger_setup import build_profile
    from bot.config import load_clinic
    from tests.conftest import KNOWLEDGE

    profile = build_profile(load_clinic(KNOWLEDGE), welcome=welcome)
    assert (("get_started" in profile), ("ice_breakers" in profile)) == (
        welcome == "get_started", welcome == "ice_breakers")


def test_shutdown_hands_unfinished_events_back_and_the_next_worker_answers_them(messenger, stub) -> None:
    client = messenger(messenger_shutdown_grace_s=0.2)
    client.app.state.runtime.chatbot = EchoBot(slow_first=5.0)
    post(client, body([text_event("slow one", "m_term")]))
    store = client.app.state.runtime.store
    deadline = time.monotonic() + 10
    while store.queue_stats().get("running", 0) != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    client.__exit__(None, None, None)  # the app stops (SIGTERM): not cancelled and lost
    assert time.monotonic() - started < 3
    assert store.queue_stats().get("queued") == 1 and stub.sent(PSID) == []
    again = messenger()
    again.app.state.runtime.chatbot = EchoBot()
    stub.wait_for(lambda: len(stub.sent(PSID)) == 1)
    assert stub.sent(PSID)[0]["text"].endswith("echo: slow one")
