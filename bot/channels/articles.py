"""The clinic's articles as plain pages at /articles/<slug>: what an answer's citation links to."""

from __future__ import annotations

import asyncio
import html
import re
from functools import lru_cache
from pathlib import Path

import frontmatter
from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

from bot.deps import ClinicDep, RuntimeDep, SettingsDep
from bot.faq_store import KnowledgeStore

router = APIRouter()
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")
# Raw HTML in an article is shown as text, never run: the page carries the same CSP as the demo page.
_MD = MarkdownIt("commonmark", {"html": False})

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · {name}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/demo.css">
</head>
<body>
  <header class="site-header"><div class="wrap bar"><a class="brand" href="/">{name}</a>
    <nav aria-label="Main"><ul><li><a href="/articles">Our articles</a></li>
    <li><a href="{tel}">Call {phone}</a></li></ul></nav></div></header>
  <main id="main" class="wrap article">
{body}
    <p class="small">{disclaimer}</p>
  </main>
  <script src="/widget.js" defer data-title="Ask our assistant" data-color="#14606e"></script>
</body>
</html>
"""


@lru_cache(maxsize=64)
def _render(path: Path, mtime: float) -> tuple[str, str]:
    """(title, HTML body) of one article; cached until the file changes."""
    post = frontmatter.loads(path.read_text(encoding="utf-8"))
    title = str(post.metadata.get("title") or path.stem)
    body = _MD.render(post.content)
    if not body.lstrip().startswith("<h1"):
        body = f"<h1>{html.escape(title)}</h1>\n{body}"
    return title, body


def _articles(knowledge: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(knowledge.rglob("*.md")) if _SLUG.match(p.stem)}


def _page(title: str, body: str, clinic: ClinicDep) -> HTMLResponse:
    esc = html.escape
    return HTMLResponse(_PAGE.format(title=esc(title), name=esc(clinic.name), tel=esc(f"tel:{clinic.phone_e164}"),
                                     phone=esc(clinic.phone), body=body, disclaimer=esc(clinic.disclaimer)),
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/articles", tags=["widget"], response_class=HTMLResponse)
async def article_index(settings: SettingsDep, clinic: ClinicDep) -> HTMLResponse:
    """The list of the clinic's articles the assistant answers from."""
    items = []
    for slug, path in _articles(settings.knowledge_dir).items():
        title, _ = _render(path, path.stat().st_mtime)
        items.append(f'<li><a href="/articles/{slug}">{html.escape(title)}</a></li>')
    return _page("Our articles", "<h1>Our articles</h1>\n<ul>\n" + "\n".join(items) + "\n</ul>", clinic)


@router.get("/articles/{slug}", tags=["widget"], response_class=HTMLResponse)
async def article(slug: str, settings: SettingsDep, clinic: ClinicDep) -> HTMLResponse:
    """One article, as the assistant's citations link to it."""
    path = _articles(settings.knowledge_dir).get(slug)
    if path is None:
        raise HTTPException(404, detail=f"No article {slug!r}; see /articles for the list.")
    title, body = _render(path, path.stat().st_mtime)
    return _page(title, body, clinic)


_FAQ_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,95}$")  # clinic details' keys have underscores ("wear_bring")


@router.get("/articles/faq/{slug}", tags=["widget"], response_class=HTMLResponse)
async def staff_answer(slug: str, runtime: RuntimeDep, clinic: ClinicDep) -> HTMLResponse:
    """A published staff answer (Clinic FAQ or clinic detail), as its citations link to it."""
    if not _FAQ_SLUG.match(slug):
        raise HTTPException(404, detail=f"No clinic FAQ {slug!r}.")
    try:
        entry = await asyncio.to_thread(KnowledgeStore(runtime.store).by_slug, slug)
    except Exception as exc:
        raise HTTPException(503, detail="The database is not answering right now; please call the clinic.") from exc
    if entry is None:
        raise HTTPException(404, detail=f"No published clinic FAQ {slug!r}; see /articles for the articles.")
    # Staff text is Markdown with raw HTML off: a <script> in an answer is shown as text, never run.
    body = f"<h1>{html.escape(entry['question'])}</h1>\n{_MD.render(entry['answer'])}"
    response = _page(f"Clinic FAQ: {entry['question']}", body, clinic)
    response.headers["Cache-Control"] = "no-cache"  # an unpublished answer must not linger in caches
    return response
