"""Staff answers in the console, in Debian's chromium: write an answer to an unanswered question, preview it,
publish it and see the widget answer with it; markup in an answer never runs; history, compare, roll back, the
audit log and the downloads; clinic details and a reviewer's approval."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import test_browser
from tests.conftest import LiveServer
from tests.test_browser import HOST, SHADOW, STAFF_TOKEN, ask, check_axe, open_widget, shot, staff_sign_in

pytestmark = pytest.mark.browser
# The browser tests' fixtures: one chromium for the module, browsing contexts checked for privacy afterwards.
browser = test_browser.browser
browse = test_browser.browse

REVIEWER_TOKEN = "test-reviewer-token-9876543210"
GIFT_Q = "Do you sell gift cards?"
GIFT_A = "Yes. Gift cards for any session are available at the front desk, or call us and we post one to you."
HOSTILE_Q = "Is there a waiting room?"
HOSTILE_A = ('Yes, a quiet waiting room with water. <img src=x onerror="window.__pwned=1"> '
             "<script>window.__pwned=1</script> Take a seat there until we call you.")
FRIEND_Q = "Can I bring a friend to my appointment?"
FRIEND_V1 = "Yes, a friend or family member may sit in on your session."
FRIEND_V2 = "Yes, a friend or family member may sit in on your first session."
FRIEND_V3 = "Yes, one friend may sit in on your session; tell us when you book."
PWNED = "typeof window.__pwned"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, built_index: Path) -> Iterator[LiveServer]:
    """This module's own server: the answers published here must not change what other tests' questions get,
    and it signs in a reviewer too (REVIEWER_TOKEN)."""
    data = tmp_path_factory.mktemp("live-faq") / "data"
    shutil.copytree(built_index, data)
    server = LiveServer(data, env={"REVIEWER_TOKEN": REVIEWER_TOKEN})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def staff(server: LiveServer, method: str, path: str, token: str = STAFF_TOKEN, **kwargs: Any) -> httpx.Response:
    """One staff API call, outside the browser (set-up and cross-checks)."""
    return httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                         **kwargs)


def published_entry(server: LiveServer, question: str, answer: str, author: str = "Ann") -> dict[str, Any]:
    """An entry created and published through the API (approved by a reviewer if the review flags it)."""
    created = staff(server, "POST", "/staff/api/faq", json={"question": question, "answer": answer,
                                                            "applies_to": [], "author": author})
    assert created.status_code == 201, created.text
    entry_id = created.json()["id"]
    entry = staff(server, "POST", f"/staff/api/faq/{entry_id}/publish", json={"actor": author}).json()
    if entry["status"] == "pending":
        entry = staff(server, "POST", f"/staff/api/faq/{entry_id}/approve", REVIEWER_TOKEN, json={"actor": "Ben"}).json()
    assert entry["status"] == "published", entry
    return entry


def shot_of(page: Any, selector: str, name: str) -> None:
    """A screenshot of one part of the page (the console is long)."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    sx, sy = page.evaluate("[window.scrollX, window.scrollY]")
    x, y = max(0, box["x"] + sx - 12), max(0, box["y"] + sy - 12)
    shot(page, name, full_page=True, clip={"x": x, "y": y, "width": box["width"] + 24, "height": box["height"] + 24})


def open_console(page: Any, server: LiveServer, token: str = STAFF_TOKEN) -> None:
    staff_sign_in(page, server.url, token)
    page.locator("#console").wait_for(state="visible")


def test_write_preview_publish_and_the_widget_answers_with_it(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    url = live_server.url
    # A patient asks what the articles do not cover.
    asked = httpx.post(url + "/chat", json={"message": GIFT_Q, "session_id": None}, timeout=60)
    assert asked.json()["kind"] == "handoff"

    b = browse(viewport={"width": 1280, "height": 900})
    page = b.page()
    open_console(page, live_server)
    assert page.locator("#role").inner_text() == "Role: editor"
    # The day's share answered (the handoff above: 0%) is a point on the chart's line, and said in words.
    page.locator("#chart svg .share-dot").last.wait_for()
    assert page.locator("#share-summary").text_content().startswith("Share answered from the articles (the line): 0%")
    group = page.locator("#unanswered-list tr.group", has_text="gift cards")
    group.wait_for()
    assert group.locator(".badge").text_content() == "Still unanswered"

    write = group.get_by_role("button", name="Write an answer")
    write.click()
    assert write.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")  # closes the form, focus back on its button
    assert write.get_attribute("aria-expanded") == "false"
    assert write.evaluate("(n) => n === document.activeElement")
    page.keyboard.press("Enter")
    assert write.get_attribute("aria-expanded") == "true"
    form = page.locator("#unanswered-list tr.compose form")
    assert form.get_by_label("Question").input_value().lower() == GIFT_Q.lower()  # prefilled, editable
    assert page.evaluate("document.activeElement.name") == "answer"
    form.get_by_label("Answer").fill(GIFT_A)
    assert form.locator(".counter").text_content() == f"{len(GIFT_A)} / 1500 characters"
    assert form.get_by_label("Answer").get_attribute("maxlength") == "1500"
    form.get_by_label("Applies to").fill("gift card, gift voucher")
    form.get_by_label("Your name").fill("Ann")
    with page.expect_response(lambda r: r.url == url + "/staff/api/faq" and r.request.method == "POST") as created:
        form.get_by_role("button", name="Save draft").click()
    assert created.value.status == 201
    sent = json.loads(created.value.request.post_data or "{}")
    assert sent["author"] == "Ann" and sent["applies_to"] == ["gift card", "gift voucher"]
    assert sent["unanswered_ids"] and all(isinstance(i, int) for i in sent["unanswered_ids"])
    entry = created.value.json()
    assert entry["status"] == "draft" and entry["version"] == 1

    page.get_by_text("Saved as a draft").wait_for()
    page.get_by_role("button", name="Open in Answers").click()
    editor = page.locator("#editor")
    editor.locator("#editor-h").wait_for()
    assert page.evaluate("document.activeElement.id") == "editor-h"
    row = page.locator(f"#answers-list tr.entry[data-id='{entry['id']}']")
    assert row.locator(".badge").text_content() == "Draft"
    assert editor.get_by_label("Your name").input_value() == "Ann"  # remembered in this tab
    assert editor.get_by_label("Answer").input_value() == GIFT_A
    assert editor.get_by_role("button", name="Approve").is_hidden()  # an editor never sees Approve

    # A paraphrase, previewed: the draft answers it, shown as the widget would.
    editor.get_by_label("Ask as a patient").fill("Can I buy a gift card?")
    editor.get_by_role("button", name="Preview", exact=True).click()
    result = editor.locator(".preview-result")
    result.locator(".verdict").wait_for()
    assert result.locator(".verdict").text_content().startswith("This answer was used"), result.inner_text()
    assert "front desk" in result.locator(".bubble .reply-text").text_content()
    cites = result.locator(".bubble .citation").all_text_contents()
    assert any(c.startswith("Clinic FAQ: ") for c in cites), cites
    check_axe(page, "answers: the editor with a preview")
    shot_of(page, "#answers", "staff-faq.png")

    editor.get_by_role("button", name="Publish", exact=True).click()
    editor.locator(".entry-meta .badge", has_text="Published").wait_for()
    assert editor.locator(".note").text_content() == "Published: the bot answers from it now."
    row.locator(".badge", has_text="Published").wait_for()
    assert editor.get_by_role("button", name="Publish", exact=True).is_hidden()
    assert editor.get_by_role("button", name="Unpublish").is_visible()

    # The widget on the demo page, in another tab: the new answer, cited as the clinic's FAQ.
    other = b.page()
    open_widget(other, url)
    reply = ask(other, GIFT_Q)
    assert reply.get_attribute("data-kind") == "answer", reply.inner_text()
    assert "front desk" in reply.locator(".text").inner_text()
    chip = reply.locator(".citation", has_text="Clinic FAQ: ")
    assert chip.count() == 1, reply.locator(".citation").all_text_contents()
    assert chip.locator("a").get_attribute("href").endswith("/articles/faq/" + entry["slug"])

    # The group, run through the bot again, is answered now.
    page.get_by_role("button", name="Refresh unanswered questions").click()
    page.locator("#unanswered-list tr.group", has_text="gift cards").locator(".badge", has_text="Answered now").wait_for()


def test_markup_in_an_answer_is_text_in_the_console_the_widget_and_its_page(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    url = live_server.url
    entry = published_entry(live_server, HOSTILE_Q, HOSTILE_A)
    b = browse()
    page = b.page()
    open_console(page, live_server)
    page.locator("#answers-list button.linkish", has_text=HOSTILE_Q).click()
    editor = page.locator("#editor")
    editor.locator("#editor-h").wait_for()
    assert editor.get_by_label("Answer").input_value() == HOSTILE_A
    editor.get_by_label("Ask as a patient").fill(HOSTILE_Q)
    editor.get_by_role("button", name="Preview", exact=True).click()
    bubble = editor.locator(".preview-result .bubble")
    bubble.wait_for()
    assert "Take a seat" in bubble.locator(".reply-text").text_content()
    assert page.evaluate("document.querySelectorAll('#console img, #console script').length") == 0
    page.wait_for_timeout(300)
    assert page.evaluate(PWNED) == "undefined"

    widget = b.page()
    open_widget(widget, url)
    reply = ask(widget, HOSTILE_Q)
    assert reply.get_attribute("data-kind") == "answer", reply.inner_text()
    assert "waiting room" in reply.locator(".text").text_content()
    assert widget.evaluate(f"{SHADOW}.querySelectorAll('img, script').length") == 0
    assert widget.evaluate("document.querySelectorAll('[onerror]').length") == 0
    widget.wait_for_timeout(300)
    assert widget.evaluate(PWNED) == "undefined"

    article = b.page()
    resp = article.goto(url + entry["url"])
    assert resp is not None and resp.status == 200
    main = article.locator("main")
    assert "Take a seat there" in main.inner_text()
    assert article.evaluate("document.querySelectorAll('main img, main script, [onerror]').length") == 0
    article.wait_for_timeout(300)
    assert article.evaluate(PWNED) == "undefined"
    assert b.dialogs == []
    assert page.locator(HOST).count() == 0  # the console carries no widget


def test_history_compare_conflict_roll_back_audit_and_downloads(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    entry = published_entry(live_server, FRIEND_Q, FRIEND_V1)
    page = browse(viewport={"width": 1280, "height": 900}).page()
    open_console(page, live_server)
    page.locator("#answers-list button.linkish", has_text=FRIEND_Q).click()
    editor = page.locator("#editor")
    editor.locator("#editor-h").wait_for()
    answer = editor.get_by_label("Answer")
    editor.get_by_label("Your name").fill("Ann")

    # A second version, saved as a draft while version 1 stays live.
    answer.fill(FRIEND_V2)
    with page.expect_response(lambda r: r.request.method == "PUT") as saved:
        editor.get_by_role("button", name="Save changes").click()
    assert json.loads(saved.value.request.post_data or "{}")["base_version"] == 1
    editor.locator(".note", has_text="Saved as version 2").wait_for()
    assert "Version 1 is live" in editor.locator(".entry-meta").inner_text()

    # Someone else saves version 3 meanwhile: this tab's save is refused, its text kept.
    other = staff(live_server, "PUT", f"/staff/api/faq/{entry['id']}",
                  json={"question": FRIEND_Q, "answer": FRIEND_V3, "applies_to": [], "author": "Cy", "base_version": 2})
    assert other.status_code == 200 and other.json()["version"] == 3
    mine = FRIEND_V2 + " Bring them along."
    answer.fill(mine)
    with page.expect_response(lambda r: r.request.method == "PUT") as refused:
        editor.get_by_role("button", name="Save changes").click()
    assert refused.value.status == 409
    alert = editor.locator("p.error[role=alert]")
    alert.wait_for()
    assert alert.text_content() == "Someone else saved this entry first; reload to see their version."
    assert answer.input_value() == mine
    editor.get_by_role("button", name="Reload their version").click()
    editor.locator(".note", has_text="Loaded version 3").wait_for()
    assert answer.input_value() == FRIEND_V3
    # Version 1 stays live meanwhile; the newest version is a draft that can be published.
    assert editor.locator(".entry-meta .badge").text_content() == "Draft"
    assert "Version 1 is live; this version is not yet." in editor.locator(".entry-meta").inner_text()
    assert editor.get_by_role("button", name="Publish", exact=True).is_visible()

    # History: newest first, with who saved each version.
    rows = editor.locator("tr.version")
    assert rows.evaluate_all("(rs) => rs.map((r) => r.dataset.version)") == ["3", "2", "1"]
    assert [rows.nth(i).locator("td").nth(1).text_content() for i in range(3)] == ["Cy", "Ann", "Ann"]
    editor.get_by_label("Compare version").select_option("1")
    editor.get_by_label("with version").select_option("3")
    editor.get_by_role("button", name="Compare", exact=True).click()
    diff = editor.locator(".diff")
    diff.wait_for()
    inserted = " ".join(diff.locator("ins").all_text_contents())
    deleted = " ".join(diff.locator("del").all_text_contents())
    assert "book." in inserted and "family" in deleted, (inserted, deleted)
    assert diff.evaluate("(n) => n.querySelectorAll('*').length") == diff.evaluate(
        "(n) => n.querySelectorAll('ins, del').length")  # only ins/del elements, the rest is text
    check_axe(page, "history, a comparison and a conflict")
    shot_of(page, "#editor", "staff-faq-history.png")

    # Roll back to version 1: it had been published, so it is live again at once.
    editor.get_by_role("button", name="Roll back to this version: version 1").click()
    editor.locator(".note", has_text="Rolled back to version 1").wait_for()
    assert editor.locator(".note").text_content() == "Rolled back to version 1: saved as version 4 and live now."
    assert answer.input_value() == FRIEND_V1
    now = staff(live_server, "GET", f"/staff/api/faq/{entry['id']}").json()
    assert (now["version"], now["status"], now["published_version"], now["answer"]) == (4, "published", 4, FRIEND_V1)

    editor.get_by_role("button", name="Unpublish").click()
    editor.locator(".entry-meta .badge", has_text="Unpublished").wait_for()

    # The audit log lists every action, and downloads as CSV.
    page.get_by_role("button", name="Refresh the audit log").click()
    page.locator("#audit-list tr.audit-item[data-action=rollback]").wait_for()
    actions = set(page.locator("#audit-list tr.audit-item").evaluate_all("(rs) => rs.map((r) => r.dataset.action)"))
    assert {"create", "publish", "save", "rollback", "unpublish"} <= actions, actions
    assert "rolled back" in page.locator("#audit-list").inner_text()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download CSV").click()
    assert dl.value.suggested_filename.endswith(".csv")
    csv_text = Path(dl.value.path()).read_text(encoding="utf-8")
    assert csv_text.startswith("id,at,actor,action") and "rollback" in csv_text and "Cy" in csv_text

    # Export: every entry as Markdown in a zip.
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export as zip").click()
    assert dl.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(Path(dl.value.path()).read_bytes())) as zf:
        names = zf.namelist()
        assert f"faq/{entry['slug']}.md" in names, names
        assert FRIEND_V1 in zf.read(f"faq/{entry['slug']}.md").decode()
    check_axe(page, "audit log after downloads")


def test_clinic_details_and_a_reviewers_approval(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse(viewport={"width": 1280, "height": 900})
    page = b.page()
    open_console(page, live_server)
    details = page.locator("#details")
    details.locator("form.detail").first.wait_for()
    keys = details.locator("form.detail").evaluate_all("(fs) => fs.map((f) => f.dataset.key)")
    assert keys == ["hours", "location", "parking", "wear_bring", "cancellation", "insurance", "price", "payment",
                    "first_visit", "duration"]
    details.get_by_label("Your name").fill("Ann")

    wear = details.locator("form.detail[data-key=wear_bring]")
    wear.get_by_role("textbox", name="What to wear or bring").fill("Wear loose, comfortable clothes.")
    wear.get_by_role("button", name="Save: What to wear or bring").click()
    wear.locator(".note", has_text="Saved and live.").wait_for()
    assert wear.locator(".badge").text_content() == "Published"

    hours = details.locator("form.detail[data-key=hours]")
    hours.get_by_role("textbox", name="Opening hours").fill("Monday to Friday, 9am to 5pm.")
    hours.get_by_role("button", name="Save: Opening hours").click()
    hours.locator(".note", has_text="reviewer").wait_for()
    assert hours.locator(".badge").text_content() == "Waiting for review"
    assert any(f.startswith("clinic fact: hours") for f in hours.locator(".flag").all_text_contents())
    check_axe(page, "clinic details, one waiting for review")
    shot_of(page, "#details", "staff-details.png")

    # The editor cannot approve; a reviewer (another person) can.
    row = page.locator("#answers-list tr.entry", has_text="opening hours")
    row.locator(".badge", has_text="Waiting for review").wait_for()
    row.locator("button.linkish").click()
    page.locator("#editor #editor-h").wait_for()
    assert page.locator("#editor").get_by_role("button", name="Approve").is_hidden()

    reviewer = browse().page()
    open_console(reviewer, live_server, REVIEWER_TOKEN)
    assert reviewer.locator("#role").inner_text() == "Role: reviewer"
    reviewer.locator("#answers-list tr.entry", has_text="opening hours").locator("button.linkish").click()
    editor = reviewer.locator("#editor")
    editor.locator("#editor-h").wait_for()
    editor.get_by_label("Your name").fill("Ben")
    editor.get_by_role("button", name="Approve").click()
    editor.locator(".entry-meta .badge", has_text="Published").wait_for()
    assert editor.get_by_role("button", name="Approve").is_hidden()
    assert "approved by Ben" in editor.locator("tr.version").first.inner_text()

    answer = httpx.post(live_server.url + "/chat", json={"message": "What are your opening hours?", "session_id": None},
                        timeout=60).json()
    assert "Monday to Friday" in answer["reply"], answer
