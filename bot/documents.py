"""Load the clinic's articles (md, txt, html), strip site boilerplate and split them into passages."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
import trafilatura
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from bot.types import Passage

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
# Site builders (Wix and friends) leave these accessibility anchors in exported text.
# Spaces and tabs only around the phrase: `\s*` at every line start ran across all the blank lines after it
# (110 ms on 2,000 newlines); the blank lines left behind are collapsed below.
RESIDUE = re.compile(r"^[ \t]*(top of page|bottom of page|skip to (main )?content|back to top)[ \t]*$", re.I | re.M)
MAX_PASSAGE_CHARS = 900


@dataclass
class Document:
    """One article as read from disk, as Markdown-ish text with its metadata."""

    source: str
    title: str
    body: str
    url: str = ""
    updated: str = ""
    summary: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class SkippedFile(Exception):
    """A file that cannot be ingested; the message says why."""


def _read_text(path: Path) -> str:
    if not path.is_file():  # a FIFO or device would block or never end
        raise SkippedFile("unreadable (not a regular file)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SkippedFile(f"unreadable ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise SkippedFile("empty")
    if b"\x00" in raw[:8192]:
        raise SkippedFile("binary (NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkippedFile(f"not UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise SkippedFile("empty")
    # NFKC folds no-break spaces and other look-alike characters that site exports are full of.
    return unicodedata.normalize("NFKC", text)


def _clean_lines(text: str) -> str:
    text = RESIDUE.sub("", text.replace("\r\n", "\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _looks_like_heading(line: str) -> bool:
    # Plain-text exports lose heading markup: a short line standing alone without a full stop is one.
    s = line.strip()
    return 0 < len(s) <= 90 and not s.endswith((".", ",", ";", ":")) and len(s.split()) <= 14


def _txt_to_markdown(text: str) -> tuple[str, str]:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", _clean_lines(text)) if b.strip()]
    if not blocks:
        return "", ""
    title = blocks[0] if _looks_like_heading(blocks[0]) and "\n" not in blocks[0] else ""
    out = []
    for b in blocks[1:] if title else blocks:
        out.append(f"## {b}" if "\n" not in b and _looks_like_heading(b) else b)
    return title, "\n\n".join(out)


def _html_to_markdown(html: str) -> tuple[str, str]:
    # trafilatura is built for boilerplate removal: it drops nav, scripts, styles and footers.
    body = trafilatura.extract(
        html, output_format="markdown", include_formatting=True, include_links=False,
        include_comments=False, include_tables=True, favor_recall=True,
    ) or ""
    meta = trafilatura.extract_metadata(html)
    title = (meta.title if meta and meta.title else "") or ""
    body = _clean_lines(body)
    if body.lstrip().startswith("# "):
        first, _, rest = body.lstrip().partition("\n")
        title = title or first[2:].strip()
        body = rest
    return title, body


def load_document(path: Path, root: Path) -> Document:
    """Read one file into a Document; raises SkippedFile with the reason when it cannot."""
    text = _read_text(path)
    source = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    meta: dict[str, object] = {}
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        try:
            post = frontmatter.loads(text)
        except Exception as exc:  # a broken front matter block should name the file, not stop ingest
            raise SkippedFile(f"bad front matter ({exc})") from exc
        meta, body = dict(post.metadata), _clean_lines(post.content)
        title = str(meta.get("title") or "")
        if body.startswith("# "):
            first, _, body = body.partition("\n")
            title = title or first[2:].strip()
    elif suffix in (".html", ".htm"):
        title, body = _html_to_markdown(text)
    else:
        title, body = _txt_to_markdown(text)
    if not body.strip():
        raise SkippedFile("no readable text")
    return Document(
        source=source,
        title=title or path.stem.replace("-", " ").replace("_", " ").capitalize(),
        body=body.strip(),
        url=str(meta.get("url") or ""),
        updated=str(meta.get("updated") or ""),
        summary=str(meta.get("summary") or ""),
    )


def iter_files(path: Path) -> list[Path]:
    """The ingestible files under a folder (or the file itself), sorted for stable output."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if not p.is_dir() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


_headers = MarkdownHeaderTextSplitter([("#", "h1"), ("##", "h2"), ("###", "h3")], strip_headers=True)
_chunker = RecursiveCharacterTextSplitter(
    chunk_size=MAX_PASSAGE_CHARS, chunk_overlap=0, separators=["\n\n", "\n", ". ", " "], keep_separator="end"
)


def passage_id(doc: Document, section: str, text: str) -> str:
    """A stable id from the content: same text in the same place, same id."""
    digest = hashlib.sha256("\x1f".join((doc.source, doc.title, section, text)).encode()).hexdigest()
    return digest[:24]


def split_document(doc: Document) -> list[Passage]:
    """Split along headings, then paragraphs, into passages that carry title, section, source and url."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for part in _headers.split_text(doc.body):
        section = part.metadata.get("h3") or part.metadata.get("h2") or part.metadata.get("h1") or ""
        for chunk in _chunker.split_text(part.page_content):
            text = re.sub(r"[ \t]+", " ", chunk).strip()
            if len(text) < 3:
                continue
            pid = passage_id(doc, section, text)
            if pid in seen:
                continue
            seen.add(pid)
            passages.append(Passage(id=pid, text=text, title=doc.title, section=section,
                                    source=doc.source, url=doc.url))
    return passages


def load_passages(path: Path) -> tuple[list[Passage], dict[str, str], list[str]]:
    """Every passage under `path`, the sources read (source -> title) and one warning per skipped file."""
    root = path if path.is_dir() else path.parent
    passages: list[Passage] = []
    sources: dict[str, str] = {}
    warnings: list[str] = []
    for file in iter_files(path):
        try:
            doc = load_document(file, root)
        except SkippedFile as exc:
            warnings.append(f"skipped {file}: {exc}")
            continue
        sources[doc.source] = doc.title
        passages.extend(split_document(doc))
    return passages, sources, warnings


def embedding_text(p: Passage) -> str:
    """What gets embedded for a passage: its title and section give short passages their context."""
    head = " - ".join(x for x in (p.title, p.section) if x and x != p.title) or p.title
    return f"{p.title}. {p.section}. {p.text}" if p.section and p.section != p.title else f"{head}. {p.text}"
