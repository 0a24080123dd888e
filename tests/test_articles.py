"""The article pages that citations link to: rendered safely, listed, 404 for anything else."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import KNOWLEDGE


def test_every_article_has_a_page_and_the_index_lists_them(client: httpx.Client) -> None:
    index = client.get("/articles")
    assert index.status_code == 200 and "Our articles" in index.text
    for path in KNOWLEDGE.glob("*.md"):
        assert f'href="/articles/{path.stem}"' in index.text
        page = client.get(f"/articles/{path.stem}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "(828) 458-7218" in page.text and "not medical advice" in page.text


def test_answer_citations_point_at_served_article_pages(client: httpx.Client) -> None:
    reply = client.post("/chat", json={"message": "What is the psoas?"}).json()
    assert reply["kind"] == "answer" and reply["citations"]
    for c in reply["citations"]:
        assert c["url"].startswith("/articles/")
        assert client.get(c["url"]).status_code == 200


def test_unknown_or_hostile_slugs_are_404(client: httpx.Client) -> None:
    for slug in ("nope", "..%2Fclinic", "%2e%2e", "clinic.toml", "PSOAS-MUSCLE", "a" * 200):
        r = client.get(f"/articles/{slug}")
        assert r.status_code == 404, slug


def test_raw_html_in_an_article_is_shown_as_text(make_client, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "clinic.toml").write_text((KNOWLEDGE / "clinic.toml").read_text())
    (knowledge / "evil.md").write_text('---\ntitle: Evil\n---\n\nHello <script>alert(1)</script> '
                                       '[x](javascript:alert(2))\n')
    c = make_client(data_dir, knowledge_dir=knowledge)
    page = c.get("/articles/evil").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "href=\"javascript:" not in page  # markdown-it refuses the link; the text stays visible
