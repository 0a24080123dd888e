"""The database (SQLAlchemy; SQLite by default, PostgreSQL when DATABASE_URL says so), migrated by Alembic.

Everything stored here is already redacted by the caller: the store never sees raw patient text.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.types import Session, Turn

metadata = MetaData()
TS = DateTime(timezone=True)
sessions = Table("sessions", metadata, Column("id", String(64), primary_key=True),
                 Column("channel", String(16), nullable=False), Column("created_at", TS, nullable=False),
                 Column("last_seen", TS, nullable=False, index=True))
turns = Table("turns", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
              Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False,
                     index=True),
              Column("role", String(8), nullable=False), Column("text", Text, nullable=False),
              Column("kind", String(16)), Column("reply_id", String(32), unique=True),
              Column("created_at", TS, nullable=False, index=True))
feedback = Table("feedback", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("reply_id", String(32), nullable=False, index=True),
                 Column("rating", String(4), nullable=False),
                 Column("comment", Text), Column("reply_kind", String(16)), Column("reply_text", Text),
                 Column("question", Text), Column("handled", Boolean, nullable=False, server_default=false()),
                 Column("created_at", TS, nullable=False, index=True))
unanswered = Table("unanswered", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
                   Column("question", Text, nullable=False), Column("session_id", String(64)),
                   Column("channel", String(16), nullable=False),
                   Column("handled", Boolean, nullable=False, server_default=false()),
                   Column("created_at", TS, nullable=False, index=True))
daily_counts = Table("daily_counts", metadata, Column("day", String(10), primary_key=True),
                     Column("kind", String(16), primary_key=True), Column("count", Integer, nullable=False))
messenger_mids = Table("messenger_mids", metadata, Column("mid", String(255), primary_key=True),
                       Column("created_at", TS, nullable=False, index=True))
messenger_threads = Table("messenger_threads", metadata, Column("psid_hash", String(64), primary_key=True),
                          Column("session_id", String(64)), Column("last_seen", TS), Column("human_until", TS))

RECENT_TURNS = 6


class StoreUnavailable(Exception):
    """The database could not be reached or refused the operation."""


def now() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Store:
    """Sessions, turns, feedback, unanswered questions, daily counts and Messenger state."""

    def __init__(self, url: str, *, session_idle_minutes: int = 120) -> None:
        self.url = url
        self.idle = timedelta(minutes=session_idle_minutes)
        sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": not sqlite}
        if sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
        else:
            kwargs["connect_args"] = {"connect_timeout": 3}
        self.engine: Engine = create_engine(url, **kwargs)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; serialised across workers on PostgreSQL)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(784512)"))  # several workers start at once
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ping(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    # -- conversations -------------------------------------------------------------------------------
    def open_session(self, session_id: str | None, channel: str) -> Session:
        """The session with its recent turns; an unknown, malformed or expired id starts a new one."""
        with self._tx() as conn:
            if session_id and len(session_id) <= 64:
                row = conn.execute(select(sessions.c.last_seen).where(sessions.c.id == session_id)).first()
                last = _aware(row[0]) if row else None
                if last is not None and now() - last <= self.idle:
                    rows = conn.execute(select(turns.c.role, turns.c.text, turns.c.kind, turns.c.created_at)
                                        .where(turns.c.session_id == session_id)
                                        .order_by(turns.c.id.desc()).limit(RECENT_TURNS)).all()
                    history = [Turn(role=r.role, text=r.text, kind=r.kind, created_at=_aware(r.created_at))
                               for r in reversed(rows)]
                    return Session(id=session_id, turns=history, is_new=False)
            new_id = secrets.token_urlsafe(24)
            stamp = now()
            conn.execute(insert(sessions).values(id=new_id, channel=channel, created_at=stamp, last_seen=stamp))
            return Session(id=new_id, is_new=True)

    def record_exchange(self, session_id: str, channel: str, user_text: str, reply_kind: str, reply_text: str,
                        *, reply_id: str | None = None, unanswered_question: str | None = None) -> str:
        """Store a patient message, the reply (both redacted) and any unanswered question in one transaction."""
        reply_id = reply_id or secrets.token_urlsafe(16)
        stamp = now()
        with self._tx() as conn:
            found = conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen=stamp))
            if found.rowcount == 0:  # a session opened while the database was down
                conn.execute(insert(sessions).values(id=session_id, channel=channel, created_at=stamp,
                                                     last_seen=stamp))
            conn.execute(insert(turns), [
                {"session_id": session_id, "role": "user", "text": user_text, "kind": None, "reply_id": None,
                 "created_at": stamp},
                {"session_id": session_id, "role": "bot", "text": reply_text, "kind": reply_kind,
                 "reply_id": reply_id, "created_at": stamp},
            ])
            self._bump(conn, stamp.strftime("%Y-%m-%d"), reply_kind)
            if unanswered_question is not None:
                conn.execute(insert(unanswered).values(question=unanswered_question, session_id=session_id,
                                                       channel=channel, created_at=stamp))
        return reply_id

    @staticmethod
    def _bump(conn: Connection, day: str, kind: str) -> None:
        values = {"day": day, "kind": kind, "count": 1}
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        stmt = upsert(daily_counts).values(**values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["day", "kind"],
                                                set_={"count": daily_counts.c.count + 1}))

    def record_unanswered(self, question: str, session_id: str | None, channel: str) -> None:
        """Remember a question the articles could not answer (redacted), for staff."""
        with self._tx() as conn:
            conn.execute(insert(unanswered).values(question=question, session_id=session_id, channel=channel,
                                                   created_at=now()))

    def add_feedback(self, reply_id: str, rating: Literal["up", "down"], comment: str | None) -> bool:
        """Attach a rating to a reply; False when the reply is unknown."""
        with self._tx() as conn:
            bot = conn.execute(select(turns.c.id, turns.c.session_id, turns.c.kind, turns.c.text)
                               .where(turns.c.reply_id == reply_id)).first()
            if bot is None:
                return False
            question = conn.execute(select(turns.c.text).where(turns.c.session_id == bot.session_id,
                                                               turns.c.id < bot.id, turns.c.role == "user")
                                    .order_by(turns.c.id.desc()).limit(1)).scalar()
            conn.execute(insert(feedback).values(reply_id=reply_id, rating=rating, comment=comment,
                                                 reply_kind=bot.kind, reply_text=bot.text, question=question,
                                                 created_at=now()))
        return True

    # -- staff views ---------------------------------------------------------------------------------
    def list_unanswered(self, *, include_handled: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """Unanswered questions, newest first."""
        q = select(unanswered).order_by(unanswered.c.id.desc()).limit(limit)
        if not include_handled:
            q = q.where(unanswered.c.handled.is_(False))
        with self._tx() as conn:
            return [{"id": r.id, "question": r.question, "channel": r.channel, "handled": r.handled,
                     "created_at": _aware(r.created_at).isoformat()} for r in conn.execute(q)]  # type: ignore[union-attr]

    def mark_unanswered_handled(self, ids: list[int]) -> int:
        """Mark questions as handled; returns how many changed."""
        with self._tx() as conn:
            return conn.execute(update(unanswered).where(unanswered.c.id.in_(ids)).values(handled=True)).rowcount

    def list_feedback(self, *, rating: str | None = "down", include_handled: bool = False,
                      limit: int = 200) -> list[dict[str, Any]]:
        """Feedback, newest first (thumbs-down by default)."""
        q = select(feedback).order_by(feedback.c.id.desc()).limit(limit)
        if rating:
            q = q.where(feedback.c.rating == rating)
        if not include_handled:
            q = q.where(feedback.c.handled.is_(False))
        with self._tx() as conn:
            return [{"id": r.id, "rating": r.rating, "comment": r.comment, "reply_kind": r.reply_kind,
                     "reply_text": r.reply_text, "question": r.question, "handled": r.handled,
                     "created_at": _aware(r.created_at).isoformat()} for r in conn.execute(q)]  # type: ignore[union-attr]

    def mark_feedback_handled(self, ids: list[int]) -> int:
        """Mark feedback as handled; returns how many changed."""
        with self._tx() as conn:
            return conn.execute(update(feedback).where(feedback.c.id.in_(ids)).values(handled=True)).rowcount

    def daily_counts(self, days: int = 30) -> list[dict[str, Any]]:
        """Replies per day and kind for the last `days` days (kept through retention purges)."""
        first = (now() - timedelta(days=days - 1)).strftime("%Y-%m-%d")
        with self._tx() as conn:
            rows = conn.execute(select(daily_counts).where(daily_counts.c.day >= first)
                                .order_by(daily_counts.c.day, daily_counts.c.kind))
            return [{"date": r.day, "kind": r.kind, "count": r.count} for r in rows]

    def purge(self, retention_days: int) -> dict[str, int]:
        """Delete stored text older than the retention period; the daily counts stay."""
        cutoff = now() - timedelta(days=retention_days)
        with self._tx() as conn:
            out = {
                "turns": conn.execute(delete(turns).where(turns.c.created_at < cutoff)).rowcount,
                "unanswered": conn.execute(delete(unanswered).where(unanswered.c.created_at < cutoff)).rowcount,
                "feedback": conn.execute(delete(feedback).where(feedback.c.created_at < cutoff)).rowcount,
                "messenger_mids": conn.execute(delete(messenger_mids)
                                               .where(messenger_mids.c.created_at < cutoff)).rowcount,
                "messenger_threads": conn.execute(delete(messenger_threads)
                                                  .where(messenger_threads.c.last_seen < cutoff)).rowcount,
            }
            out["sessions"] = conn.execute(delete(sessions).where(sessions.c.last_seen < cutoff)).rowcount
        return out

    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests and the staff console)."""
        with self._tx() as conn:
            return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                    for t in (sessions, turns, feedback, unanswered, messenger_mids)}

    # -- Messenger -----------------------------------------------------------------------------------
    def claim_message(self, mid: str) -> bool:
        """True the first time a Messenger message id is seen (across restarts and workers), else False."""
        try:
            with self._tx() as conn:
                conn.execute(insert(messenger_mids).values(mid=mid, created_at=now()))
            return True
        except IntegrityError:
            return False

    def thread_state(self, psid_hash: str) -> dict[str, Any]:
        """A Messenger thread's last activity, human hold and session id."""
        with self._tx() as conn:
            row = conn.execute(select(messenger_threads).where(messenger_threads.c.psid_hash == psid_hash)).first()
        if row is None:
            return {"last_seen": None, "human_until": None, "session_id": None}
        return {"last_seen": _aware(row.last_seen), "human_until": _aware(row.human_until),
                "session_id": row.session_id}

    def _upsert_thread(self, psid_hash: str, **values: Any) -> None:
        with self._tx() as conn:
            changed = conn.execute(update(messenger_threads).where(messenger_threads.c.psid_hash == psid_hash)
                                   .values(**values)).rowcount
            if not changed:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(messenger_threads).values(psid_hash=psid_hash, **values))
                except IntegrityError:  # another worker inserted it first
                    conn.execute(update(messenger_threads).where(messenger_threads.c.psid_hash == psid_hash)
                                 .values(**values))

    def touch_thread(self, psid_hash: str, session_id: str | None = None) -> datetime | None:
        """Record activity now (and the session id); returns the previous activity time."""
        previous = self.thread_state(psid_hash)["last_seen"]
        values: dict[str, Any] = {"last_seen": now()}
        if session_id is not None:
            values["session_id"] = session_id
        self._upsert_thread(psid_hash, **values)
        return previous

    def set_human_until(self, psid_hash: str, until: datetime | None) -> None:
        """Keep the bot silent for this thread until `until` (None: the bot may answer again)."""
        self._upsert_thread(psid_hash, human_until=until)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers and one writer work at once; NORMAL sync is durable across process crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()
