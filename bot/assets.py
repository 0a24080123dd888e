"""Static files as sent: gzip-compressed once, ETag-validated, and immutable-cached behind a versioned URL."""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response

SHORT_CACHE = "public, max-age=300"  # the unversioned URL (the clinic's <script> tag): revalidated often
LONG_CACHE = "public, max-age=31536000, immutable"  # ?v=<content hash>: that URL never changes meaning
# A line that is only a // comment; a trailing " // ..." after code whose quotes are balanced.
_COMMENT_LINE = re.compile(r"^\s*//.*$", re.M)
_TRAILING = re.compile(r"^(?P<code>[^\"'`\n]*(?:\"[^\"\n]*\"[^\"'`\n]*)*?) +// [^\n]*$", re.M)


@dataclass(frozen=True)
class Asset:
    """A file's bytes as sent, their gzip form, strong ETags and a short content version."""

    body: bytes
    gz: bytes
    etag: str
    version: str

    @property
    def gz_etag(self) -> str:
        """The ETag of the gzip representation (a strong ETag names one representation)."""
        return self.etag[:-1] + '-gz"'


_assets: dict[Path, tuple[float, Asset]] = {}


def compact_js(source: str) -> str:
    """Drop comment-only lines, trailing comments after plain code and indentation: no token changes."""
    head, sep, rest = source.partition("*/\n")  # the /*! licence header stays
    if not head.startswith("/*!"):
        head, sep, rest = "", "", source
    rest = _COMMENT_LINE.sub("", rest)
    rest = _TRAILING.sub(r"\g<code>", rest)
    lines = (line.strip() for line in rest.split("\n"))
    return head + sep + "\n".join(line for line in lines if line) + "\n"


def load_asset(path: Path) -> Asset:
    """The file as sent, re-read only when its modification time changes (JS is compacted first)."""
    mtime = path.stat().st_mtime
    cached = _assets.get(path)
    if cached is None or cached[0] != mtime:
        body = path.read_bytes()
        if path.suffix == ".js":
            body = compact_js(body.decode("utf-8")).encode("utf-8")
        digest = hashlib.sha256(body).hexdigest()
        cached = (mtime, Asset(body, gzip.compress(body, 9, mtime=0), '"' + digest[:32] + '"', digest[:12]))
        _assets[path] = cached
    return cached[1]


def versioned(path: Path, url: str) -> str:
    """`url?v=<content hash>`: safe to cache for a year, since a new file gets a new URL."""
    return f"{url}?v={load_asset(path).version}"


def _accepts_gzip(header: str | None) -> bool:
    for part in (header or "").split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            try:
                return not q.startswith("q=") or float(q[2:]) > 0
            except ValueError:
                return True
    return False


def _matches(if_none_match: str | None, *etags: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or any(e in tags for e in etags)


def cached_file(request: Request, path: Path, media_type: str) -> Response:
    """The file (gzip when accepted) with ETag and Cache-Control, or 304 when the client's copy is current."""
    asset = load_asset(path)
    zipped = _accepts_gzip(request.headers.get("accept-encoding"))
    cache = LONG_CACHE if request.query_params.get("v") == asset.version else SHORT_CACHE
    headers = {"ETag": asset.gz_etag if zipped else asset.etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if _matches(request.headers.get("if-none-match"), asset.etag, asset.gz_etag):
        return Response(status_code=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gz, media_type=media_type, headers=headers)
    return Response(asset.body, media_type=media_type, headers=headers)
