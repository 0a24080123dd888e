"""Loading and splitting: site-export clean-up, front matter, bad files named and skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.documents import load_document, load_passages, split_document
from tests.conftest import KNOWLEDGE, SHARED

FIXTURES = Path(__file__).parent / "fixtures"
SEED = SHARED / "seeds" / "000_2e492eee81f56b30.txt"


def test_knowledge_front_matter_and_sections() -> None:
    passages, sources, warnings = load_passages(KNOWLEDGE)
    assert warnings == []
    assert {"psoas-muscle.md", "back-and-hip-pain.md", "myofascial-release.md", "booking.md"} <= set(sources)
    psoas = [p for p in passages if p.source == "psoas-muscle.md"]
    assert psoas and all(p.title == "The psoas muscle" for p in psoas)
    assert any(p.section == "How big the psoas is" and "16 inches" in p.text for p in psoas)
    # Headings are metadata, not text; front matter never leaks into a passage.
    assert not any(p.text.startswith("#") or "summary:" in p.text for p in passages)


def test_ids_are_stable_and_content_addressed() -> None:
    a, _, _ = load_passages(KNOWLEDGE)
    b, _, _ = load_passages(KNOWLEDGE)
    assert [p.id for p in a] == [p.id for p in b]
    assert len({p.id for p in a}) == len(a)


@pytest.mark.skipif(not SEED.exists(), reason="../shared/seeds is absent in this checkout")
def test_seed_site_export_cleanup() -> None:
    doc = load_document(SEED, SEED.parent)
    assert doc.title == "A Main Cause of Back and Hip Pain: The Psoas Muscle"
    assert "top of page" not in doc.body.lower() and "bottom of page" not in doc.body.lower()
    assert "\u00a0" not in doc.body  # no-break spaces folded
    passages = split_document(doc)
    assert any("16 inches" in p.text for p in passages)
    assert any(p.section == "(P)so(as) what?" for p in passages)
    assert all("top of page" not in p.text.lower() for p in passages)


def test_html_from_a_site_builder_is_stripped_of_boilerplate() -> None:
    doc = load_document(FIXTURES / "site-export.html", FIXTURES)
    body = doc.body.lower()
    assert "16 inches" in body and "gentle sustained pressure" in body
    for residue in ("top of page", "bottom of page", "skip to main content", "wixbisession", "tracker code",
                    "font-family", "all rights reserved", "book online", "follow us"):
        assert residue not in body, residue
    sections = {p.section for p in split_document(doc)}
    assert {"(P)so(as) what?", "Try Myofascial Release"} <= sections


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.txt", b"   \n\n  ", "empty"),
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("latin1.txt", "Caf\u00e9 na\u00efve r\u00e9sum\u00e9".encode("latin-1"), "not UTF-8"),
        ("badfront.md", b"---\ntitle: [unclosed\n---\nBody text here.", "front matter"),
    ],
)
def test_bad_files_are_named_and_skipped(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / "good.md").write_text("---\ntitle: Good\n---\n\n## Part\n\nA perfectly fine sentence.\n")
    (tmp_path / name).write_bytes(content)
    passages, sources, warnings = load_passages(tmp_path)
    assert list(sources) == ["good.md"]
    assert len(passages) == 1
    assert len(warnings) == 1 and name in warnings[0] and reason in warnings[0]


def test_unreadable_file_is_named_and_skipped(tmp_path: Path) -> None:
    # A path that cannot be read as a file (here: a FIFO) is named and skipped, even as root.
    import os

    (tmp_path / "good.md").write_text("Fine text.\n")
    os.mkfifo(tmp_path / "pipe.md")
    _, sources, warnings = load_passages(tmp_path)
    assert list(sources) == ["good.md"]
    assert any("pipe.md" in w for w in warnings)
