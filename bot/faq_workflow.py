"""The staff answer workflow: draft, review, publish, approve, roll back; clinic details; Markdown export and import.

One place decides who may publish what, for the console's routes and the CLI alike: an entry the safety review
flags (a medical claim, or a price, hour or insurance fact) waits for a reviewer other than its author.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frontmatter

from bot.faq import DETAILS, review, validate
from bot.faq_store import Conflict, Content, KnowledgeStore, NotFound

__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "Workflow"]


class Forbidden(Exception):
    """This role may not do that (an editor approving)."""


class Invalid(Exception):
    """The entry's text is not acceptable (empty, too long)."""


class Workflow:
    """Staff actions on entries, each checked, audited and reported back as the entry's new state."""

    def __init__(self, knowledge: KnowledgeStore) -> None:
        self.knowledge = knowledge

    def create(self, content: Content, author: str, *, unanswered_ids: list[int] | None = None,
               role: str = "editor") -> dict[str, Any]:
        """Save a new entry as a draft."""
        _check(content)
        entry_id = self.knowledge.create("faq", content, author, review(content), unanswered_ids=unanswered_ids,
                                         author_role=role)
        return self.knowledge.entry(entry_id)

    def save(self, entry_id: int, base_version: int, content: Content, author: str,
             role: str = "editor") -> dict[str, Any]:
        """Save a new version on top of `base_version` (Conflict when someone saved in between)."""
        _check(content)
        current = self.knowledge.entry(entry_id)
        detail = current["slug"] if current["kind"] == "fact" else None
        self.knowledge.save(entry_id, base_version, content, author, review(content, detail=detail), role)
        return self.knowledge.entry(entry_id)

    def publish(self, entry_id: int, actor: str, role: str) -> dict[str, Any]:
        """Publish the latest version: at once when unflagged (or a second person approves it as they publish),
        otherwise it waits for a reviewer's approval (the approved version, if any, stays live meanwhile)."""
        entry = self.knowledge.entry(entry_id)
        if entry["status"] == "published" and entry["published_version"] == entry["version"]:
            return entry
        if entry["flags"] and _second_person(entry, actor, role) is not None:
            if entry["status"] != "pending":
                self.knowledge.set_state(entry_id, actor, "submit", version=entry["version"], status="pending")
        else:
            self.knowledge.set_state(entry_id, actor, "publish", version=entry["version"], status="published",
                                     approved_by=actor if entry["flags"] else None)
        return self.knowledge.entry(entry_id)

    def approve(self, entry_id: int, actor: str, role: str) -> dict[str, Any]:
        """A reviewer approves the flagged version waiting for review; never one they wrote themselves."""
        if role != "reviewer":
            raise Forbidden("only a reviewer can approve")
        entry = self.knowledge.entry(entry_id)
        if entry["status"] != "pending":
            raise Conflict(f"this entry is {entry['status']}, not waiting for review")
        why = _second_person(entry, actor, role)
        if why is not None:
            raise Conflict(why)
        # The version the reviewer was shown: a save after it was read makes this a 409, never an unread approval.
        self.knowledge.set_state(entry_id, actor, "approve", version=entry["version"], status="published",
                                 approved_by=actor)
        return self.knowledge.entry(entry_id)

    def unpublish(self, entry_id: int, actor: str) -> dict[str, Any]:
        """Withdraw an entry: patients stop getting it (its versions stay in the history)."""
        entry = self.knowledge.entry(entry_id)
        if entry["status"] != "unpublished":
            self.knowledge.set_state(entry_id, actor, "unpublish", version=entry["version"], status="unpublished")
        return self.knowledge.entry(entry_id)

    def rollback(self, entry_id: int, version: int, actor: str, role: str) -> dict[str, Any]:
        """A new version with an old one's content: live at once if that version was once published (it passed
        review then), otherwise through review like any change."""
        old = self.knowledge.version(entry_id, version)
        entry = self.knowledge.entry(entry_id)
        content = Content(old["question"], old["answer"], old["applies_to"])
        detail = entry["slug"] if entry["kind"] == "fact" else None
        new = self.knowledge.save(entry_id, entry["version"], content, actor, review(content, detail=detail), role)
        if old["was_published"]:
            self.knowledge.set_state(entry_id, actor, "rollback", version=new, status="published",
                                     approved_by=old["approved_by"])
            return self.knowledge.entry(entry_id)
        return self.publish(entry_id, actor, role)

    def diff(self, entry_id: int, a: int, b: int) -> dict[str, Any]:
        """What changed between two versions: a unified diff, and word-level changes for the console."""
        va, vb = self.knowledge.version(entry_id, a), self.knowledge.version(entry_id, b)
        ta, tb = _as_text(va), _as_text(vb)
        unified = "\n".join(difflib.unified_diff(ta.splitlines(), tb.splitlines(), f"version {a}", f"version {b}",
                                                 lineterm=""))
        wa, wb = re.findall(r"\S+|\s+", ta), re.findall(r"\S+|\s+", tb)
        changes: list[dict[str, str]] = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
            if op in ("equal", "delete", "replace") and i2 > i1:
                changes.append({"op": "equal" if op == "equal" else "delete", "text": "".join(wa[i1:i2])})
            if op in ("insert", "replace") and j2 > j1:
                changes.append({"op": "insert", "text": "".join(wb[j1:j2])})
        return {"a": a, "b": b, "diff": unified, "changes": changes}

    # -- clinic details ------------------------------------------------------------------------------------------
    def details(self) -> list[dict[str, Any]]:
        """Every clinic detail the form offers, with what the clinic has said (or null)."""
        have = {e["slug"]: e for e in self.knowledge.entries("fact")}
        out = []
        for key, (label, _question) in DETAILS.items():
            e = have.get(key)
            live = e is not None and e["status"] != "unpublished"
            out.append({"key": key, "label": label, "value": e["answer"] if e and live else None,
                        "status": e["status"] if e else None, "entry_id": e["id"] if e else None,
                        "version": e["version"] if e else None, "flags": e["flags"] if e else []})
        return out

    def set_detail(self, key: str, value: str, author: str, base_version: int | None, role: str) -> dict[str, Any]:
        """Save a clinic detail and publish it (through review when flagged); an empty value withdraws it."""
        if key not in DETAILS:
            raise NotFound(f"no clinic detail {key!r}; use one of {', '.join(DETAILS)}")
        question = DETAILS[key][1]
        existing = next((e for e in self.knowledge.entries("fact") if e["slug"] == key), None)
        if not value.strip():
            if existing is None:
                raise Invalid("value must have some text (or the detail must exist to clear it)")
            return self.unpublish(existing["id"], author)
        content = Content(question, value.strip(), [])
        _check(content)
        flags = review(content, detail=key)
        if existing is None:
            entry_id = self.knowledge.create("fact", content, author, flags, slug=key, author_role=role)
        else:
            if base_version is None:
                raise Conflict(f"the {key} detail exists already (version {existing['version']}): send base_version "
                               "with the version you edited")
            entry_id = existing["id"]
            self.knowledge.save(entry_id, base_version, content, author, flags, role)
        return self.publish(entry_id, author, role)

    # -- Markdown, in knowledge/ format --------------------------------------------------------------------------
    def export(self) -> dict[str, str]:
        """Every entry's latest version as Markdown files (relative path -> text), ready to keep in git."""
        files = {}
        for e in self.knowledge.entries():
            meta = {"title": e["question"], "url": "", "updated": (e["updated_at"] or "")[:10],
                    "summary": f"Clinic {'FAQ' if e['kind'] == 'faq' else 'detail'}, written by staff.",
                    "kind": e["kind"], "slug": e["slug"], "status": e["status"], "version": e["version"],
                    "author": e["author"], "applies_to": e["applies_to"]}
            post = frontmatter.Post(f"# {e['question']}\n\n{e['answer']}\n", **meta)
            folder = "faq" if e["kind"] == "faq" else "clinic-details"
            files[f"{folder}/{e['slug']}.md"] = frontmatter.dumps(post) + "\n"
        return files

    def import_path(self, path: Path, author: str, role: str = "editor") -> dict[str, int]:
        """Entries from a folder or file: exported Markdown back as it was, other Markdown, text or a website's
        HTML export one entry per section (through the ingest's own loader); each published or sent to review."""
        report = {"created": 0, "updated": 0, "published": 0, "pending": 0, "skipped": 0}
        known = {e["slug"]: e for e in self.knowledge.entries()}
        for content, slug, kind in _read_entries(path):
            if validate(content) is not None:
                report["skipped"] += 1
                continue
            if slug in known:
                current = known[slug]
                if (current["question"], current["answer"], current["applies_to"]) == (
                        content.question, content.answer, content.applies_to):
                    report["skipped"] += 1
                    continue
                entry = self.save(current["id"], current["version"], content, author)
                report["updated"] += 1
            elif kind == "fact" and slug in DETAILS:
                entry = self.set_detail(slug, content.answer, author, None, role)
                report["created"] += 1
                report[entry["status"] if entry["status"] in report else "skipped"] += 1
                continue
            else:
                entry = self.create(content, author)
                report["created"] += 1
            entry = self.publish(entry["id"], author, role)
            report[entry["status"] if entry["status"] in ("published", "pending") else "skipped"] += 1
        return report


def _second_person(entry: dict[str, Any], actor: str, role: str) -> str | None:
    """Why `actor` may not approve the entry's latest version (None when they may): it takes the reviewer token,
    and a version saved with that token needs another person, so the same hands never write and approve."""
    if role != "reviewer":
        return "a reviewer must approve this (it was flagged by the safety review)"
    if entry.get("author_role") == "reviewer":
        return "a second person must approve: this version was saved with the reviewer token itself"
    if actor.strip().lower() == entry["author"].strip().lower():
        return "a second person must approve: the author of this version cannot approve it"
    return None


def _check(content: Content) -> None:
    problem = validate(content)
    if problem is not None:
        raise Invalid(problem)


def _as_text(version: dict[str, Any]) -> str:
    applies = ", ".join(version["applies_to"])
    return f"Question: {version['question']}\n\n{version['answer']}\n\nApplies to: {applies}"


def _read_entries(path: Path) -> list[tuple[Content, str | None, str]]:
    """(content, slug or None, kind) for every entry a folder or file holds."""
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()
                   and p.suffix.lower() in (".md", ".markdown", ".txt", ".html", ".htm"))
    out: list[tuple[Content, str | None, str]] = []
    others: list[Path] = []
    for f in files:
        if f.suffix.lower() in (".md", ".markdown"):
            post = frontmatter.loads(f.read_text(encoding="utf-8"))
            if post.metadata.get("kind") in ("faq", "fact"):  # one of our own exports
                body = re.sub(r"^\s*#\s+.*\n", "", post.content, count=1).strip()
                listed: Any = post.metadata.get("applies_to") or []
                applies = [str(a) for a in listed]
                out.append((Content(str(post.metadata.get("title", "")), body, applies),
                            str(post.metadata.get("slug") or "") or None, str(post.metadata["kind"])))
                continue
        others.append(f)
    if others:
        from bot.documents import load_passages  # the ingest's loader: site boilerplate stripped the same way

        by_section: dict[tuple[str, str], list[str]] = {}
        titles: dict[tuple[str, str], str] = {}
        for f in others:
            passages, _sources, _warnings = load_passages(f)
            for p in passages:
                key = (p.source, p.section or p.title)
                by_section.setdefault(key, []).append(p.text)
                titles[key] = p.section or p.title
        for key, texts in by_section.items():
            out.append((Content(titles[key][:300], " ".join(texts)[:1500], []), None, "faq"))
    return out


def stamp() -> str:
    """Now, for export file names."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
