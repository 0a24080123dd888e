"""The store suite, run against SQLite in tmp_path and against the real PostgreSQL on loopback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, make_url, text, update

import bot.store
from bot.store import (
    Store,
    StoreUnavailable,
    daily_counts,
    feedback,
    messenger_events,
    messenger_mids,
    messenger_threads,
    metadata,
    now,
    sessions,
    turns,
    unanswered,
)
from tests.conftest import unavailable

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
HEAD = "0003_staff_knowledge"
ROOT = Path(__file__).resolve().parent.parent
LONG_AGO = timedelta(days=40)


# -- backends -------------------------------------------------------------------------------------------------------
def _conninfo(url: Any) -> str:
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Callable[[], str]]:
    """A factory of throwaway PostgreSQL databases (as SQLAlchemy URLs), all dropped at the end of the run."""
    import psycopg
    from psycopg import sql

    admin = make_url(ADMIN_URL)
    try:
        psycopg.connect(_conninfo(admin), autocommit=True, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        reason = (f"PostgreSQL is not reachable at {admin.render_as_string()} ({str(exc).strip().splitlines()[0]}); "
                  "start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
                  "or point TEST_POSTGRES_URL at an admin database")
        unavailable(reason)
    created: list[str] = []

    def create() -> str:
        name = f"bot_test_{secrets.token_hex(6)}"
        with psycopg.connect(_conninfo(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        # A session zone other than UTC proves the store hands back UTC whatever the server's setting.
        url = admin.set(database=name).update_query_dict({"options": "-c TimeZone=America/New_York"})
        return str(url.render_as_string(hide_password=False))

    yield create
    with psycopg.connect(_conninfo(admin), autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_url(pg_databases: Callable[[], str]) -> str:
    """The one database the PostgreSQL half of the suite shares (tables are emptied before each test)."""
    return pg_databases()


BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database nobody has migrated yet."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    return str(request.getfixturevalue("pg_databases")())


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store(url, session_idle_minutes=30)
    s.migrate()
    with s.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    yield s
    s.close()


def _backdate(store: Store, table: Any, column: str, when: datetime, *where: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(table).where(*where).values({column: when}))


def _version(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


# -- schema ---------------------------------------------------------------------------------------------------------
def test_migrate_twice_is_a_no_op_and_matches_the_tables(store: Store) -> None:
    s = store.open_session(None, "web")
    store.record_exchange(s.id, "web", "what is the psoas", "answer", "Our article ...")
    store.migrate()
    assert _version(store) == [HEAD]
    assert store.counts()["turns"] == 2 and store.ping()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.store import head_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(bot.store.__file__).with_name("migrations")))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head() == HEAD


def test_a_database_at_head_starts_without_running_alembic(store: Store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import alembic.command

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("alembic ran on a database already at head")

    monkeypatch.setattr(alembic.command, "upgrade", refuse)
    assert store.at_head()
    store.migrate()  # one query, no Alembic
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        assert not store.at_head()  # a database behind the code does migrate
        with pytest.raises(AssertionError, match="alembic ran"):
            store.migrate()
    finally:  # the Postgres database is shared by the tests that follow
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": HEAD})


WORKER = """
import sys, time
from pathlib import Path
from bot.store import Store
store = Store(sys.argv[1])
Path(sys.argv[2] + ".ready").touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.002)
store.migrate()
store.close()
"""


def test_workers_migrating_at_once_all_succeed(fresh_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, fresh_url, str(tmp_path / f"w{n}"), str(go)],
                                cwd=ROOT, stderr=subprocess.PIPE, text=True) for n in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.ready"))) < len(workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # every worker is imported and waiting: they now migrate at the same moment
    errors = [err for w in workers for _, err in [w.communicate(timeout=120)] if w.returncode != 0]
    assert errors == []
    s = Store(fresh_url)
    try:
        assert _version(s) == [HEAD]
    finally:
        s.close()


# -- conversations --------------------------------------------------------------------------------------------------
def test_new_unknown_malformed_and_expired_sessions_get_a_new_id(store: Store) -> None:
    fresh = store.open_session(None, "web")
    assert fresh.is_new and fresh.turns == [] and len(fresh.id) == 32
    store.record_exchange(fresh.id, "web", "what is the psoas", "answer", "Our article on the psoas ...")
    for bad in ("made-up-session-id", "", "short", "x" * 65, "../etc/passwd", "a b c d e f g h", "é" * 32):
        other = store.open_session(bad, "web")
        assert other.is_new and other.id not in (bad, fresh.id), bad
    known = store.open_session(fresh.id, "web")
    assert not known.is_new and known.id == fresh.id
    assert [(t.role, t.kind) for t in known.turns] == [("user", None), ("bot", "answer")]
    stamp = known.turns[0].created_at
    assert known.turns[0].text == "what is the psoas" and stamp is not None and stamp.utcoffset() == timedelta(0)
    _backdate(store, sessions, "last_seen", now() - timedelta(minutes=31), sessions.c.id == fresh.id)
    expired = store.open_session(fresh.id, "web")
    assert expired.is_new and expired.id != fresh.id


def test_known_session_returns_the_last_six_turns_oldest_first(store: Store) -> None:
    s = store.open_session(None, "messenger")
    for n in range(4):
        store.record_exchange(s.id, "messenger", f"question {n}", "answer", f"reply {n}")
    got = store.open_session(s.id, "messenger")
    assert [t.text for t in got.turns] == ["question 1", "reply 1", "question 2", "reply 2", "question 3", "reply 3"]


def test_record_exchange_counts_replies_per_day_and_kind(store: Store) -> None:
    s = store.open_session(None, "web")
    rids = {store.record_exchange(s.id, "web", "q", kind, "r") for kind in ("answer", "answer", "handoff")}
    assert len(rids) == 3 and all(len(r) >= 16 for r in rids)
    # The core may start a session without the database: the exchange creates it.
    store.record_exchange("started-while-db-was-down", "web", "q", "emergency", "call 911")
    assert not store.open_session("started-while-db-was-down", "web").is_new
    with store.engine.begin() as conn:
        old_day = (now() - LONG_AGO).strftime("%Y-%m-%d")
        conn.execute(insert(daily_counts).values(day=old_day, kind="answer", count=7))
    today = now().strftime("%Y-%m-%d")
    assert store.daily_counts(30) == [{"date": today, "kind": "answer", "count": 2},
                                      {"date": today, "kind": "emergency", "count": 1},
                                      {"date": today, "kind": "handoff", "count": 1}]
    assert {"date": old_day, "kind": "answer", "count": 7} in store.daily_counts(60)


def test_feedback_on_known_and_unknown_replies(store: Store) -> None:
    s = store.open_session(None, "web")
    store.record_exchange(s.id, "web", "what is the psoas", "answer", "Our article on the psoas ...")
    rid = store.record_exchange(s.id, "web", "how much is a session", "handoff", "Please call (828) 458-7218.")
    assert store.add_feedback(rid, "down", "wanted a price") is True
    assert store.add_feedback(rid, "up", None) is True
    assert store.add_feedback("no-such-reply", "up", None) is False
    with pytest.raises(ValueError):
        store.add_feedback(rid, "meh", None)  # type: ignore[arg-type]
    [down] = store.list_feedback()
    assert down["rating"] == "down" and down["comment"] == "wanted a price" and down["handled"] is False
    assert down["question"] == "how much is a session" and down["reply_kind"] == "handoff"
    assert down["reply_text"] == "Please call (828) 458-7218."
    assert datetime.fromisoformat(down["created_at"]).utcoffset() == timedelta(0)
    assert [f["rating"] for f in store.list_feedback(rating=None)] == ["up", "down"]  # newest first
    assert store.mark_feedback_handled([down["id"]]) == 1
    assert store.mark_feedback_handled([down["id"], 999_999]) == 0
    assert store.list_feedback() == [] and store.list_feedback(include_handled=True)[0]["handled"] is True


def test_unanswered_list_and_mark_handled(store: Store) -> None:
    s = store.open_session(None, "web")
    store.record_unanswered("do you take insurance", s.id, "web")
    store.record_exchange(s.id, "web", "where do I park", "handoff", "call us", unanswered_question="where do I park")
    store.record_unanswered("hours on saturday", None, "messenger")
    listed = store.list_unanswered()
    assert [u["question"] for u in listed] == ["hours on saturday", "where do I park", "do you take insurance"]
    assert set(listed[0]) >= {"id", "question", "created_at", "handled"} and listed[0]["handled"] is False
    assert datetime.fromisoformat(listed[0]["created_at"]).utcoffset() == timedelta(0)
    assert len(store.list_unanswered(limit=2)) == 2
    assert store.mark_unanswered_handled([listed[0]["id"], listed[2]["id"]]) == 2
    assert [u["question"] for u in store.list_unanswered()] == ["where do I park"]
    assert [u["handled"] for u in store.list_unanswered(include_handled=True)] == [True, False, True]
    assert store.mark_unanswered_handled([]) == 0


def test_purge_deletes_old_rows_and_keeps_daily_counts(store: Store) -> None:
    old, new = store.open_session(None, "web"), store.open_session(None, "web")
    rid = store.record_exchange(old.id, "web", "old question", "handoff", "old reply", unanswered_question="old")
    store.add_feedback(rid, "down", "old comment")
    store.record_exchange(new.id, "web", "new question", "answer", "new reply")
    store.claim_message("m.old")
    store.claim_message("m.new")
    store.touch_thread("old-thread")
    store.touch_thread("new-thread")
    store.set_human_until("held-long-ago", now() - LONG_AGO)
    past = now() - LONG_AGO
    _backdate(store, turns, "created_at", past, turns.c.session_id == old.id)
    _backdate(store, sessions, "last_seen", past, sessions.c.id == old.id)
    _backdate(store, unanswered, "created_at", past)
    _backdate(store, feedback, "created_at", past)
    _backdate(store, messenger_mids, "created_at", past, messenger_mids.c.mid == "m.old")
    _backdate(store, messenger_threads, "last_seen", past, messenger_threads.c.psid_hash == "old-thread")
    removed = store.purge(30)
    assert removed == {"turns": 2, "unanswered": 1, "feedback": 1, "messenger_mids": 1, "messenger_threads": 2,
                       "sessions": 1, "messenger_outbox": 0, "messenger_events": 0, "messenger_flags": 0}
    counts = store.counts()
    assert counts["turns"] == 2 and counts["sessions"] == 1 and counts["feedback"] == counts["unanswered"] == 0
    assert counts["messenger_mids"] == 1 and store.thread_state("new-thread")["last_seen"] is not None
    assert sum(r["count"] for r in store.daily_counts(30)) == 2  # the staff chart keeps its numbers
    assert store.purge(30) == dict.fromkeys(removed, 0)
    assert not store.open_session(new.id, "web").is_new


# -- Messenger ------------------------------------------------------------------------------------------------------
def test_claim_message_once_across_instances(store: Store, url: str) -> None:
    assert store.claim_message("m.1") is True
    assert store.claim_message("m.1") is False
    assert store.claim_message("m.2") is True
    other = Store(url)  # a restart, or another worker
    try:
        assert other.claim_message("m.1") is False and other.claim_message("m.3") is True
        assert store.claim_message("m.3") is False
    finally:
        other.close()
    huge = "m." + "x" * 400  # longer than the column: still deduplicated, never an error
    assert store.claim_message(huge) is True and store.claim_message(huge) is False


def test_concurrent_claims_of_one_mid_have_exactly_one_winner(store: Store, url: str) -> None:
    workers = [Store(url) for _ in range(8)]
    barrier, results, errors = threading.Barrier(len(workers)), [], []

    def claim(s: Store) -> None:
        barrier.wait()
        try:
            results.append(s.claim_message("m.race"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(s,)) for s in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in workers:
        s.close()
    assert errors == [] and sorted(results) == [False] * 7 + [True]


def test_thread_state(store: Store) -> None:
    assert store.thread_state("abc") == {"last_seen": None, "human_until": None, "session_id": None}
    assert store.touch_thread("abc", "sess-1") is None
    first = store.thread_state("abc")
    assert first["session_id"] == "sess-1" and first["last_seen"].utcoffset() == timedelta(0)
    assert abs(first["last_seen"] - now()) < timedelta(seconds=5)
    asheville = timezone(timedelta(hours=-4))
    until = datetime.now(asheville).replace(microsecond=0) + timedelta(minutes=60)
    store.set_human_until("abc", until)
    held = store.thread_state("abc")["human_until"]
    assert held == until and held.tzinfo is not None and held.utcoffset() == timedelta(0)
    assert store.touch_thread("abc") == first["last_seen"]
    assert store.thread_state("abc")["session_id"] == "sess-1"  # touching without a session keeps it
    store.set_human_until("abc", None)
    assert store.thread_state("abc")["human_until"] is None
    store.set_human_until("new", datetime(2030, 1, 1, 12, 0))  # naive means UTC
    assert store.thread_state("new") == {"last_seen": None, "human_until": datetime(2030, 1, 1, 12, 0, tzinfo=UTC),
                                         "session_id": None}


# -- failures -------------------------------------------------------------------------------------------------------
CALLS: list[tuple[str, Callable[[Store], Any]]] = [
    ("migrate", lambda s: s.migrate()),
    ("open_session", lambda s: s.open_session("x" * 32, "web")),
    ("open_new_session", lambda s: s.open_session(None, "web")),
    ("record_exchange", lambda s: s.record_exchange("x" * 32, "web", "q", "answer", "r")),
    ("record_unanswered", lambda s: s.record_unanswered("q", None, "web")),
    ("add_feedback", lambda s: s.add_feedback("r" * 22, "up", None)),
    ("list_unanswered", lambda s: s.list_unanswered()),
    ("list_feedback", lambda s: s.list_feedback()),
    ("daily_counts", lambda s: s.daily_counts()),
    ("purge", lambda s: s.purge(30)),
    ("claim_message", lambda s: s.claim_message("m.down")),
    ("thread_state", lambda s: s.thread_state("abc")),
    ("touch_thread", lambda s: s.touch_thread("abc")),
    ("set_human_until", lambda s: s.set_human_until("abc", None)),
]


@pytest.mark.parametrize("dead_url", [
    pytest.param("postgresql+psycopg://nobody@127.0.0.1:1/none", id="postgres-closed-port"),
    pytest.param("sqlite:////nonexistent-dir/for/sure/bot.sqlite3", id="sqlite-unopenable"),
])
def test_unreachable_database_raises_store_unavailable(dead_url: str) -> None:
    dead = Store(dead_url)
    try:
        assert dead.ping() is False
        for name, call in CALLS:
            with pytest.raises(StoreUnavailable):
                call(dead)
                pytest.fail(f"{name} did not raise")
    finally:
        dead.close()


@pytest.mark.postgres
def test_database_dropped_under_a_running_store(pg_databases: Callable[[], str]) -> None:
    import psycopg
    from psycopg import sql

    url = pg_databases()
    s = Store(url)
    s.migrate()
    assert s.ping() and s.claim_message("m.before") is True
    with psycopg.connect(_conninfo(make_url(ADMIN_URL)), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(make_url(url).database))))
    try:
        assert s.ping() is False
        with pytest.raises(StoreUnavailable):
            s.claim_message("m.after")  # the Messenger channel then does not answer: fail safe
        with pytest.raises(StoreUnavailable):
            s.open_session(None, "web")
    finally:
        s.close()


def test_errors_never_carry_the_stored_text(store: Store) -> None:
    s = store.open_session(None, "web")
    rid = store.record_exchange(s.id, "web", "q", "answer", "r")
    with pytest.raises(StoreUnavailable) as caught:  # a duplicate reply id: the database refuses the insert
        store.record_exchange(s.id, "web", "my back hurts since the fall", "answer", "r", reply_id=rid)
    chain = f"{caught.value} {caught.value.__cause__}"
    assert "back hurts" not in chain and "parameters hidden" in chain
    assert store.counts()["turns"] == 2  # the failed exchange left nothing behind


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        Store("mysql://u@localhost/db")


def test_plain_postgresql_url_uses_psycopg_3() -> None:
    s = Store("postgresql://nobody@127.0.0.1:1/none")
    try:
        assert s.engine.dialect.driver == "psycopg"
    finally:
        s.close()


def test_sqlite_runs_in_wal_with_normal_sync(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    try:
        with s.engine.connect() as conn:
            pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                       for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")]
    finally:
        s.close()
    assert pragmas == ["wal", 1, 15000, 1]


def test_forget_session_deletes_the_conversation_and_keeps_the_staff_rows(store: Store) -> None:
    """The widget's "Clear conversation": session and turns go; the unanswered question stays, unlinked."""
    s = store.open_session(None, "web")
    reply_id = store.record_exchange(s.id, "web", "do you sell gift cards", "handoff", "Please call us.",
                                     unanswered_question="do you sell gift cards")
    other = store.open_session(None, "web")
    store.record_exchange(other.id, "web", "what is the psoas", "answer", "A muscle.")
    assert store.add_feedback(reply_id, "down", "no answer")
    assert store.forget_session(s.id) is True
    assert store.open_session(s.id, "web").id != s.id  # nothing left to continue
    assert store.open_session(other.id, "web").turns  # other conversations untouched
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM turns WHERE session_id = :s"), {"s": s.id}).scalar() == 0
        assert conn.execute(text("SELECT session_id FROM unanswered")).scalars().all() == [None]
    assert [q["question"] for q in store.list_unanswered()] == ["do you sell gift cards"]
    assert store.forget_session(s.id) is False and store.forget_session("not a session id!") is False


def test_feedback_expires_with_the_reply_it_copies(store: Store) -> None:
    """Feedback holds a copy of the reply: RETENTION_DAYS runs from the reply's time, not the rating's."""
    session = store.open_session(None, "web")
    rid = store.record_exchange(session.id, "web", "a question", "answer", "a reply")
    _backdate(store, turns, "created_at", now() - timedelta(days=29), turns.c.session_id == session.id)
    assert store.add_feedback(rid, "down", "late rating")  # rated on day 29
    _backdate(store, turns, "created_at", now() - timedelta(days=31), turns.c.session_id == session.id)
    # Two days on, the reply is past retention: so is its copy in the feedback, although rated 2 days ago.
    with store.engine.begin() as conn:
        conn.execute(update(feedback).values(created_at=feedback.c.created_at - timedelta(days=2)))
    removed = store.purge(30)
    assert removed["turns"] == 2 and removed["feedback"] == 1
    assert store.counts()["feedback"] == 0


# -- Messenger durable queue (issue 14) -----------------------------------------------------------------------------
def _enqueue(store: Store, sender: str, *keys: str) -> None:
    store.enqueue_events([{"key": k, "psid_hash": sender, "payload": "{}"} for k in keys])


def test_queue_dedupes_by_key_and_hands_out_one_head_per_sender(store: Store) -> None:
    _enqueue(store, "a", "m.a1", "m.a2")
    _enqueue(store, "b", "m.b1")
    assert store.enqueue_events([{"key": "m.a1", "psid_hash": "a"}]) == 0  # a redelivery is not new
    first = store.claim_event("w1", 30)
    second = store.claim_event("w2", 30)
    assert first is not None and second is not None
    assert (first["key"], second["key"]) == ("m.a1", "m.b1")
    assert store.claim_event("w3", 30) is None  # m.a2 waits for m.a1: one sender, one event at a time
    assert store.finish_event(first["id"], "w1", "sent")
    third = store.claim_event("w3", 30)
    assert third is not None and third["key"] == "m.a2"
    assert store.finish_event(second["id"], "w2", "sent") and store.finish_event(third["id"], "w3", "sent")
    assert store.claim_event("w1", 30) is None
    assert store.queue_stats()["done"] == 3


def test_an_expired_lease_is_claimed_again_and_the_old_holder_cannot_finish(store: Store) -> None:
    _enqueue(store, "a", "m.1")
    held = store.claim_event("dead", 30)
    assert held is not None
    _backdate(store, messenger_events, "lease_until", now() - timedelta(seconds=1),
              messenger_events.c.id == held["id"])
    again = store.claim_event("alive", 30)
    assert again is not None and again["id"] == held["id"] and again["attempts"] == 2
    assert not store.finish_event(held["id"], "dead", "sent") and not store.renew_lease(held["id"], "dead", 30)
    assert store.release_event(held["id"], "alive", 60)
    assert store.claim_event("alive", 30) is None  # released with a delay: not before it is due


def test_outbox_keeps_order_and_a_sent_message_stays_sent(store: Store) -> None:
    _enqueue(store, "a", "m.1")
    held = store.claim_event("w", 30)
    assert held is not None
    store.add_outbox(held["id"], [("k1", '{"n": 1}'), ("k2", '{"n": 2}')])
    store.add_outbox(held["id"], [("k1", '{"n": 1}')])  # a resumed event adds nothing twice
    assert [r["idem_key"] for r in store.outbox_rows(held["id"])] == ["k1", "k2"]
    assert store.outbox_mark("k1", "sending")
    assert store.outbox_confirm("k1", "m_meta_1")
    assert not store.outbox_mark("k1", "pending")  # never back from sent
    rows = store.outbox_rows(held["id"])
    assert [(r["status"], r["body"]) for r in rows] == [("sent", None), ("pending", '{"n": 2}')]
    assert store.queue_stats()["outbox_unsent"] == 1


def test_stale_events_are_dropped_unless_a_reply_is_under_way(store: Store) -> None:
    _enqueue(store, "a", "m.old")
    _enqueue(store, "b", "m.old.started")
    _enqueue(store, "c", "m.new")
    started = store.claim_event("w", 30)
    assert started is not None and started["key"] == "m.old"
    store.release_event(started["id"], "w")
    started = store.claim_event("w", 30)
    assert started is not None
    other = store.claim_event("w", 30)
    assert other is not None and other["key"] == "m.old.started"
    store.add_outbox(other["id"], [("k", "{}")])
    store.release_event(other["id"], "w")
    store.release_event(started["id"], "w")
    _backdate(store, messenger_events, "received_at", now() - timedelta(hours=2),
              messenger_events.c.key.in_(["m.old", "m.old.started"]))
    assert store.drop_stale_events(3600) == 1
    assert store.queue_stats() == {"dropped": 1, "queued": 2, "outbox_unsent": 1}


def test_flags_and_status(store: Store) -> None:
    store.add_flag("h1", "emergency_standby", "sess-1")
    store.add_flag("h2", "handover_failed")
    flags = store.list_flags()
    assert [f["reason"] for f in flags] == ["handover_failed", "emergency_standby"]
    assert store.mark_flags_handled([flags[0]["id"]]) == 1 and len(store.list_flags()) == 1
    store.set_status("token", "expired")
    store.set_status("token", "expired")
    assert store.get_status() == {"token": "expired"}
    store.set_status("token", None)
    assert store.get_status() == {}


# -- staff knowledge (issue 16) on both databases --------------------------------------------------------------------
def test_staff_entries_version_conflict_publish_and_audit(store: Store) -> None:
    import numpy as np

    from bot.faq_store import Conflict, Content, KnowledgeStore

    kb = KnowledgeStore(store)
    assert kb.revision() == 0 and kb.published() == []
    eid = kb.create("faq", Content("Do you sell gift cards?", "Yes.", ["gift certificate"]), "Ann", [])
    again = kb.create("faq", Content("Do you sell gift cards?", "Also yes.", []), "Bo", [])
    assert kb.entry(again)["slug"] == "do-you-sell-gift-cards-2"  # a public URL is never shared or reused
    assert kb.save(eid, 1, Content("Do you sell gift cards?", "Yes, at the desk.", []), "Bo", []) == 2
    with pytest.raises(Conflict):
        kb.save(eid, 1, Content("Do you sell gift cards?", "Lost update.", []), "Cy", [])
    with pytest.raises(Conflict):  # publishing a version that is no longer the latest: someone saved after the check
        kb.set_state(eid, "Bo", "publish", version=1, status="published")
    assert kb.revision() == 0
    kb.set_state(eid, "Bo", "publish", version=2, status="published")
    assert kb.revision() == 1
    [live] = kb.published()
    assert (live.entry_id, live.content.answer, live.vectors) == (eid, "Yes, at the desk.", None)
    kb.set_vectors(live.version_id, np.ones((1, 4), dtype=np.float32), "test-model")
    [live] = kb.published()
    assert live.vectors is not None and live.vectors.shape == (1, 4) and live.model == "test-model"
    assert kb.by_slug("do-you-sell-gift-cards")["answer"] == "Yes, at the desk."
    assert kb.by_slug("do-you-sell-gift-cards-2") is None  # a draft has no public page
    entry = kb.entry(eid, with_versions=True)
    assert [v["version"] for v in entry["versions"]] == [2, 1] and entry["versions"][0]["was_published"]
    assert [a["action"] for a in kb.audit()] == ["publish", "save", "create", "create"]
