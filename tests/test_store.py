"""The store suite, run against SQLite and against the real PostgreSQL on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.store import Store, StoreUnavailable, now, sessions
from tests.test_scale import _postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    else:
        yield from _postgres_url()


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store(url, session_idle_minutes=30)
    s.migrate()
    yield s
    s.close()


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    store.migrate()
    assert store.ping() and store.counts()["sessions"] == 0


def test_sessions_new_known_and_expired(store: Store) -> None:
    fresh = store.open_session(None, "web")
    assert fresh.is_new and len(fresh.id) >= 24
    store.record_exchange(fresh.id, "web", "what is the psoas", "answer", "Our article...")
    again = store.open_session(fresh.id, "web")
    assert not again.is_new and [t.role for t in again.turns] == ["user", "bot"]
    assert again.turns[1].kind == "answer"
    unknown = store.open_session("made-up-id", "web")
    assert unknown.is_new and unknown.id != "made-up-id"
    with store.engine.begin() as conn:
        conn.execute(update(sessions).where(sessions.c.id == fresh.id).values(last_seen=now() - timedelta(hours=2)))
    expired = store.open_session(fresh.id, "web")
    assert expired.is_new and expired.id != fresh.id


def test_exchange_counts_feedback_and_unanswered(store: Store) -> None:
    s = store.open_session(None, "web")
    rid = store.record_exchange(s.id, "web", "price?", "handoff", "call us", unanswered_question="price?")
    assert store.add_feedback(rid, "down", "wanted a number") is True
    assert store.add_feedback("no-such-reply", "up", None) is False
    fb = store.list_feedback()
    assert fb[0]["comment"] == "wanted a number" and fb[0]["question"] == "price?"
    assert store.mark_feedback_handled([fb[0]["id"]]) == 1 and store.list_feedback() == []
    un = store.list_unanswered()
    assert [u["question"] for u in un] == ["price?"]
    assert store.mark_unanswered_handled([un[0]["id"]]) == 1 and store.list_unanswered() == []
    assert store.list_unanswered(include_handled=True)[0]["handled"] is True
    days = store.daily_counts(30)
    assert days == [{"date": now().strftime("%Y-%m-%d"), "kind": "handoff", "count": 1}]


def test_messenger_mid_claimed_once_across_instances_and_threads(store: Store, url: str) -> None:
    assert store.claim_message("m.1") is True
    assert store.claim_message("m.1") is False
    other = Store(url)  # a restart, or another worker
    assert other.claim_message("m.1") is False
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(Store(url).claim_message("m.race"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_thread_state(store: Store) -> None:
    assert store.thread_state("abc")["last_seen"] is None
    assert store.touch_thread("abc", "sess-1") is None
    state = store.thread_state("abc")
    assert state["session_id"] == "sess-1" and state["last_seen"] is not None
    until = now() + timedelta(minutes=30)
    store.set_human_until("abc", until)
    assert abs((store.thread_state("abc")["human_until"] - until).total_seconds()) < 1
    assert store.touch_thread("abc") == state["last_seen"]


def test_database_gone_raises_store_unavailable() -> None:
    dead = Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert dead.ping() is False
    with pytest.raises(StoreUnavailable):
        dead.claim_message("m.2")
    with pytest.raises(StoreUnavailable):
        dead.open_session("x" * 30, "web")
