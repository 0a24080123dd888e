"""Privacy: no message text, PSID or client IP in the logs; stored turns are redacted and expire."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import httpx

PII = {
    "phone": "828-555-0199",
    "email": "jane.doe@example.com",
    "dob": "03/14/1985",
}
CONVERSATION = [
    f"Hi, I'm Jane, my number is {PII['phone']} and my email is {PII['email']}",
    f"I was born {PII['dob']} and my hip hurts after hiking, what is the psoas?",
    "how long is it?",
    "how much does a session cost?",
]


def test_logs_hold_no_message_text_and_turns_are_redacted(live_server) -> None:  # type: ignore[no-untyped-def]
    session = None
    for message in CONVERSATION:
        body = httpx.post(live_server.url + "/chat", json={"message": message, "session_id": session},
                          timeout=30).json()
        session = body["session_id"]
    httpx.post(live_server.url + "/feedback", json={"reply_id": body["reply_id"], "rating": "down",
                                                    "comment": f"call me on {PII['phone']}"}, timeout=30)
    log = live_server.log.read_text()
    for value in [*PII.values(), "Jane", "hiking", "how long is it", "session cost", "555-0199"]:
        assert value not in log, value
    request_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"request"' in line]
    assert len(request_lines) >= 5
    for line in request_lines:
        assert set(line["request"]) <= {"id", "method", "route", "status", "ms", "kind", "reason", "score", "grounded"}
        assert "127.0.0.1" not in json.dumps(line)  # no client address
    chat_lines = [r["request"] for r in request_lines if r["request"]["route"] == "/chat"]
    assert {"kind", "score", "ms", "status"} <= set(chat_lines[-1])
    db = sqlite3.connect(Path(live_server.data_dir) / "bot.sqlite3")
    stored = " ".join(r[0] for r in db.execute("SELECT text FROM turns")) + " ".join(
        r[0] or "" for r in db.execute("SELECT comment FROM feedback"))
    for value in PII.values():
        assert value not in stored, value
    assert "[phone]" in stored and "[email]" in stored and "[date]" in stored


def test_retention_purges_old_turns_but_keeps_counts(data_dir) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from bot.store import Store, feedback, now, sessions, turns, unanswered
    from tests.conftest import make_settings

    store = Store(make_settings(data_dir).sqlalchemy_url)
    store.migrate()
    s = store.open_session(None, "web")
    rid = store.record_exchange(s.id, "web", "old question", "handoff", "old reply", unanswered_question="old")
    store.add_feedback(rid, "down", "old comment")
    fresh = store.open_session(None, "web")
    store.record_exchange(fresh.id, "web", "new question", "answer", "new reply")
    long_ago = now() - timedelta(days=40)
    with store.engine.begin() as conn:
        conn.execute(update(turns).where(turns.c.session_id == s.id).values(created_at=long_ago))
        conn.execute(update(unanswered).values(created_at=long_ago))
        conn.execute(update(feedback).values(created_at=long_ago))
        conn.execute(update(sessions).where(sessions.c.id == s.id).values(last_seen=long_ago))
    removed = store.purge(30)
    assert removed["turns"] == 2 and removed["unanswered"] == 1 and removed["feedback"] == 1
    counts = store.counts()
    assert counts["turns"] == 2 and counts["sessions"] >= 1
    assert sum(r["count"] for r in store.daily_counts(30)) == 2  # the chart keeps its numbers


def test_no_cookies_and_no_third_party_on_pages(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/chat", json={"message": "hi"})
    assert "set-cookie" not in resp.headers
    for path in ("/", "/staff"):
        page = client.get(path)
        if page.status_code == 404:
            continue
        assert "set-cookie" not in page.headers
        csp = page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp and "default-src 'self'" in csp
        assert not re.search(r"""(src|href)=["']https?://""", page.text)
