"""The database (SQLAlchemy; SQLite by default, PostgreSQL when DATABASE_URL says so), migrated by Alembic.

Every text handed to this module must already be redacted by the caller: the store never sees raw patient
text, and it never writes statement parameters into logs or error messages either.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import and_, delete, event, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.types import Session, Turn

# The schema as the code sees it; bot/migrations/versions/0001_initial.py creates exactly this.
metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True), sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("created_at", TS, nullable=False), sa.Column("last_seen", TS, nullable=False, index=True),
)
turns = sa.Table(
    "turns", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("role", sa.String(8), nullable=False), sa.Column("text", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16)), sa.Column("reply_id", sa.String(32), unique=True),
    sa.Column("created_at", TS, nullable=False, index=True),
)
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reply_id", sa.String(32), nullable=False, index=True),
    sa.Column("rating", sa.String(4), nullable=False), sa.Column("comment", sa.Text),
    # Copies of the rated exchange, so staff can read it even after the turns are purged (same retention).
    sa.Column("reply_kind", sa.String(16)), sa.Column("reply_text", sa.Text), sa.Column("question", sa.Text),
    sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False, index=True),
)
unanswered = sa.Table(
    "unanswered", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("question", sa.Text, nullable=False), sa.Column("session_id", sa.String(64)),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False, index=True),
)
# An aggregate without text: the staff chart survives the retention purge.
daily_counts = sa.Table(
    "daily_counts", metadata,
    sa.Column("day", sa.String(10), primary_key=True), sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)
messenger_mids = sa.Table(
    "messenger_mids", metadata,
    sa.Column("mid", sa.String(255), primary_key=True), sa.Column("created_at", TS, nullable=False, index=True),
)
messenger_threads = sa.Table(
    "messenger_threads", metadata,
    sa.Column("psid_hash", sa.String(64), primary_key=True), sa.Column("session_id", sa.String(64)),
    sa.Column("last_seen", TS), sa.Column("human_until", TS),
)

# -- Messenger durable queue (issue 14): accepted events, the outbox of replies, staff flags, channel status ------
# Kept in one block so other additions to this module merge cleanly. bot/migrations/versions/0002_messenger_queue.py
# creates exactly these. `payload` and `body` hold the patient's words and PSID only until the event is finished.
messenger_events = sa.Table(
    "messenger_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False, unique=True),
    sa.Column("psid_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # queued | running | done | dropped
    sa.Column("standby", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("payload", sa.Text),
    sa.Column("event_time", TS),
    sa.Column("received_at", TS, nullable=False, index=True),
    sa.Column("next_at", TS, nullable=False),
    sa.Column("lease_until", TS),
    sa.Column("worker", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outcome", sa.String(32)),
    sa.Column("finished_at", TS),
    sa.Index("ix_messenger_events_open", "status", "psid_hash", "id"),
)
messenger_outbox = sa.Table(
    "messenger_outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("messenger_events.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("idem_key", sa.String(64), nullable=False, unique=True),
    sa.Column("body", sa.Text),
    sa.Column("status", sa.String(12), nullable=False),  # pending | sending | sent | failed | expired
    sa.Column("attempted_at", TS),
    sa.Column("message_id", sa.String(255)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("sent_at", TS),
)
messenger_flags = sa.Table(
    "messenger_flags", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("psid_hash", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64)),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False, index=True),
)
messenger_status = sa.Table(
    "messenger_status", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
# -- Staff knowledge (issue 16): FAQ entries and clinic details, every version, the audit log (bot/faq_store.py).
# bot/migrations/versions/0003_staff_knowledge.py creates exactly these.
kb_entries = sa.Table(
    "kb_entries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),  # faq | fact
    sa.Column("slug", sa.String(96), nullable=False, unique=True),
    sa.Column("status", sa.String(12), nullable=False),  # draft | pending | published | unpublished
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("published_version", sa.Integer),
    sa.Column("unanswered_ids", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
kb_versions = sa.Table(
    "kb_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("kb_entries.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("applies_to", sa.Text, nullable=False),  # a JSON list
    sa.Column("author", sa.String(80), nullable=False),
    sa.Column("author_role", sa.String(12), nullable=False, server_default="editor"),  # the token it was saved with
    sa.Column("flags", sa.Text, nullable=False),  # a JSON list of review reasons
    sa.Column("approved_by", sa.String(80)),
    sa.Column("was_published", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("vectors", sa.LargeBinary),  # float32 rows: the question, then each "applies to" phrase
    sa.Column("model", sa.String(64)),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("entry_id", "version", name="uq_kb_versions_entry_version"),
)
kb_revision = sa.Table(  # one row: what workers poll to notice a change to what is live
    "kb_revision", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("n", sa.Integer, nullable=False),
)
kb_audit = sa.Table(
    "kb_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("entry_id", sa.Integer, nullable=False, index=True),
    sa.Column("version", sa.Integer),
    sa.Column("question", sa.Text),
)

OPEN = ("queued", "running")

RECENT_TURNS = 6
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MIGRATE_LOCK = 784512  # pg_advisory_xact_lock key: one migrating worker at a time
_ALEMBIC = threading.Lock()  # alembic keeps its running context in module globals: one migration per process


class StoreUnavailable(Exception):
    """The database could not be reached or refused the operation."""


def now() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (everything stored is UTC); PostgreSQL answers in the session's zone.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def head_revision() -> str:
    """The newest migration's revision id, read from the migration files (the one no other revises)."""
    revisions, parents = set(), set()
    for path in (Path(__file__).with_name("migrations") / "versions").glob("*.py"):
        body = path.read_text(encoding="utf-8")
        rev = re.search(r'^revision = "([^"]+)"', body, re.M)
        down = re.search(r'^down_revision = "([^"]+)"', body, re.M)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.add(down.group(1))
    [head] = revisions - parents
    return head


class Store:
    """Sessions, turns, feedback, unanswered questions, daily counts and Messenger state."""

    def __init__(self, url: str, *, session_idle_minutes: int = 120) -> None:
        parsed = sa.make_url(url)
        if parsed.drivername in ("postgres", "postgresql"):  # psycopg 3 is the driver we ship, not psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")
        self.idle = timedelta(minutes=session_idle_minutes)
        # Parameters are patient text (redacted, still health information): keep them out of errors and logs.
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 5})
        self.engine: Engine = sa.create_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)

    @contextmanager
    def _tx(self, *, write: bool = True, flush: bool = True) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(store_write=write)
                with conn.begin():
                    if not flush and self.dialect == "postgresql":
                        # Conversation turns commit without waiting for the WAL flush: the same promise SQLite's
                        # WAL + synchronous=NORMAL makes (a crash of the database server may lose the last moment
                        # of turns, never consistency), and two fsyncs fewer per reply (12.7 -> 8.8 ms p50 here).
                        # The Messenger queue and staff knowledge keep the full flush.
                        conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database unavailable ({type(exc).__name__})") from exc

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _upsert(self, conn: Connection, table: sa.Table, keys: dict[str, Any], values: dict[str, Any],
                set_: dict[str, Any] | None = None) -> None:
        stmt = self._insert(table).values(**keys, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=set_ or values))

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; serialised when several workers start at once)."""
        if self.at_head():
            return  # the usual restart: one query instead of importing Alembic (half a second of every start)
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")).replace("%", "%%"))
        with _ALEMBIC, self._tx() as conn:  # SQLite: BEGIN IMMEDIATE already serialises migrating workers
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def at_head(self) -> bool:
        """Whether the database already stands at the newest migration in bot/migrations/versions."""
        try:
            with self.engine.connect() as conn:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except SQLAlchemyError:
            return False  # no table yet (a new database): migrate
        return current == [head_revision()]

    def ping(self) -> bool:
        """Whether the database answers (never raises)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    # -- conversations ---------------------------------------------------------------------------------------------
    def open_session(self, session_id: str | None, channel: str) -> Session:
        """The session with its recent turns; an unknown, malformed or expired id starts a new one."""
        if session_id and SESSION_ID.fullmatch(session_id):
            with self._tx(write=False) as conn:
                last = _utc(conn.scalar(select(sessions.c.last_seen).where(sessions.c.id == session_id)))
                if last is not None and now() - last <= self.idle:
                    rows = conn.execute(select(turns.c.role, turns.c.text, turns.c.kind, turns.c.created_at)
                                        .where(turns.c.session_id == session_id)
                                        .order_by(turns.c.id.desc()).limit(RECENT_TURNS)).all()
                    history = [Turn(role=r.role, text=r.text, kind=r.kind, created_at=_utc(r.created_at))
                               for r in reversed(rows)]
                    return Session(id=session_id, turns=history, is_new=False)
        new_id, stamp = secrets.token_urlsafe(24), now()
        with self._tx(flush=False) as conn:
            conn.execute(sessions.insert().values(id=new_id, channel=channel, created_at=stamp, last_seen=stamp))
        return Session(id=new_id, is_new=True)

    def record_exchange(self, session_id: str, channel: str, user_text: str, reply_kind: str, reply_text: str,
                        *, reply_id: str | None = None, unanswered_question: str | None = None) -> str:
        """Store a redacted message and its reply (and any unanswered question) in one transaction; the reply id."""
        reply_id = reply_id or secrets.token_urlsafe(16)
        stamp = now()
        with self._tx(flush=False) as conn:
            # Upsert: the core may start a session without the database (first message, or the DB was down).
            self._upsert(conn, sessions, {"id": session_id}, {"channel": channel, "created_at": stamp,
                                                              "last_seen": stamp}, {"last_seen": stamp})
            conn.execute(turns.insert(), [
                {"session_id": session_id, "role": "user", "text": user_text, "kind": None, "reply_id": None,
                 "created_at": stamp},
                {"session_id": session_id, "role": "bot", "text": reply_text, "kind": reply_kind,
                 "reply_id": reply_id, "created_at": stamp},
            ])
            self._upsert(conn, daily_counts, {"day": stamp.strftime("%Y-%m-%d"), "kind": reply_kind}, {"count": 1},
                         {"count": daily_counts.c.count + 1})
            if unanswered_question is not None:
                conn.execute(unanswered.insert().values(question=unanswered_question, session_id=session_id,
                                                        channel=channel, created_at=stamp))
        return reply_id

    def record_unanswered(self, question: str, session_id: str | None, channel: str) -> None:
        """Remember a (redacted) question the articles could not answer, for staff."""
        with self._tx() as conn:
            conn.execute(unanswered.insert().values(question=question, session_id=session_id, channel=channel,
                                                    created_at=now()))

    def add_feedback(self, reply_id: str, rating: Literal["up", "down"], comment: str | None) -> bool:
        """Attach a rating (and a redacted comment) to a reply; False when the reply is unknown."""
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {rating!r}")
        with self._tx() as conn:
            bot = conn.execute(select(turns.c.id, turns.c.session_id, turns.c.kind, turns.c.text, turns.c.created_at)
                               .where(turns.c.reply_id == reply_id)).first()
            if bot is None:
                return False
            question = conn.scalar(select(turns.c.text)
                                   .where(turns.c.session_id == bot.session_id, turns.c.id < bot.id,
                                          turns.c.role == "user")
                                   .order_by(turns.c.id.desc()).limit(1))
            conn.execute(feedback.insert().values(reply_id=reply_id, rating=rating, comment=comment,
                                                  reply_kind=bot.kind, reply_text=bot.text, question=question,
                                                  # The copy expires with the reply it copies, not 30 days later.
                                                  created_at=_utc(bot.created_at) or now()))
        return True

    # -- staff views -----------------------------------------------------------------------------------------------
    def list_unanswered(self, *, include_handled: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """Unanswered questions, newest first."""
        q = select(unanswered).order_by(unanswered.c.id.desc()).limit(limit)
        if not include_handled:
            q = q.where(unanswered.c.handled.is_(False))
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
        return [{"id": r.id, "question": r.question, "channel": r.channel, "handled": bool(r.handled),
                 "created_at": _iso(r.created_at)} for r in rows]

    def mark_unanswered_handled(self, ids: list[int]) -> int:
        """Mark questions as handled; how many changed."""
        with self._tx() as conn:
            return conn.execute(update(unanswered).where(unanswered.c.id.in_(ids), unanswered.c.handled.is_(False))
                                .values(handled=True)).rowcount

    def list_feedback(self, *, rating: str | None = "down", include_handled: bool = False,
                      limit: int = 200) -> list[dict[str, Any]]:
        """Feedback, newest first (thumbs-down by default; rating=None for all)."""
        q = select(feedback).order_by(feedback.c.id.desc()).limit(limit)
        if rating:
            q = q.where(feedback.c.rating == rating)
        if not include_handled:
            q = q.where(feedback.c.handled.is_(False))
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
        return [{"id": r.id, "rating": r.rating, "comment": r.comment, "reply_kind": r.reply_kind,
                 "reply_text": r.reply_text, "question": r.question, "handled": bool(r.handled),
                 "created_at": _iso(r.created_at)} for r in rows]

    def mark_feedback_handled(self, ids: list[int]) -> int:
        """Mark feedback as handled; how many changed."""
        with self._tx() as conn:
            return conn.execute(update(feedback).where(feedback.c.id.in_(ids), feedback.c.handled.is_(False))
                                .values(handled=True)).rowcount

    def daily_counts(self, days: int = 30) -> list[dict[str, Any]]:
        """Replies per UTC day and kind for the last `days` days, today included (kept through purges)."""
        first = (now() - timedelta(days=days - 1)).strftime("%Y-%m-%d")
        with self._tx(write=False) as conn:
            rows = conn.execute(select(daily_counts).where(daily_counts.c.day >= first)
                                .order_by(daily_counts.c.day, daily_counts.c.kind)).all()
        return [{"date": r.day, "kind": r.kind, "count": r.count} for r in rows]

    def purge(self, retention_days: int) -> dict[str, int]:
        """Delete stored text and Messenger state older than the retention period; the daily counts stay."""
        cutoff = now() - timedelta(days=retention_days)
        threads = messenger_threads.c
        with self._tx() as conn:
            def gone(table: sa.Table, *where: Any) -> int:
                return int(conn.execute(delete(table).where(*where)).rowcount)

            out = {
                "turns": gone(turns, turns.c.created_at < cutoff),
                "unanswered": gone(unanswered, unanswered.c.created_at < cutoff),
                "feedback": gone(feedback, feedback.c.created_at < cutoff),
                "messenger_mids": gone(messenger_mids, messenger_mids.c.created_at < cutoff),
                # A thread only ever put on hold (no last_seen) goes once its hold has lapsed long enough.
                "messenger_threads": gone(messenger_threads, or_(threads.last_seen < cutoff, and_(
                    threads.last_seen.is_(None), or_(threads.human_until.is_(None), threads.human_until < cutoff)))),
            }
            # After the turns: a session idle past retention has no turns left; newer sessions keep theirs.
            out["sessions"] = gone(sessions, sessions.c.last_seen < cutoff)
            out.update(self._purge_messenger_queue(conn, cutoff))
        return out

    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests and the staff console)."""
        with self._tx(write=False) as conn:
            return {t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
                    for t in metadata.sorted_tables}

    # -- Messenger -------------------------------------------------------------------------------------------------
    def claim_message(self, mid: str) -> bool:
        """True the first time a Messenger message id is seen (across restarts and workers), else False."""
        # Ids past the column width are stored hashed rather than failing (a failure means "do not answer").
        key = mid if len(mid) <= 255 else "sha256:" + hashlib.sha256(mid.encode()).hexdigest()
        with self._tx() as conn:
            # The primary key decides: a concurrent duplicate waits for the winner, then inserts nothing.
            # RETURNING, not rowcount: psycopg reports -1 as the rowcount of INSERT ... ON CONFLICT.
            stmt = (self._insert(messenger_mids).values(mid=key, created_at=now()).on_conflict_do_nothing()
                    .returning(messenger_mids.c.mid))
            return conn.execute(stmt).first() is not None

    def thread_state(self, psid_hash: str) -> dict[str, Any]:
        """A Messenger thread's last activity, human hold (UTC) and session id; Nones for a new thread."""
        with self._tx(write=False) as conn:
            row = conn.execute(select(messenger_threads).where(messenger_threads.c.psid_hash == psid_hash)).first()
        if row is None:
            return {"last_seen": None, "human_until": None, "session_id": None}
        return {"last_seen": _utc(row.last_seen), "human_until": _utc(row.human_until), "session_id": row.session_id}

    def touch_thread(self, psid_hash: str, session_id: str | None = None) -> datetime | None:
        """Record activity now (and the session id, if given); the previous activity time."""
        values: dict[str, Any] = {"last_seen": now()}
        if session_id is not None:
            values["session_id"] = session_id
        with self._tx() as conn:
            previous = conn.scalar(select(messenger_threads.c.last_seen)
                                   .where(messenger_threads.c.psid_hash == psid_hash).with_for_update())
            self._upsert(conn, messenger_threads, {"psid_hash": psid_hash}, values)
        return _utc(previous)

    def set_human_until(self, psid_hash: str, until: datetime | None) -> None:
        """Keep the bot silent in this thread until `until` (naive means UTC; None lets the bot answer again)."""
        if until is not None:
            until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        with self._tx() as conn:
            self._upsert(conn, messenger_threads, {"psid_hash": psid_hash}, {"human_until": until})

    # -- Messenger durable queue (issue 14) ---------------------------------------------------------------------------
    # Per-sender order across workers: only a sender's oldest open event (its "head") can be claimed, and a claim is
    # a compare-and-set on that row's status/lease, so two workers never hold one sender at once. A worker that
    # dies leaves its lease to expire; the event is then claimed again and resumes from its outbox.
    def enqueue_events(self, rows: list[dict[str, Any]]) -> int:
        """Persist accepted events (key, psid_hash, payload, event_time, standby, status); how many were new."""
        if not rows:
            return 0
        stamp = now()
        values = [{"status": "queued", "standby": False, "payload": None, "event_time": None, **r,
                   "received_at": stamp, "next_at": stamp, "attempts": 0} for r in rows]
        for v in values:  # an event dropped on arrival (too old) is finished at once, so the purge finds it
            v.setdefault("finished_at", stamp if v["status"] == "dropped" else None)
        new = 0
        with self._tx() as conn:
            for v in values:  # one statement each: RETURNING tells which keys were new (a redelivery is not)
                stmt = (self._insert(messenger_events).values(**v).on_conflict_do_nothing()
                        .returning(messenger_events.c.id))
                new += conn.execute(stmt).first() is not None
        return new

    def claim_event(self, worker: str, lease_seconds: float) -> dict[str, Any] | None:
        """Lease the oldest claimable head event of any sender to `worker`; None when there is nothing to do."""
        e = messenger_events.c
        stamp = now()
        claimable = or_(and_(e.status == "queued", e.next_at <= stamp),
                        and_(e.status == "running", e.lease_until < stamp))
        heads = (select(e.psid_hash, func.min(e.id).label("head")).where(e.status.in_(OPEN))
                 .group_by(e.psid_hash).subquery())
        with self._tx() as conn:
            ids = conn.scalars(select(e.id).join(heads, e.id == heads.c.head).where(claimable)
                               .order_by(e.id).limit(8)).all()
            for event_id in ids:
                row = conn.execute(
                    update(messenger_events).where(e.id == event_id, claimable)
                    .values(status="running", worker=worker, attempts=e.attempts + 1,
                            lease_until=stamp + timedelta(seconds=lease_seconds))
                    .returning(e.id, e.key, e.psid_hash, e.payload, e.standby, e.event_time, e.received_at,
                               e.attempts)).first()
                if row is not None:
                    out = dict(row._mapping)
                    out["event_time"], out["received_at"] = _utc(out["event_time"]), _utc(out["received_at"])
                    return out
        return None

    def renew_lease(self, event_id: int, worker: str, lease_seconds: float) -> bool:
        """Extend a held lease; False when the event is no longer this worker's."""
        e = messenger_events.c
        with self._tx() as conn:
            return conn.execute(update(messenger_events)
                                .where(e.id == event_id, e.worker == worker, e.status == "running")
                                .values(lease_until=now() + timedelta(seconds=lease_seconds))
                                .returning(e.id)).first() is not None

    def release_event(self, event_id: int, worker: str, delay_seconds: float = 0.0) -> bool:
        """Hand a held event back to the queue, to be claimed again after `delay_seconds`."""
        e = messenger_events.c
        with self._tx() as conn:
            return conn.execute(update(messenger_events)
                                .where(e.id == event_id, e.worker == worker, e.status == "running")
                                .values(status="queued", worker=None, lease_until=None,
                                        next_at=now() + timedelta(seconds=delay_seconds))
                                .returning(e.id)).first() is not None

    def finish_event(self, event_id: int, worker: str | None, outcome: str, *, dropped: bool = False) -> bool:
        """Close an event (done, or dropped with a reason); its payload is erased."""
        e = messenger_events.c
        where = [e.id == event_id, e.status.in_(OPEN)]
        if worker is not None:
            where.append(e.worker == worker)
        with self._tx() as conn:
            return conn.execute(update(messenger_events).where(*where)
                                .values(status="dropped" if dropped else "done", outcome=outcome[:32], payload=None,
                                        lease_until=None, finished_at=now())
                                .returning(e.id)).first() is not None

    def drop_stale_events(self, max_age_seconds: float) -> int:
        """Drop open events older than the age limit that have no reply under way; how many."""
        e, o = messenger_events.c, messenger_outbox.c
        cutoff = now() - timedelta(seconds=max_age_seconds)
        stamp = now()
        with self._tx() as conn:
            rows = conn.execute(
                update(messenger_events)
                .where(e.status.in_(OPEN), func.coalesce(e.event_time, e.received_at) < cutoff,
                       or_(e.status == "queued", e.lease_until < stamp),
                       ~select(o.id).where(o.event_id == e.id).exists())
                .values(status="dropped", outcome="too_old", payload=None, lease_until=None, finished_at=stamp)
                .returning(e.id)).all()
        return len(rows)

    def add_outbox(self, event_id: int, messages: list[tuple[str, str]]) -> None:
        """Store an event's outgoing messages (idempotency key, JSON body) in send order; existing keys stay."""
        stamp = now()
        with self._tx() as conn:
            seq = int(conn.scalar(select(func.coalesce(func.max(messenger_outbox.c.seq), -1))
                                  .where(messenger_outbox.c.event_id == event_id)) or 0)
            for key, body in messages:
                seq += 1
                conn.execute(self._insert(messenger_outbox).values(
                    event_id=event_id, seq=seq, idem_key=key, body=body, status="pending", created_at=stamp)
                    .on_conflict_do_nothing())

    def outbox_rows(self, event_id: int) -> list[dict[str, Any]]:
        """An event's outgoing messages in send order."""
        o = messenger_outbox.c
        with self._tx(write=False) as conn:
            rows = conn.execute(select(o.idem_key, o.seq, o.body, o.status, o.attempted_at, o.message_id)
                                .where(o.event_id == event_id).order_by(o.seq)).all()
        return [{**r._mapping, "attempted_at": _utc(r.attempted_at)} for r in rows]

    def outbox_mark(self, idem_key: str, status: str, message_id: str | None = None) -> bool:
        """Move an outgoing message to `status` (a sent one is never moved back; its body is erased)."""
        o = messenger_outbox.c
        values: dict[str, Any] = {"status": status}
        if status == "sending":
            values["attempted_at"] = now()
        if status in ("sent", "failed", "expired"):
            values.update(body=None, sent_at=now() if status == "sent" else None)
        if message_id is not None:
            values["message_id"] = message_id[:255]
        with self._tx() as conn:
            return conn.execute(update(messenger_outbox).where(o.idem_key == idem_key, o.status != "sent")
                                .values(**values).returning(o.id)).first() is not None

    def outbox_confirm(self, idem_key: str, message_id: str | None) -> bool:
        """Meta echoed a message the bot sent: it was delivered, whatever the sender heard back (its event is due)."""
        if not self.outbox_mark(idem_key, "sent", message_id):
            return False
        e = messenger_events.c
        with self._tx() as conn:
            conn.execute(update(messenger_events).where(e.status == "queued", e.id.in_(
                select(messenger_outbox.c.event_id).where(messenger_outbox.c.idem_key == idem_key)))
                .values(next_at=now()))
        return True

    def queue_stats(self) -> dict[str, int]:
        """Open and finished events by status, and outgoing messages not yet sent."""
        e, o = messenger_events.c, messenger_outbox.c
        with self._tx(write=False) as conn:
            out = {str(r[0]): int(r[1]) for r in conn.execute(select(e.status, func.count()).group_by(e.status))}
            out["outbox_unsent"] = int(conn.scalar(select(func.count()).where(o.status.in_(("pending", "sending"))))
                                       or 0)
        return out

    def add_flag(self, psid_hash: str, reason: str, session_id: str | None = None) -> None:
        """Flag a Messenger conversation for staff (an emergency while a person held it, a failed handover...)."""
        with self._tx() as conn:
            conn.execute(messenger_flags.insert().values(psid_hash=psid_hash, reason=reason[:32],
                                                         session_id=session_id, created_at=now()))

    def list_flags(self, *, include_handled: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """Flagged Messenger conversations, newest first."""
        f = messenger_flags.c
        q = select(messenger_flags).order_by(f.id.desc()).limit(limit)
        if not include_handled:
            q = q.where(f.handled.is_(False))
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
        return [{"id": r.id, "psid_hash": r.psid_hash, "session_id": r.session_id, "reason": r.reason,
                 "handled": bool(r.handled), "created_at": _iso(r.created_at)} for r in rows]

    def mark_flags_handled(self, ids: list[int]) -> int:
        """Mark flags as handled; how many changed."""
        f = messenger_flags.c
        with self._tx() as conn:
            return conn.execute(update(messenger_flags).where(f.id.in_(ids), f.handled.is_(False))
                                .values(handled=True)).rowcount

    def set_status(self, key: str, value: str | None) -> None:
        """Set (or clear, with None) a channel status shared by every worker, e.g. token_expired."""
        with self._tx() as conn:
            if value is None:
                conn.execute(delete(messenger_status).where(messenger_status.c.key == key))
            else:
                self._upsert(conn, messenger_status, {"key": key}, {"value": value[:255], "updated_at": now()})

    def get_status(self) -> dict[str, str]:
        """Every channel status that is set."""
        with self._tx(write=False) as conn:
            return {r.key: r.value for r in conn.execute(select(messenger_status)).all()}

    def _purge_messenger_queue(self, conn: Connection, cutoff: datetime) -> dict[str, int]:
        e = messenger_events.c
        closed = conn.execute(delete(messenger_outbox).where(messenger_outbox.c.event_id.in_(
            select(e.id).where(e.status.in_(("done", "dropped")), e.finished_at < cutoff)))).rowcount
        return {"messenger_outbox": int(closed),
                "messenger_events": int(conn.execute(delete(messenger_events).where(
                    e.status.in_(("done", "dropped")), e.finished_at < cutoff)).rowcount),
                "messenger_flags": int(conn.execute(delete(messenger_flags).where(
                    messenger_flags.c.created_at < cutoff)).rowcount)}

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def forget_session(self, session_id: str) -> bool:
        """Delete a conversation now (the patient cleared it): its session row and turns; True when it existed."""
        if not SESSION_ID.fullmatch(session_id):
            return False
        with self._tx() as conn:
            conn.execute(delete(turns).where(turns.c.session_id == session_id))
            conn.execute(update(unanswered).where(unanswered.c.session_id == session_id).values(session_id=None))
            return bool(conn.execute(delete(sessions).where(sessions.c.id == session_id)).rowcount)


def _iso(value: datetime | None) -> str | None:
    stamp = _utc(value)
    return stamp.isoformat() if stamp else None


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module (Python 3.11 skips it for DDL and SELECT): see _sqlite_begin.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=15000")  # wait for another worker's write instead of failing at once
    # WAL lets readers and one writer work at once; NORMAL sync is durable across process crashes in WAL.
    # WAL persists in the file, but switching a fresh file while another worker does the same is refused at
    # once ("database is locked": the busy timeout does not apply), so retry briefly.
    for attempt in range(50):
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then writes can fail with
    # SQLITE_BUSY at once (busy_timeout does not apply to upgrading a stale read snapshot).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("store_write") else "BEGIN")
