"""Staff-written knowledge in the database: FAQ entries and clinic details, every version kept, and an audit log.

The database is the source of truth: the live FAQ index (bot/faq.py) is rebuilt from the published versions
here, so a crash between storing and indexing loses nothing. Staff text is clinic content, not patient text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.store import Store, _iso, kb_audit, kb_entries, kb_revision, kb_versions, now

# Statuses in which the published version answers patients: "pending" means a newer version waits for review
# while the approved one stays live (withdrawing it would take a checked answer away from patients meanwhile).
LIVE = ("published", "pending")
# Clinic details' keys (bot/faq.py DETAILS) are their public slugs: an FAQ entry never takes one.
RESERVED = frozenset({"hours", "location", "parking", "wear_bring", "cancellation", "insurance", "price", "payment",
                      "first_visit", "duration"})


class Conflict(Exception):
    """The change was based on a version that is no longer the latest, or is not allowed in this state."""


class NotFound(Exception):
    """No such entry or version."""


@dataclass
class Content:
    """What staff write: the question, the answer and the other phrasings it applies to."""

    question: str
    answer: str
    applies_to: list[str] = field(default_factory=list)


@dataclass
class Published:
    """A published version, as the live index needs it."""

    entry_id: int
    kind: str
    slug: str
    version_id: int
    content: Content
    vectors: np.ndarray | None
    model: str | None
    fact: str | None = None  # the understanding layer's clinic-fact label of the question, once labelled


def slugify(text: str) -> str:
    """A URL slug from a question ("How long is a session?" -> "how-long-is-a-session")."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_)[:76].strip("-") or "entry"  # room for "-999" within 80


class KnowledgeStore:
    """Versioned FAQ entries and clinic details on the service's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Connection]:
        with self.store._tx(write=write) as conn:
            yield conn

    # -- writing -----------------------------------------------------------------------------------------------
    def create(self, kind: str, content: Content, author: str, flags: list[str], *, slug: str | None = None,
               unanswered_ids: list[int] | None = None, author_role: str = "editor") -> int:
        """A new entry with its first version, as a draft; its id."""
        stamp = now()
        with self._tx() as conn:
            base = slug or slugify(content.question)
            if kind == "faq" and base in RESERVED:  # a clinic detail's public URL is its key: never an FAQ's
                base = f"{base}-faq"
            slug = base
            for n in range(2, 1000):  # the same question twice gets "-2": slugs are public URLs, never reused
                if conn.scalar(select(kb_entries.c.id).where(kb_entries.c.slug == slug)) is None:
                    break
                slug = f"{base}-{n}"
            try:
                key: Any = conn.execute(kb_entries.insert().values(
                    kind=kind, slug=slug, status="draft", latest_version=1, published_version=None,
                    unanswered_ids=json.dumps(unanswered_ids or []), created_at=stamp, updated_at=stamp,
                )).inserted_primary_key
                entry_id = int(key[0])
            except IntegrityError as exc:  # a concurrent create took the slug: the caller may retry
                raise Conflict(f"an entry {slug!r} was just created by someone else") from exc
            self._add_version(conn, entry_id, 1, content, author, flags, author_role)
            self._audit(conn, author, "create", entry_id, 1, content.question)
        return int(entry_id)

    def save(self, entry_id: int, base_version: int, content: Content, author: str, flags: list[str],
             author_role: str = "editor") -> int:
        """A new version of an entry, based on `base_version`; Conflict when someone saved in between."""
        with self._tx() as conn:
            row = self._entry_row(conn, entry_id)
            if row.latest_version != base_version:
                raise Conflict(f"version {base_version} is not the latest any more (it is {row.latest_version}): "
                               "someone else saved this entry; reload it to see their change")
            version = base_version + 1
            live = row.status in LIVE and row.published_version is not None
            # The compare-and-set: a second writer with the same base updates nothing and is refused.
            done = conn.execute(update(kb_entries).where(kb_entries.c.id == entry_id,
                                                         kb_entries.c.latest_version == base_version)
                                .values(latest_version=version, updated_at=now(),
                                        # A live entry stays live (its approved version) while the new text is a
                                        # draft on top; otherwise the entry is a draft again.
                                        status="published" if live else "draft")).rowcount
            if not done:
                raise Conflict("someone else saved this entry at the same moment; reload it")
            self._add_version(conn, entry_id, version, content, author, flags, author_role)
            self._audit(conn, author, "save", entry_id, version, content.question)
        return version

    def set_state(self, entry_id: int, actor: str, action: str, *, version: int, status: str,
                  approved_by: str | None = None) -> None:
        """Move an entry to `status` (publishing `version` when published) and write the audit line; Conflict when
        `version` is no longer the latest (someone saved new text after it was checked: that text was not)."""
        with self._tx() as conn:
            row = self._entry_row(conn, entry_id)
            if row.latest_version != version:
                raise Conflict(f"version {version} is not the latest any more (it is {row.latest_version}): "
                               "someone saved a change meanwhile; reload and check it")
            values: dict[str, Any] = {"status": status, "updated_at": now()}
            if status == "published":
                values["published_version"] = version
                conn.execute(update(kb_versions).where(kb_versions.c.entry_id == entry_id,
                                                       kb_versions.c.version == version)
                             .values(was_published=True, **({"approved_by": approved_by} if approved_by else {})))
            elif status == "unpublished":
                values["published_version"] = None
            done = conn.execute(update(kb_entries).where(kb_entries.c.id == entry_id,
                                                         kb_entries.c.latest_version == version).values(**values))
            if not done.rowcount:
                raise Conflict("someone saved a change at the same moment; reload and check it")
            self._bump(conn)
            question = conn.scalar(select(kb_versions.c.question).where(kb_versions.c.entry_id == entry_id,
                                                                        kb_versions.c.version == version))
            self._audit(conn, actor, action, entry_id, version, question)

    def set_vectors(self, version_id: int, vectors: np.ndarray | None, model: str) -> None:
        """Store a version's embedding (done once, by whichever worker sees it first)."""
        with self._tx() as conn:
            conn.execute(update(kb_versions).where(kb_versions.c.id == version_id)
                         .values(vectors=np.asarray(vectors, dtype=np.float32).tobytes(), model=model))

    def _add_version(self, conn: Connection, entry_id: int, version: int, content: Content, author: str,
                     flags: list[str], author_role: str) -> None:
        conn.execute(kb_versions.insert().values(
            entry_id=entry_id, version=version, question=content.question, answer=content.answer,
            applies_to=json.dumps(content.applies_to), author=author, author_role=author_role,
            flags=json.dumps(flags), created_at=now()))

    def _bump(self, conn: Connection) -> None:
        # One counter row, updated in the transaction that changes what is live: the row lock orders these commits,
        # so a worker that saw revision N has seen every change before it (audit ids are not in commit order).
        if not conn.execute(update(kb_revision).where(kb_revision.c.id == 1)
                            .values(n=kb_revision.c.n + 1)).rowcount:
            conn.execute(kb_revision.insert().values(id=1, n=1))

    def _audit(self, conn: Connection, actor: str, action: str, entry_id: int, version: int | None,
               question: str | None) -> None:
        conn.execute(kb_audit.insert().values(at=now(), actor=actor, action=action, entry_id=entry_id,
                                              version=version, question=question))

    # -- reading -----------------------------------------------------------------------------------------------
    def _entry_row(self, conn: Connection, entry_id: int) -> Any:
        row = conn.execute(select(kb_entries).where(kb_entries.c.id == entry_id)).first()
        if row is None:
            raise NotFound(f"no entry {entry_id}")
        return row

    def revision(self) -> int:
        """A number that grows with every publish, unpublish, approval and rollback (what workers poll)."""
        with self._tx(write=False) as conn:
            return int(conn.scalar(select(kb_revision.c.n).where(kb_revision.c.id == 1)) or 0)

    def entry(self, entry_id: int, *, with_versions: bool = False) -> dict[str, Any]:
        """One entry with its latest version's content (and every version, newest first)."""
        with self._tx(write=False) as conn:
            row = self._entry_row(conn, entry_id)
            versions = conn.execute(select(kb_versions).where(kb_versions.c.entry_id == entry_id)
                                    .order_by(kb_versions.c.version.desc())).all()
        return _entry_dict(row, versions[0], list(versions) if with_versions else None)

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every entry with its latest version, newest change first."""
        q = select(kb_entries).order_by(kb_entries.c.updated_at.desc(), kb_entries.c.id.desc())
        if kind:
            q = q.where(kb_entries.c.kind == kind)
        latest = select(kb_versions).join(kb_entries, sa.and_(kb_versions.c.entry_id == kb_entries.c.id,
                                                               kb_versions.c.version == kb_entries.c.latest_version))
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
            versions = {v.entry_id: v for v in conn.execute(latest).all()}
        return [_entry_dict(r, versions[r.id], None) for r in rows if r.id in versions]

    def version(self, entry_id: int, version: int) -> dict[str, Any]:
        """One version of an entry."""
        with self._tx(write=False) as conn:
            row = conn.execute(select(kb_versions).where(kb_versions.c.entry_id == entry_id,
                                                         kb_versions.c.version == version)).first()
        if row is None:
            raise NotFound(f"entry {entry_id} has no version {version}")
        return _version_dict(row)

    def published(self) -> list[Published]:
        """Every published version, with its stored vectors when it has been embedded."""
        q = (select(kb_versions, kb_entries.c.kind, kb_entries.c.slug)
             .join(kb_entries, sa.and_(kb_versions.c.entry_id == kb_entries.c.id,
                                       kb_versions.c.version == kb_entries.c.published_version))
             .where(kb_entries.c.status.in_(LIVE)).order_by(kb_entries.c.id))
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
        out = []
        for r in rows:
            content = Content(r.question, r.answer, json.loads(r.applies_to))
            vecs = None
            if r.vectors is not None:  # one row for the question, one per "applies to" phrase
                vecs = np.frombuffer(r.vectors, dtype=np.float32).reshape(1 + len(content.applies_to), -1)
            out.append(Published(int(r.entry_id), r.kind, r.slug, int(r.id), content, vecs, r.model))
        return out

    def audit(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The audit log, newest first."""
        with self._tx(write=False) as conn:
            rows = conn.execute(select(kb_audit).order_by(kb_audit.c.id.desc()).limit(limit)).all()
        return [{"id": r.id, "at": _iso(r.at), "actor": r.actor, "action": r.action, "entry_id": r.entry_id,
                 "version": r.version, "question": r.question} for r in rows]

    def by_slug(self, slug: str) -> dict[str, Any] | None:
        """The published version of an entry, by its public slug (None when unknown or not published)."""
        with self._tx(write=False) as conn:
            row = conn.execute(select(kb_entries).where(kb_entries.c.slug == slug, kb_entries.c.status.in_(LIVE),
                                                        kb_entries.c.published_version.isnot(None))).first()
            if row is None:
                return None
            ver = conn.execute(select(kb_versions).where(kb_versions.c.entry_id == row.id,
                                                         kb_versions.c.version == row.published_version)).first()
        return _entry_dict(row, ver, None)


def _version_dict(v: Any) -> dict[str, Any]:
    m = v._mapping
    return {"version": m["version"], "question": m["question"], "answer": m["answer"],
            "applies_to": json.loads(m["applies_to"]), "author": m["author"], "created_at": _iso(m["created_at"]),
            "flags": json.loads(m["flags"]), "approved_by": m["approved_by"], "was_published": bool(m["was_published"]),
            "author_role": m["author_role"]}


def _entry_dict(row: Any, latest: Any, versions: list[Any] | None) -> dict[str, Any]:
    m = row._mapping
    out = {"id": m[kb_entries.c.id], "kind": m["kind"], "slug": m["slug"], "status": m["status"],
           "version": m["latest_version"], "published_version": m["published_version"],
           "updated_at": _iso(m["updated_at"]), "url": f"/articles/faq/{m['slug']}",
           "unanswered_ids": json.loads(m["unanswered_ids"] or "[]")}
    lv = _version_dict(latest)
    out.update({k: lv[k] for k in ("question", "answer", "applies_to", "author", "author_role", "flags")})
    if versions is not None:
        out["versions"] = [_version_dict(v) for v in versions]
    return out
