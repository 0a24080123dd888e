"""Staff answers (issue 16) through the app: every route, roles, conflicts, history, clinic details, safety."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REVIEWER_TOKEN, STAFF_TOKEN, LiveServer

EDITOR = {"Authorization": f"Bearer {STAFF_TOKEN}"}
REVIEWER = {"Authorization": f"Bearer {REVIEWER_TOKEN}"}
GIFT = {"question": "Do you sell gift cards?", "answer": "Yes, gift cards are available at the front desk.",
        "applies_to": ["gift certificate"], "author": "Ann"}
FAQ_ROUTES = [
    ("GET", "/staff/api/faq", None),
    ("POST", "/staff/api/faq", GIFT),
    ("GET", "/staff/api/faq/export", None),
    ("GET", "/staff/api/faq/1", None),
    ("PUT", "/staff/api/faq/1", {**GIFT, "base_version": 1}),
    ("POST", "/staff/api/faq/1/publish", {"actor": "Ann"}),
    ("POST", "/staff/api/faq/1/approve", {"actor": "Cy"}),
    ("POST", "/staff/api/faq/1/unpublish", {"actor": "Ann"}),
    ("POST", "/staff/api/faq/1/rollback", {"actor": "Ann", "version": 1}),
    ("GET", "/staff/api/faq/1/diff?a=1&b=1", None),
    ("POST", "/staff/api/faq/1/preview", {"message": "gift cards?"}),
    ("GET", "/staff/api/audit", None),
    ("GET", "/staff/api/audit.csv", None),
    ("GET", "/staff/api/clinic-details", None),
    ("PUT", "/staff/api/clinic-details/parking", {"value": "Behind the building.", "author": "Ann"}),
]


@pytest.fixture
def c(make_client, data_dir):  # type: ignore[no-untyped-def]
    """A fresh app with both staff roles configured."""
    return make_client(data_dir, reviewer_token=REVIEWER_TOKEN)


def _create(c: Any, **overrides: Any) -> dict[str, Any]:
    resp = c.post("/staff/api/faq", json={**GIFT, **overrides}, headers=EDITOR)
    assert resp.status_code == 201, resp.text
    assert resp.headers["etag"] == f'"{resp.json()["version"]}"'
    return dict(resp.json())


def _ask(c: Any, message: str) -> dict[str, Any]:
    resp = c.post("/chat", json={"message": message})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _cites(reply: dict[str, Any], slug: str) -> bool:
    return any(x["source"] == f"faq/{slug}" for x in reply["citations"])


def test_faq_routes_refuse_without_a_staff_token(c) -> None:  # type: ignore[no-untyped-def]
    for method, path, body in FAQ_ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic x"}):
            resp = c.request(method, path, json=body, headers=headers)
            assert resp.status_code == 401, (path, resp.text)
    assert c.get("/staff/api/faq", headers=EDITOR).json()["entries"] == []  # nothing was written


def test_a_draft_answers_nobody_until_published_then_answers_paraphrases_with_its_citation(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c)
    assert entry["status"] == "draft" and entry["flags"] == [] and entry["url"] == "/articles/faq/do-you-sell-gift-cards"
    assert not _cites(_ask(c, "can i buy a gift card for my mom"), entry["slug"])
    published = c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Ann"}, headers=EDITOR).json()
    assert published["status"] == "published" and published["published_version"] == 1
    for message in ("can i buy a gift card for my mom", "do you have gift certificates", "venden tarjetas de regalo?"):
        reply = _ask(c, message)
        assert reply["kind"] == "answer" and _cites(reply, entry["slug"]), (message, reply)
        assert "Yes, gift cards are available at the front desk." in reply["reply"]
        cite = next(x for x in reply["citations"] if x["source"] == "faq/do-you-sell-gift-cards")
        assert cite["title"] == "Clinic FAQ: Do you sell gift cards?" and cite["url"] == entry["url"]
    # A different question sharing a word is not answered by it, and an emergency never is.
    assert not _cites(_ask(c, "do you take credit cards"), entry["slug"])
    emergency = _ask(c, "gift cards? also my chest is crushing and my left arm is numb")
    assert emergency["kind"] == "emergency" and not emergency["citations"]
    page = c.get(entry["url"])
    assert page.status_code == 200 and "gift cards are available" in page.text


def test_preview_shows_the_patients_reply_with_the_draft_and_stores_nothing(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c)
    before = c.app.state.runtime.store.counts()
    resp = c.post(f"/staff/api/faq/{entry['id']}/preview", json={"message": "gift card?"}, headers=EDITOR)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["answered_by_entry"] and body["reply"]["kind"] == "answer"
    assert body["reply"]["citations"][0]["title"] == "Clinic FAQ: Do you sell gift cards?"
    assert body["entry_score"] >= body["threshold"] and body["passages"]
    assert all(p["outranked"] for p in body["passages"])
    after = c.app.state.runtime.store.counts()
    assert {k: v for k, v in after.items() if not k.startswith("kb_")} == \
        {k: v for k, v in before.items() if not k.startswith("kb_")}
    # Nobody else sees the draft.
    assert not _cites(_ask(c, "gift card?"), entry["slug"])
    # Triage still runs first in a preview.
    urgent = c.post(f"/staff/api/faq/{entry['id']}/preview", headers=EDITOR,
                    json={"message": "gift card? my face is drooping and my speech is slurred"}).json()
    assert urgent["reply"]["kind"] == "emergency" and not urgent["answered_by_entry"]


def test_a_flagged_entry_waits_for_a_reviewer_who_is_not_its_author(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c, answer="Our treatment cures back pain for good. A gift card is $90.", author="Bob")
    assert any(f.startswith("medical claim") for f in entry["flags"])
    assert any(f.startswith("clinic fact: price") for f in entry["flags"])
    pending = c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Bob"}, headers=EDITOR).json()
    assert pending["status"] == "pending"
    assert not _cites(_ask(c, "gift card?"), entry["slug"])
    # An editor cannot approve; the author cannot approve their own text even with the reviewer token.
    assert c.post(f"/staff/api/faq/{entry['id']}/approve", json={"actor": "Cy"}, headers=EDITOR).status_code == 403
    own = c.post(f"/staff/api/faq/{entry['id']}/approve", json={"actor": "bob"}, headers=REVIEWER)
    assert own.status_code == 409 and "second person" in own.json()["detail"]
    approved = c.post(f"/staff/api/faq/{entry['id']}/approve", json={"actor": "Cy"}, headers=REVIEWER).json()
    assert approved["status"] == "published"
    assert _cites(_ask(c, "gift card?"), entry["slug"])
    detail = c.get(f"/staff/api/faq/{entry['id']}", headers=EDITOR).json()
    assert detail["versions"][0]["approved_by"] == "Cy"
    assert c.get("/staff/api/session", headers=REVIEWER).json()["role"] == "reviewer"
    assert c.get("/staff/api/session", headers=EDITOR).json()["role"] == "editor"
    assert c.post(f"/staff/api/faq/{entry['id']}/approve", json={"actor": "Cy"}, headers=REVIEWER).status_code == 409


@pytest.mark.parametrize("text", ["Your pain is a sign of a slipped disc.", "Take 400 mg of ibuprofen first.",
                                  "It is safe for pregnant women.", "Guaranteed relief in three sessions.",
                                  "We are open Monday to Friday, 9am to 5pm.", "We take Medicare and most insurance."])
def test_the_safety_review_flags_claims_and_clinic_facts(c, text) -> None:  # type: ignore[no-untyped-def]
    assert _create(c, answer=text)["flags"]


def test_plain_answers_publish_at_once() -> None:
    from bot.faq import review
    from bot.faq_store import Content

    for text in ("Yes, gift cards are available at the front desk.", "Wear loose, comfortable clothes.",
                 "Free parking is behind the building.", "Please arrive ten minutes early."):
        assert review(Content("Q?", text)) == [], text


def test_two_editors_saving_the_same_version_conflict_and_nothing_is_overwritten(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c)
    first = c.put(f"/staff/api/faq/{entry['id']}", json={**GIFT, "answer": "First edit.", "base_version": 1},
                  headers=EDITOR)
    second = c.put(f"/staff/api/faq/{entry['id']}", json={**GIFT, "answer": "Second edit.", "base_version": 1},
                   headers=EDITOR)
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    assert second.status_code == 409 and "someone else" in second.json()["detail"]
    got = c.get(f"/staff/api/faq/{entry['id']}", headers=EDITOR).json()
    assert got["answer"] == "First edit." and [v["version"] for v in got["versions"]] == [2, 1]


def test_history_diff_rollback_unpublish_and_the_audit_log(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c)
    eid = entry["id"]
    c.post(f"/staff/api/faq/{eid}/publish", json={"actor": "Ann"}, headers=EDITOR)
    c.put(f"/staff/api/faq/{eid}", json={**GIFT, "answer": "We stopped selling gift cards.", "author": "Dee",
                                         "base_version": 1}, headers=EDITOR)
    c.post(f"/staff/api/faq/{eid}/publish", json={"actor": "Dee"}, headers=EDITOR)
    assert _ask(c, "gift card?")["reply"].startswith("We stopped selling")
    diff = c.get(f"/staff/api/faq/{eid}/diff?a=1&b=2", headers=EDITOR).json()
    assert "-Yes, gift cards are available at the front desk." in diff["diff"]
    assert any(ch["op"] == "insert" and "stopped" in ch["text"] for ch in diff["changes"])
    assert any(ch["op"] == "delete" and "available" in ch["text"] for ch in diff["changes"])
    back = c.post(f"/staff/api/faq/{eid}/rollback", json={"actor": "Ann", "version": 1}, headers=EDITOR).json()
    assert back["status"] == "published" and back["version"] == 3 and back["published_version"] == 3
    assert _ask(c, "gift card?")["reply"].startswith("Yes, gift cards")
    gone = c.post(f"/staff/api/faq/{eid}/unpublish", json={"actor": "Ann"}, headers=EDITOR).json()
    assert gone["status"] == "unpublished"
    assert not _cites(_ask(c, "gift card?"), entry["slug"])
    assert c.get(entry["url"]).status_code == 404
    actions = [i["action"] for i in c.get("/staff/api/audit", headers=EDITOR).json()["items"]]
    assert actions[0] == "unpublish" and {"create", "publish", "save", "rollback"} <= set(actions)
    rows = list(csv.DictReader(io.StringIO(c.get("/staff/api/audit.csv", headers=EDITOR).text)))
    assert [r["action"] for r in rows] == actions and rows[0]["actor"] == "Ann"
    assert c.get(f"/staff/api/faq/{eid}/diff?a=1&b=9", headers=EDITOR).status_code == 404


@pytest.mark.parametrize(("body", "why"), [
    ({**GIFT, "question": ""}, "question"),
    ({**GIFT, "answer": "   "}, "answer"),
    ({**GIFT, "answer": "x" * 1501}, "answer"),
    ({**GIFT, "question": "q" * 301}, "question"),
    ({**GIFT, "author": ""}, "author"),
    ({**GIFT, "applies_to": ["a"] * 11}, "applies_to"),
    ({**GIFT, "answer": "nul\x00"}, "answer"),
    ({"question": "Q?"}, "answer"),
    ({**GIFT, "answer": 5}, "answer"),
])
def test_bad_entries_get_a_clear_422_and_nothing_is_stored(c, body, why) -> None:  # type: ignore[no-untyped-def]
    resp = c.post("/staff/api/faq", json=body, headers=EDITOR)
    assert resp.status_code == 422 and why in resp.text
    assert c.get("/staff/api/faq", headers=EDITOR).json()["entries"] == []


def test_unknown_entries_and_details_are_404(c) -> None:  # type: ignore[no-untyped-def]
    assert c.get("/staff/api/faq/999", headers=EDITOR).status_code == 404
    assert c.post("/staff/api/faq/999/publish", json={"actor": "A"}, headers=EDITOR).status_code == 404
    assert c.put("/staff/api/clinic-details/shoe_size", json={"value": "x", "author": "A"},
                 headers=EDITOR).status_code == 404
    assert c.get("/articles/faq/nothing-here").status_code == 404


def test_clinic_details_answer_the_slot_questions_instead_of_the_front_desk(c) -> None:  # type: ignore[no-untyped-def]
    before = _ask(c, "where do i park")
    assert before["kind"] == "handoff"
    saved = c.put("/staff/api/clinic-details/parking", json={"value": "Park free behind the building.",
                                                             "author": "Ann"}, headers=EDITOR).json()
    assert saved["status"] == "published" and saved["kind"] == "fact"
    reply = _ask(c, "where do i park")
    assert reply["kind"] == "answer" and reply["reply"].startswith("Park free behind the building.")
    assert reply["citations"][0]["title"] == "Clinic details: Parking"
    # Hours always wait for a reviewer: a wrong one misleads every patient.
    hours = c.put("/staff/api/clinic-details/hours", json={"value": "Tuesday to Saturday, 9 to 5.",
                                                           "author": "Ann"}, headers=EDITOR).json()
    assert hours["status"] == "pending" and _ask(c, "what are your hours")["kind"] == "handoff"
    c.post(f"/staff/api/faq/{hours['id']}/approve", json={"actor": "Cy"}, headers=REVIEWER)
    assert _ask(c, "what are your hours")["reply"].startswith("Tuesday to Saturday")
    fields = {f["key"]: f for f in c.get("/staff/api/clinic-details", headers=EDITOR).json()["fields"]}
    assert fields["parking"]["value"] == "Park free behind the building." and fields["price"]["value"] is None
    stale = c.put("/staff/api/clinic-details/parking", json={"value": "Street parking.", "author": "Bo"},
                  headers=EDITOR)
    assert stale.status_code == 409  # it exists now: a save must say which version it edits
    cleared = c.put("/staff/api/clinic-details/parking", json={"value": "", "author": "Bo", "base_version": 1},
                    headers=EDITOR).json()
    assert cleared["status"] == "unpublished" and _ask(c, "where do i park")["kind"] == "handoff"


def test_markup_in_an_entry_is_inert_on_every_channel(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c, answer='Yes! <img src=x onerror="alert(1)"><script>alert(2)</script> See **[our page]'
                              '(https://example.org/gifts)**.')
    c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Ann"}, headers=EDITOR)
    reply = _ask(c, "gift card?")
    assert "<" not in reply["reply"] and "alert" not in reply["reply"] and "**" not in reply["reply"]
    assert "our page (https://example.org/gifts)" in reply["reply"]
    page = c.get(entry["url"]).text
    assert "<script>alert" not in page and "<img" not in page and "&lt;script&gt;" in page


def test_export_writes_knowledge_markdown_that_imports_back(c, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bot.faq_store import KnowledgeStore
    from bot.faq_workflow import Workflow

    entry = _create(c)
    c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Ann"}, headers=EDITOR)
    c.put("/staff/api/clinic-details/parking", json={"value": "Behind the building.", "author": "Ann"},
          headers=EDITOR)
    resp = c.get("/staff/api/faq/export", headers=EDITOR)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        names = sorted(zf.namelist())
        zf.extractall(tmp_path / "export")
    assert names == ["clinic-details/parking.md", "faq/do-you-sell-gift-cards.md"]
    text = (tmp_path / "export/faq/do-you-sell-gift-cards.md").read_text()
    assert text.startswith("---\n") and "title: Do you sell gift cards?" in text and "# Do you sell gift cards?" in text
    # The same files into another clinic's empty database: same entries, published.
    from bot.store import Store

    other = Store(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    other.migrate()
    report = Workflow(KnowledgeStore(other)).import_path(tmp_path / "export", "import")
    assert report["created"] == 2 and report["published"] == 2
    again = Workflow(KnowledgeStore(other)).import_path(tmp_path / "export", "import")
    assert again["skipped"] == 2 and again["created"] == 0
    # A website's HTML export goes through the ingest's loader: one entry per section.
    site = tmp_path / "site"
    site.mkdir()
    (site / "faq.html").write_text("<html><body><h1>Visiting us</h1><h2>Do you have a waiting room?</h2>"
                                   "<p>Yes, there is a small waiting room with water and books.</p>"
                                   "<p>top of page</p></body></html>")
    site_report = Workflow(KnowledgeStore(other)).import_path(site, "import")
    assert site_report["created"] >= 1
    entries = KnowledgeStore(other).entries("faq")
    assert any("waiting room" in e["answer"] and "top of page" not in e["answer"] for e in entries)


def test_an_entry_stored_but_never_indexed_is_indexed_at_start(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    """The database is the source of truth: a crash after storing and before embedding loses nothing."""
    from bot.faq_store import Content, KnowledgeStore
    from bot.faq_workflow import Workflow
    from bot.store import Store

    store = Store(f"sqlite:///{(data_dir / 'bot.sqlite3').resolve()}")
    store.migrate()
    flow = Workflow(KnowledgeStore(store))
    entry = flow.create(Content(GIFT["question"], GIFT["answer"], GIFT["applies_to"]), "Ann")
    flow.publish(entry["id"], "Ann", "editor")  # stored and published; no worker ever embedded it
    assert KnowledgeStore(store).published()[0].vectors is None
    c = make_client(data_dir)
    assert _cites(_ask(c, "gift card?"), "do-you-sell-gift-cards")
    assert KnowledgeStore(store).published()[0].vectors is not None  # written back for the other workers


def test_a_publish_reaches_every_worker_within_five_seconds(tmp_path: Path, built_index: Path) -> None:
    """Two workers on one database: publish on one, then fresh connections (spread over both workers by the
    kernel) ask until 16 in a row get the new answer; the first of that streak must come within 5 s."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_index, data)
    server = LiveServer(data, workers=2)

    def ask_fresh() -> dict[str, Any]:
        with httpx.Client(base_url=server.url, timeout=10) as fresh:
            return dict(fresh.post("/chat", json={"message": "gift card?"}).json())

    try:
        server.wait_ready()
        deadline, streak = time.monotonic() + 120, 0
        while streak < 12 and time.monotonic() < deadline:  # both workers ready
            streak = streak + 1 if httpx.get(server.url + "/health", timeout=5).status_code == 200 else 0
            time.sleep(0.1)
        before = [ask_fresh() for _ in range(8)]
        with httpx.Client(base_url=server.url, timeout=10) as h:
            entry = h.post("/staff/api/faq", json=GIFT, headers=EDITOR).json()
            published_at = time.monotonic()
            assert h.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Ann"},
                          headers=EDITOR).json()["status"] == "published"
        streak, streak_began = 0, None
        while streak < 16 and time.monotonic() - published_at < 30:
            if _cites(ask_fresh(), "do-you-sell-gift-cards"):
                streak_began = streak_began if streak else time.monotonic()
                streak += 1
            else:
                streak, streak_began = 0, None
    finally:
        server.stop()
    assert not any(_cites(b, "do-you-sell-gift-cards") for b in before)
    assert streak == 16 and streak_began is not None
    print(f"\npublish -> every worker answering: {streak_began - published_at:.2f} s")  # the README figure (-s)
    assert streak_began - published_at < 5, f"every worker answered only after {streak_began - published_at:.2f} s"


def test_text_saved_with_the_reviewer_token_needs_someone_else_whatever_name_is_typed(c) -> None:  # type: ignore[no-untyped-def]
    resp = c.post("/staff/api/faq", json={**GIFT, "answer": "It cures sciatica.", "author": "bob"}, headers=REVIEWER)
    entry = resp.json()
    assert entry["author_role"] == "reviewer" and entry["flags"]
    published = c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "bob (again)"}, headers=REVIEWER)
    assert published.json()["status"] == "pending"
    own = c.post(f"/staff/api/faq/{entry['id']}/approve", json={"actor": "someone else"}, headers=REVIEWER)
    assert own.status_code == 409 and "reviewer token itself" in own.json()["detail"]
    assert not _cites(_ask(c, "gift card?"), entry["slug"])


def test_a_change_waiting_for_review_leaves_the_approved_answer_live(c) -> None:  # type: ignore[no-untyped-def]
    entry = _create(c)
    c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Ann"}, headers=EDITOR)
    c.put(f"/staff/api/faq/{entry['id']}", json={**GIFT, "answer": "Gift cards are $50 each.", "author": "Dee",
                                                  "base_version": 1}, headers=EDITOR)
    pending = c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Dee"}, headers=EDITOR).json()
    assert pending["status"] == "pending" and pending["published_version"] == 1
    assert _ask(c, "gift card?")["reply"].startswith("Yes, gift cards are available")
    assert c.get(entry["url"]).status_code == 200
    # Saving again keeps version 1 live too; the approval then publishes exactly the version the reviewer saw.
    c.put(f"/staff/api/faq/{entry['id']}", json={**GIFT, "answer": "Gift cards are $55 each.", "author": "Dee",
                                                  "base_version": 2}, headers=EDITOR)
    assert _ask(c, "gift card?")["reply"].startswith("Yes, gift cards are available")
    c.post(f"/staff/api/faq/{entry['id']}/publish", json={"actor": "Dee"}, headers=EDITOR)
    c.post(f"/staff/api/faq/{entry['id']}/approve", json={"actor": "Cy"}, headers=REVIEWER)
    assert _ask(c, "gift card?")["reply"].startswith("Gift cards are $55 each.")


def test_an_faq_never_takes_a_clinic_details_address_and_every_citation_link_opens(c) -> None:  # type: ignore[no-untyped-def]
    faq = _create(c, question="Parking?", answer="Use the lot behind the building.")
    assert faq["slug"] == "parking-faq"
    saved = c.put("/staff/api/clinic-details/wear_bring", json={"value": "Loose, comfortable clothes.",
                                                                "author": "Ann"}, headers=EDITOR).json()
    assert saved["slug"] == "wear_bring" and saved["status"] == "published"
    assert c.get(saved["url"]).status_code == 200
    long_q = "q" * 80 + "?"
    twice = [_create(c, question=long_q) for _ in range(2)]
    for e in twice:
        c.post(f"/staff/api/faq/{e['id']}/publish", json={"actor": "Ann"}, headers=EDITOR)
        assert c.get(e["url"]).status_code == 200, e["url"]


def test_plain_answers_keep_what_is_not_markdown() -> None:
    from bot.faq import plain_answer

    assert plain_answer("Email front_desk@example.org or see https://x.org/my_page") == \
        "Email front_desk@example.org or see https://x.org/my_page"
    assert plain_answer("2 * 3 = 6 and a < b > c") == "2 * 3 = 6 and a < b > c"
    assert plain_answer("# Hours\n- **Mon**: _closed_\n- `Tue`: open") == "Hours Mon: closed Tue: open"


@pytest.mark.parametrize("text", ["This c**ure**s back pain.", "It cu\u200bres back pain.", "**$**120 a session."])
def test_markdown_or_invisible_characters_cannot_hide_a_claim_from_the_review(text) -> None:  # type: ignore[no-untyped-def]
    from bot.faq import review
    from bot.faq_store import Content

    assert review(Content("Q?", text))
