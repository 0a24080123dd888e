"""The widget and the staff console in Debian's chromium (Playwright, never a downloaded browser)."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, STAFF_TOKEN, unavailable

pytestmark = pytest.mark.browser

DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
EMERGENCY = "I suddenly can't control my bladder and my groin is numb"
XSS = "<img src=x onerror=alert(1)>"
HOST = "#clinic-chat-widget"

# JS run in the page: the widget's shadow root and what the tests read from it.
SHADOW = "document.getElementById('clinic-chat-widget').shadowRoot"
FOCUS_ON_LAUNCHER = """() => {
  const host = document.activeElement;
  return !!(host && host.id === 'clinic-chat-widget' && host.shadowRoot.activeElement
            && host.shadowRoot.activeElement.classList.contains('launcher'));
}"""
FOCUS_IN_INPUT = """() => {
  const host = document.activeElement;
  return !!(host && host.id === 'clinic-chat-widget' && host.shadowRoot.activeElement
            && host.shadowRoot.activeElement.id === 'ccw-input');
}"""
WATCH_STREAMING = """() => {
  const root = document.getElementById('clinic-chat-widget').shadowRoot;
  window.__streamed = 0;
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes)
      if (n.classList && n.classList.contains('streaming')) window.__streamed += 1;
  }).observe(root, {subtree: true, childList: true});
}"""
SIZES = """() => {
  const root = document.getElementById('clinic-chat-widget').shadowRoot;
  const box = (sel) => { const r = root.querySelector(sel).getBoundingClientRect();
                         return [r.x, r.y, r.width, r.height].map((v) => Math.round(v * 2) / 2); };
  const font = (sel) => getComputedStyle(root.querySelector(sel)).fontSize;
  return {launcher: box('.launcher'), panel: box('.panel'), header: box('.header'), input: box('textarea'),
          greeting: box('.msg.bot .text'), chip: box('.chip'), title_font: font('.title'),
          text_font: font('.msg.bot .text'), chip_font: font('.chip'), input_font: font('textarea'),
          family: getComputedStyle(root.querySelector('.msg.bot .text')).fontFamily};
}"""
# WCAG contrast of each element's text against the first opaque background behind it.
CONTRAST = """(selectors) => {
  const root = document.getElementById('clinic-chat-widget').shadowRoot;
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = (el) => { for (let n = el; n; n = n.parentElement || (n.getRootNode().host || null)) {
                         const c = rgb(getComputedStyle(n).backgroundColor); if (c.length === 3 || c[3] > 0.9) return c; }
                       return [255, 255, 255]; };
  const out = {};
  for (const sel of selectors) {
    const el = root.querySelector(sel);
    if (!el) { out[sel] = null; continue; }
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    out[sel] = Math.round(((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) * 100) / 100;
  }
  return out;
}"""


AXE = ROOT / "tests" / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
STARTING = "The assistant is starting up; try again in a few seconds."
# Every change a screen reader would read out: text added inside a live region that is not aria-hidden.
WATCH_LIVE = """() => {
  const root = document.getElementById('clinic-chat-widget').shadowRoot;
  const liveOf = (node) => {
    for (let n = node.nodeType === 1 ? node : node.parentElement; n; n = n.parentElement) {
      if (n.getAttribute('aria-hidden') === 'true') return null;
      const live = n.getAttribute('aria-live'), role = n.getAttribute('role');
      if (live === 'off') return null;
      if (live || ['log', 'status', 'alert'].includes(role)) return n;
    }
    return null;
  };
  window.__live = [];
  window.__streaming = [];
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes)
        if (n.classList && n.classList.contains('streaming')) window.__streaming.push(n.getAttribute('aria-hidden'));
      const region = liveOf(r.target);
      if (!region) continue;
      const text = r.type === 'characterData' ? r.target.data
        : Array.from(r.addedNodes).map((n) => n.textContent).join('');
      if (text.trim()) window.__live.push({kind: region.getAttribute('role') || region.getAttribute('aria-live'),
                                           inLog: !!region.closest('.log'), text});
    }
  }).observe(root, {subtree: true, childList: true, characterData: true});
}"""
# Every visible control of the widget and its size.
TARGETS = """() => {
  const root = document.getElementById('clinic-chat-widget').shadowRoot;
  return Array.from(root.querySelectorAll('button, a[href], input, textarea'))
    .filter((n) => n.getClientRects().length && getComputedStyle(n).visibility !== 'hidden')
    .map((n) => { const r = n.getBoundingClientRect();
                  return {what: n.className || n.tagName, name: n.getAttribute('aria-label') || n.textContent.trim(),
                          w: Math.round(r.width * 10) / 10, h: Math.round(r.height * 10) / 10}; });
}"""
# What is focused, inside the widget or on the page.
FOCUSED = """() => {
  const a = document.activeElement;
  if (a && a.id === 'clinic-chat-widget') { const n = a.shadowRoot.activeElement;
    return n ? 'widget:' + (n.id || n.className || n.tagName) : 'widget'; }
  return a ? 'page:' + a.tagName + (a.id ? '#' + a.id : '') : 'none';
}"""
STORED = "Object.keys(localStorage).filter((k) => k.startsWith('clinic-chat')).map((k) => localStorage.getItem(k))"


def _unavailable(reason: str) -> None:
    """Without a browser the browser tests fail, saying why: they never skip into green."""
    unavailable(f"browser tests cannot run: {reason}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright's sync API."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    if CHROMIUM is None:
        _unavailable("no chromium on PATH (apt-get install chromium); browsers are never downloaded")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Browsing:
    """One browser context: every request and dialog recorded, checked for privacy at the end."""

    def __init__(self, browser: Any, base: str, **options: Any) -> None:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("reduced_motion", "reduce")
        self.base = base
        self.context = browser.new_context(**options)
        self.context.set_default_timeout(20_000)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))

    def page(self) -> Any:
        """A new tab that records dialogs and script errors."""
        page = self.context.new_page()
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def check_privacy(self) -> None:
        """Nothing left the bot's origin, no cookie was set, nothing popped up, no script failed."""
        origin = urlsplit(self.base).netloc
        foreign = [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != origin]
        assert not foreign, f"requests left the bot's origin: {foreign}"
        assert self.context.cookies() == []
        assert self.dialogs == []
        assert self.errors == []


@pytest.fixture
def browse(browser, live_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Make browsing contexts against the live server; each is checked for privacy afterwards."""
    made: list[Browsing] = []

    def factory(**options: Any) -> Browsing:
        b = Browsing(browser, live_server.url, **options)
        made.append(b)
        return b

    yield factory
    try:
        for b in made:
            b.check_privacy()
    finally:
        for b in made:
            b.context.close()


def open_widget(page: Any, base: str, path: str = "/") -> None:
    """Load a page and open the chat; the greeting and chips are on screen."""
    page.goto(base + path)
    page.locator(f"{HOST} .launcher").click()
    page.locator(f"{HOST} .chip").first.wait_for()


def ask(page: Any, text: str) -> Any:
    """Type a message, press Enter, return the new bot reply's locator once it is complete."""
    before = page.locator(f"{HOST} .msg.bot[data-kind]").count()
    page.locator("#ccw-input").fill(text)
    page.locator("#ccw-input").press("Enter")
    reply = page.locator(f"{HOST} .msg.bot[data-kind]").nth(before)
    reply.wait_for()
    return reply


def shot(page: Any, name: str, **kwargs: Any) -> None:
    DOCS.mkdir(exist_ok=True)
    page.mouse.move(0, 0)  # no hover effect left where the last click was
    page.screenshot(path=str(DOCS / name), **kwargs)


def check_axe(page: Any, state: str) -> None:
    """axe-core (npm, tests/services.sh) with the WCAG 2.2 A/AA rules: no violation on the page and the widget."""
    if not AXE.exists():
        _unavailable(f"{AXE} is missing (tests/services.sh runs npm ci in tests/.axe)")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found = page.evaluate("""async (tags) => {
      const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
      return r.violations.map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' '))}));
    }""", AXE_TAGS)
    assert found == [], f"axe violations ({state}): {found}"


# --- the widget --------------------------------------------------------------------------------------------
def test_streamed_answer_with_citation_call_button_and_feedback(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    page.goto(live_server.url + "/")
    check_axe(page, "closed")
    open_widget(page, live_server.url)
    shadow = page.locator(HOST)
    # Greeting, disclaimer once, 3-4 suggested questions from /widget/config.
    assert "automated assistant" in shadow.locator(".msg.bot.intro").inner_text()
    assert shadow.locator(".intro-note").count() == 1 and "not medical advice" in shadow.locator(".intro-note").inner_text()
    assert 3 <= shadow.locator(".chip").count() <= 4
    assert shadow.locator(".foot p").inner_text().endswith("In an emergency call 911.")
    dialog = shadow.locator(".panel")
    assert dialog.get_attribute("role") == "dialog" and dialog.get_attribute("aria-labelledby") == "ccw-title"
    assert dialog.get_attribute("aria-modal") == "false"  # on a desktop the page stays usable beside it
    log = shadow.locator(".log")
    assert log.get_attribute("role") == "log" and log.get_attribute("aria-live") == "off"
    assert page.evaluate(f"{SHADOW}.querySelector('.root').lang") == "en"
    check_axe(page, "open, greeting")

    page.evaluate(WATCH_STREAMING)
    with page.expect_response(lambda r: r.url.endswith("/chat/stream")) as streamed:
        reply = ask(page, "what is the psoas?")
    resp = streamed.value
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    # Sentences were on screen before the whole reply arrived (Chrome cannot hand over a streamed body later).
    assert page.evaluate("window.__streamed") >= 1
    assert not any(u.endswith("/chat") for u in b.requests)  # no fallback was needed

    assert reply.get_attribute("data-kind") == "answer"
    assert "psoas" in reply.locator(".text").inner_text().lower()
    citation = reply.locator(".citation").first
    assert citation.inner_text() == "The psoas muscle"
    # The citation links to the article's page on the bot itself, which serves it.
    href = citation.locator("a").get_attribute("href")
    assert href == f"{live_server.url.rstrip('/')}/articles/psoas-muscle"
    article = page.request.get(href)
    assert article.status == 200 and "<h1>The psoas muscle</h1>" in article.text()
    call = reply.locator("a.action[data-type=call]")
    assert call.inner_text() == "Call the clinic" and call.get_attribute("href") == "tel:+18284587218"
    assert "not medical advice" in reply.locator(".disclaimer").inner_text()
    assert shadow.locator(".intro-note").count() == 1  # the standing disclaimer is not repeated
    assert shadow.locator(".chips .chip").count() >= 1  # follow-up suggestions as chips
    check_axe(page, "answer with citation, actions, feedback and chips")
    shot(page, "widget-desktop.png")

    reply.get_by_role("button", name="No, not helpful").click()
    check_axe(page, "thumbs-down comment form")
    reply.get_by_role("button", name="No, not helpful").click()  # a second press changes nothing
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as fb:
        reply.get_by_role("button", name="Send").click()
    assert fb.value.status == 201
    reply.get_by_text("Thanks for your feedback.").wait_for()
    assert json.loads(fb.value.request.post_data or "{}")["rating"] == "down"

    # A suggestion chip asks its question.
    chip = shadow.locator(".chips .chip").first
    question = chip.inner_text()
    chip.click()
    shadow.locator(".msg.user .text", has_text=question).wait_for()
    page.locator(f"{HOST} .msg.bot[data-kind]").nth(1).wait_for()
    # Opening, answering twice: /widget/config was fetched once.
    assert sum(urlsplit(u).path == "/widget/config" for u in b.requests) == 1


def test_thumbs_down_with_a_comment_reaches_the_staff_feedback_list(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    page = browse().page()
    open_widget(page, live_server.url)
    reply = ask(page, "What is myofascial release?")
    reply.get_by_role("button", name="No, not helpful").click()
    reply.get_by_label("What was missing? (optional)").fill("I wanted to know how long a session takes")
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as fb:
        reply.get_by_role("button", name="Send").click()
    assert fb.value.status == 201
    items = httpx.get(live_server.url + "/staff/api/feedback",
                      headers={"Authorization": f"Bearer {STAFF_TOKEN}"}).json()["items"]
    assert any(i["comment"] == "I wanted to know how long a session takes" for i in items)


def stream_body(reply: dict[str, Any], sentences: list[str]) -> str:
    """A /chat/stream response: sentence events, then the reply event."""
    events = [f"event: sentence\r\ndata: {json.dumps({'text': t})}\r\n\r\n" for t in sentences]
    return "".join(events) + f"event: reply\r\ndata: {json.dumps(reply)}\r\n\r\n"


def test_one_announcement_per_reply_and_emergencies_as_one_alert(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    page.evaluate(WATCH_LIVE)
    # A reply streamed in three sentences (as the LLM mode sends it), then the final reply with chips.
    sentences = ["The psoas is a deep muscle.", "It joins the spine to the legs.", "It helps you walk."]
    reply = {"session_id": "s1", "kind": "answer", "reply": " ".join(sentences), "reply_id": "r1",
             "citations": [{"title": "The psoas muscle", "source": "psoas-muscle.md", "url": "/articles/psoas-muscle"}],
             "actions": [{"type": "call", "label": "Call the clinic", "value": "tel:+18284587218"}],
             "suggestions": ["Where is the psoas?", "What is myofascial release?"], "disclaimer": "Not medical advice."}
    page.route("**/chat/stream", lambda route: route.fulfill(status=200, body=stream_body(reply, sentences),
                                                              headers={"content-type": "text/event-stream"}))
    ask(page, "what is the psoas?")
    page.wait_for_timeout(300)
    live = page.evaluate("window.__live")
    assert page.evaluate("window.__streaming") == ["true"]  # the streaming bubble was never in the a11y tree
    assert live == [{"kind": "polite", "inLog": False, "text": reply["reply"]}], live

    # The accessibility tree (CDP): the log is not a live region; one polite region holds the reply once.
    cdp = page.context.new_cdp_session(page)
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]

    def prop(node: dict[str, Any], name: str) -> Any:
        return next((p["value"].get("value") for p in node.get("properties", []) if p["name"] == name), None)

    logs = [n for n in nodes if n.get("role", {}).get("value") == "log"]
    assert len(logs) == 1 and prop(logs[0], "live") in (None, "off")
    by_id = {n["nodeId"]: n for n in nodes}

    def text_in(node: dict[str, Any]) -> list[str]:
        if node.get("role", {}).get("value") == "StaticText" and not node.get("ignored"):
            return [node["name"]["value"]]
        return [t for c in node.get("childIds", []) if c in by_id for t in text_in(by_id[c])]

    regions = {prop(n, "live"): text_in(n) for n in nodes if prop(n, "live") in ("polite", "assertive")
               and prop(n, "root") in (None, True)}
    assert regions.get("polite") == [reply["reply"]], regions

    # An emergency: one alert, outside the log, and nothing polite on top of it.
    page.unroute("**/chat/stream")
    page.evaluate("window.__live = []")
    node = ask(page, EMERGENCY)
    assert node.get_attribute("data-kind") == "emergency" and node.get_attribute("role") is None
    page.wait_for_timeout(300)
    live = page.evaluate("window.__live")
    assert len(live) == 1 and live[0]["kind"] == "alert" and not live[0]["inLog"], live
    assert "911" in live[0]["text"]
    check_axe(page, "emergency")


# --- the staff console (before the markup tests, so its screenshot shows ordinary questions) ------------
def staff_sign_in(page: Any, base: str, token: str = STAFF_TOKEN) -> None:
    page.goto(base + "/staff")
    page.locator("#token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_staff_wrong_token_is_refused(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    staff_sign_in(page, live_server.url, "not-the-token-000000")
    page.locator("#signin-msg", has_text="not right").wait_for()
    assert page.locator("#console").is_hidden()
    assert page.evaluate("Object.keys(sessionStorage).length") == 0


def test_staff_console_search_ask_unanswered_and_reindex(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse(viewport={"width": 1280, "height": 900})
    page = b.page()
    # A patient asks what the articles do not cover, through the widget.
    open_widget(page, live_server.url)
    for question in ("do you offer gift cards?", "Can I buy a gift card?"):
        assert ask(page, question).get_attribute("data-kind") == "handoff"

    staff_sign_in(page, live_server.url)
    page.locator("#console").wait_for(state="visible")
    group = page.locator("#unanswered-list tr.group", has_text="gift card")
    group.wait_for()
    assert int(group.locator(".count").inner_text()) >= 2
    page.locator("#chart svg rect").first.wait_for()
    assert page.locator("#answered-share .kpi-value").inner_text().endswith("%")

    page.locator("#search-q").fill("what is the psoas")
    page.get_by_role("button", name="Search").click()
    first = page.locator("#search-results .passage").first
    first.wait_for()
    assert "The psoas muscle" in first.inner_text() and "psoas" in first.locator(".passage-text").inner_text()

    page.locator("#ask-q").fill("What is the psoas?")
    page.get_by_role("button", name="Ask", exact=True).click()
    card = page.locator("#ask-result .reply")
    card.wait_for()
    assert card.locator(".badge").inner_text().lower() == "answer"
    assert "The psoas muscle" in card.locator(".citation").first.inner_text()
    assert "tel:+18284587218" in card.locator(".actions").inner_text()
    page.locator("#lookup").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "staff.png", full_page=True)
    page.get_by_text("Show the numbers as a table").click()
    page.locator("#stats-table tbody tr").first.wait_for()
    check_axe(page, "staff console with results, unanswered questions and the table open")

    page.get_by_role("button", name="Re-index now").click()
    page.locator("#reindex-result .counts").wait_for()
    assert "Passages" in page.locator("#reindex-result").inner_text()

    # Handled groups leave the list; a reload keeps the sign-in (sessionStorage).
    group.get_by_role("button", name="Mark handled").click()
    page.locator("#unanswered-list tr.group", has_text="gift card").wait_for(state="detached")
    page.reload()
    page.locator("#console").wait_for(state="visible")
    page.get_by_role("button", name="Sign out").click()
    page.locator("#signin").wait_for(state="visible")
    assert page.evaluate("Object.keys(sessionStorage).filter((k) => k.includes('staff')).length") == 0


def test_staff_console_names_every_button_and_has_a_skip_link(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    # A question that was only markup is stored empty: it shows as "(no text)", not as a blank row.
    groups = {"groups": [{"question": "", "count": 2, "last_seen": "2026-12-02T10:00:00+00:00", "ids": [1, 2],
                          "variants": [""]},
                         {"question": "do you sell gift cards?", "count": 1, "last_seen": "2026-12-02T11:00:00+00:00",
                          "ids": [3], "variants": []}], "total": 3}
    page.route("**/staff/api/unanswered", lambda r: r.fulfill(status=200, body=json.dumps(groups),
                                                               headers={"content-type": "application/json"}))
    page.goto(live_server.url + "/staff")
    page.keyboard.press("Tab")
    skip = page.locator("a.skip")
    assert skip.evaluate("(n) => n === document.activeElement") and skip.inner_text() == "Skip to main content"
    assert skip.bounding_box()["x"] >= 0  # visible when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.locator("#token").fill(STAFF_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#unanswered-list tr.group").nth(1).wait_for()
    assert page.locator("#unanswered-list tr.group .question").all_inner_texts() == ["(no text)", "do you sell gift cards?"]
    assert page.locator("#unanswered-list .variants li").all_inner_texts() == ["(no text)"]
    for name in ("Refresh the numbers", "Refresh unanswered questions", "Refresh thumbs-down replies",
                 "Mark handled: (no text)", "Mark handled: do you sell gift cards?"):
        assert page.get_by_role("button", name=name, exact=True).count() == 1, name
    names = page.locator("button:visible").evaluate_all(
        "(bs) => bs.map((b) => b.getAttribute('aria-label') || b.textContent.trim())")
    assert len(names) == len(set(names)), names  # no two buttons share a name
    check_axe(page, "staff console, named buttons")


def test_staff_console_explains_a_missing_token(browse, live_server, tmp_path, built_index) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import LiveServer

    data = tmp_path / "data"
    shutil.copytree(built_index, data)
    server = LiveServer(data, env={"STAFF_TOKEN": ""})
    try:
        server.wait_ready()
        b = browse()
        b.base = server.url
        page = b.page()
        page.goto(server.url + "/staff")
        page.locator("#notoken").wait_for(state="visible")
        text = page.locator("#notoken").inner_text()
        assert "STAFF_TOKEN" in text and "restart" in text
        assert page.locator("#signin").is_hidden()
    finally:
        server.stop()


# --- the widget, continued -----------------------------------------------------------------------------
def test_emergency_is_distinct_with_911_first(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    reply = ask(page, EMERGENCY)
    assert reply.get_attribute("data-kind") == "emergency"
    assert "emergency" in (reply.get_attribute("class") or "")
    style = reply.evaluate("(n) => { const s = getComputedStyle(n); return [s.borderTopColor, s.borderTopWidth]; }")
    assert style == ["rgb(176, 0, 32)", "3px"]
    first = reply.locator("a.action").first
    assert first.get_attribute("data-type") == "emergency" and first.get_attribute("href") == "tel:911"
    assert "911" in first.inner_text()
    assert first.evaluate("(n) => getComputedStyle(n).backgroundColor") == "rgb(176, 0, 32)"
    assert "911" in reply.locator(".text").inner_text()
    # Read out once, as an alert outside the conversation log.
    alert = page.locator(f"{HOST} .root > [role=alert]")
    assert "911" in alert.inner_text()


def test_markup_is_shown_as_text_never_run(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    ask(page, XSS)
    user = page.locator(f"{HOST} .msg.user .text").last
    assert user.text_content() == XSS
    assert page.evaluate(f"{SHADOW}.querySelectorAll('img').length") == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    page.wait_for_timeout(300)
    assert b.dialogs == []


def test_hostile_reply_content_is_text_and_only_safe_links(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    """A reply carrying markup and bad URLs (as if the core were compromised) renders inertly."""
    b = browse()
    page = b.page()
    reply = {"session_id": "s1", "kind": "answer", "reply": "<b>bold</b> <script>alert(2)</script>",
             "citations": [{"title": "<img src=x onerror=alert(3)>", "source": "a.md", "url": "javascript:alert(4)"},
                           {"title": "Linked article", "source": "b.md", "url": "https://clinic.example/psoas"},
                           {"title": "No link", "source": "c.md", "url": ""}],
             "actions": [{"type": "link", "label": "bad", "value": "javascript:alert(5)"},
                         {"type": "call", "label": "Call the clinic", "value": "tel:+18284587218"},
                         {"type": "emergency", "label": "Call 911", "value": "tel:911"},
                         {"type": "book", "label": "data", "value": "data:text/html,<script>alert(6)</script>"}],
             "suggestions": ["<i>chip</i>"], "disclaimer": "<u>d</u>", "reply_id": "r1", "lang": "<b>es</b>"}
    body = stream_body(reply, ["<b>streamed</b>"])
    page.route("**/chat/stream", lambda route: route.fulfill(status=200, body=body,
                                                              headers={"content-type": "text/event-stream"}))
    open_widget(page, live_server.url)
    node = ask(page, "hello")
    assert node.locator(".text").text_content() == reply["reply"]
    assert node.locator(".citation").all_text_contents() == ["<img src=x onerror=alert(3)>", "Linked article", "No link"]
    hrefs = node.locator("a").evaluate_all("(as) => as.map((a) => a.getAttribute('href'))")
    assert hrefs == ["https://clinic.example/psoas", "tel:911", "tel:+18284587218"]  # emergency first
    assert node.locator("a[href^='https']").get_attribute("rel") == "noopener noreferrer"
    assert page.locator(f"{HOST} .chip").last.text_content() == "<i>chip</i>"
    assert node.locator(".disclaimer").text_content() == "<u>d</u>"
    assert page.evaluate(f"{SHADOW}.querySelectorAll('img, script, b, i, u').length") == 0
    assert page.evaluate(f"{SHADOW}.querySelector('.root').lang") == "en"  # an unknown lang changes nothing
    page.wait_for_timeout(300)
    assert b.dialogs == []


def test_a_restart_503_is_explained_waited_out_and_queued_text_sent(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    """The server restarting: its own explanation, 'Reconnecting...', retries after Retry-After, no click needed."""
    import time

    page = browse().page()
    open_widget(page, live_server.url)
    down = {"until": time.monotonic() + 3.5}
    hits: list[float] = []

    def handler(route: Any) -> None:
        if time.monotonic() < down["until"]:
            hits.append(time.monotonic())
            route.fulfill(status=503, body=json.dumps({"detail": STARTING}),
                          headers={"content-type": "application/json", "retry-after": "1"})
        else:
            route.continue_()

    page.route("**/chat/stream", handler)
    page.route("**/chat", handler)
    page.locator("#ccw-input").fill("what is the psoas?")
    page.locator("#ccw-input").press("Enter")
    status = page.locator(f"{HOST} .net")
    status.wait_for(state="visible")
    assert "Reconnecting..." in status.inner_text() and STARTING in status.inner_text()
    assert status.locator("a[href='tel:+18284587218']").count() == 1
    assert page.locator(f"{HOST} .msg.error").count() == 0  # not "can't reach the assistant"
    check_axe(page, "reconnecting")
    # Typed while reconnecting: shown as waiting, sent once the first one is answered.
    page.locator("#ccw-input").fill("What is myofascial release?")
    page.locator("#ccw-input").press("Enter")
    page.locator(f"{HOST} .msg.user .wait").first.wait_for()
    assert page.locator(f"{HOST} .msg.user .wait").count() == 2
    shot(page, "widget-reconnecting.png")
    page.locator(f"{HOST} .msg.bot[data-kind]").nth(1).wait_for(timeout=20_000)
    status.wait_for(state="hidden")
    assert page.locator(f"{HOST} .msg.user .wait").count() == 0
    assert page.locator(f"{HOST} .msg.user").count() == 2  # each message once, in order
    assert page.locator(f"{HOST} .msg.bot[data-kind]").count() == 2
    texts = page.locator(f"{HOST} .msg.bot[data-kind] .text").all_inner_texts()
    assert "psoas" in texts[0].lower() and "myofascial" in texts[1].lower()
    # Retry-After: 1 was honoured (about a second apart, not hammering, not the 1-2-4 s backoff).
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    assert gaps and all(0.8 <= g <= 2.5 for g in gaps), gaps


def test_clearing_while_reconnecting_sends_nothing_later(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    hits: list[str] = []

    def handler(route: Any) -> None:
        hits.append(route.request.post_data or "")
        route.fulfill(status=503, body=json.dumps({"detail": STARTING}),
                      headers={"content-type": "application/json", "retry-after": "1"})

    page.route("**/chat/stream", handler)
    page.locator("#ccw-input").fill("what is the psoas?")
    page.locator("#ccw-input").press("Enter")
    page.locator(f"{HOST} .net").wait_for(state="visible")
    page.get_by_role("button", name="New conversation").click()
    page.get_by_role("button", name="Clear conversation").click()
    page.locator(f"{HOST} .net").wait_for(state="hidden", timeout=5_000)
    sent = len(hits)
    page.wait_for_timeout(2_500)
    assert len(hits) == sent  # the forgotten message is never sent
    assert page.locator(f"{HOST} .msg.user").count() == 0 and page.locator(f"{HOST} .msg.error").count() == 0


def test_network_down_backs_off_then_recovers_without_a_click(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    failing = {"left": 4}  # stream + plain fallback, twice

    def handler(route: Any) -> None:
        if failing["left"] > 0:
            failing["left"] -= 1
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route("**/chat/stream", handler)
    page.route("**/chat", handler)
    page.locator("#ccw-input").fill("what is the psoas?")
    page.locator("#ccw-input").press("Enter")
    page.locator(f"{HOST} .net").wait_for(state="visible")
    assert "Reconnecting..." in page.locator(f"{HOST} .net").inner_text()
    page.locator(f"{HOST} .msg.bot[data-kind=answer]").wait_for(timeout=20_000)
    assert page.locator(f"{HOST} .net").is_hidden() and page.locator(f"{HOST} .msg.error").count() == 0
    assert page.locator(f"{HOST} .msg.user").count() == 1


def test_an_error_waiting_cannot_fix_says_what_to_do(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    page.route("**/chat/stream", lambda route: route.fulfill(
        status=422, body='{"detail": "message is too long; please shorten it"}',
        headers={"content-type": "application/json"}))
    page.locator("#ccw-input").fill("what is the psoas?")
    page.locator("#ccw-input").press("Enter")
    error = page.locator(f"{HOST} .msg.error")
    error.wait_for()
    assert "please shorten it" in error.inner_text()
    assert error.locator("a[href='tel:+18284587218']").count() == 1
    assert error.get_by_role("button", name="Retry").count() == 0
    check_axe(page, "error")


def test_falls_back_to_plain_chat_when_streaming_is_unavailable(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    page.route("**/chat/stream", lambda route: route.fulfill(status=404, body='{"detail": "Not Found"}',
                                                              headers={"content-type": "application/json"}))
    open_widget(page, live_server.url)
    with page.expect_response(lambda r: r.url.endswith("/chat")) as plain:
        reply = ask(page, "what is the psoas?")
    assert plain.value.status == 200
    assert reply.get_attribute("data-kind") == "answer"


def test_keyboard_only(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    page.goto(live_server.url + "/")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUS_ON_LAUNCHER):
            break
    else:
        pytest.fail("Tab never reached the chat launcher")
    ring = page.evaluate(f"getComputedStyle({SHADOW}.querySelector('.launcher')).boxShadow")
    assert ring == "rgb(255, 255, 255) 0px 0px 0px 2px, rgb(17, 17, 17) 0px 0px 0px 5px"  # the visible focus ring
    page.keyboard.press("Enter")
    page.locator(f"{HOST} .panel").wait_for(state="visible")
    page.wait_for_function(FOCUS_IN_INPUT)
    page.locator(f"{HOST} .chip").first.wait_for()
    page.keyboard.type("what is the psoas?")
    page.keyboard.press("Enter")
    page.locator(f"{HOST} .msg.bot[data-kind=answer]").wait_for()
    assert page.evaluate(FOCUS_IN_INPUT)  # ready for the next question
    # On a desktop the panel is not modal: Tab moves on through its controls, Shift+Tab comes back.
    page.keyboard.press("Tab")
    assert not page.evaluate(FOCUS_IN_INPUT)
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUS_IN_INPUT)
    page.keyboard.press("Escape")
    page.locator(f"{HOST} .panel").wait_for(state="hidden")
    assert page.evaluate(FOCUS_ON_LAUNCHER)
    assert page.locator(f"{HOST} .launcher").get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")  # and opens again, conversation intact
    page.locator(f"{HOST} .msg.bot[data-kind=answer]").wait_for()


def test_conversation_survives_reload_and_new_tab_until_cleared(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    ask(page, "What is myofascial release?")
    page.reload()
    page.locator(f"{HOST} .panel").wait_for(state="visible")  # it was open in this tab: it stays open
    assert page.locator(f"{HOST} .msg.user .text").all_text_contents() == ["What is myofascial release?"]
    assert page.locator(f"{HOST} .msg.bot[data-kind=answer]").count() == 1
    stored = json.loads(page.evaluate(STORED)[0])
    session = stored["sessionId"]
    assert stored["v"] == 2 and session
    assert page.evaluate("Object.keys(sessionStorage).filter((k) => !k.startsWith('clinic-chat')).length") == 0

    # A new tab of the same site: the same conversation (closed until opened), the same server session.
    other = b.page()
    other.goto(live_server.url + "/?another=page")
    assert other.locator(f"{HOST} .panel").is_hidden()
    other.locator(f"{HOST} .launcher").click()
    assert other.locator(f"{HOST} .msg.user .text").all_text_contents() == ["What is myofascial release?"]
    with other.expect_request(lambda r: r.url.endswith("/chat/stream")) as sent:
        ask(other, "what is the psoas?")
    assert json.loads(sent.value.post_data or "{}")["session_id"] == session
    db = live_server.data_dir / "bot.sqlite3"
    page.wait_for_timeout(300)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from turns where session_id = ?", (session,)).fetchone()[0] == 4

    # "New conversation" asks first; "Keep it" keeps everything.
    other.get_by_role("button", name="New conversation").click()
    confirm = other.locator(f"{HOST} .confirm")
    confirm.wait_for(state="visible")
    assert other.evaluate(FOCUSED) == "widget:action secondary keep"
    check_axe(other, "confirm clearing")
    confirm.get_by_role("button", name="Keep it").click()
    assert confirm.is_hidden() and other.locator(f"{HOST} .msg.user").count() == 2
    other.get_by_role("button", name="New conversation").click()
    with other.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        confirm.get_by_role("button", name="Clear conversation").click()
    assert deleted.value.status == 204 and deleted.value.url.endswith(f"/chat/session/{session}")
    other.locator(f"{HOST} .chip").first.wait_for()
    assert other.locator(f"{HOST} .msg.user").count() == 0
    # Gone from the device (no message text kept) and from the server.
    kept = [json.loads(s) for s in other.evaluate(STORED)]
    assert all(k["sessionId"] is None and all(i["t"] == "intro" for i in k["items"]) for k in kept), kept
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from turns where session_id = ?", (session,)).fetchone()[0] == 0
        assert conn.execute("select count(*) from sessions where id = ?", (session,)).fetchone()[0] == 0
    # The first tab follows, and a new message starts a new session.
    page.locator(f"{HOST} .msg.user").first.wait_for(state="detached")
    with page.expect_request(lambda r: r.url.endswith("/chat/stream")) as sent:
        ask(page, "what is the psoas?")
    assert json.loads(sent.value.post_data or "{}")["session_id"] is None


def test_an_idle_conversation_expires_and_nothing_is_kept_when_turned_off(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    ask(page, "What is myofascial release?")
    # 31 minutes idle (the default keeps 30): a reload starts afresh and the old copy is removed.
    page.evaluate("""() => { for (const k of Object.keys(localStorage)) { const v = JSON.parse(localStorage.getItem(k));
                     v.at -= 31 * 60 * 1000; localStorage.setItem(k, JSON.stringify(v)); } }""")
    page.reload()
    assert page.evaluate(STORED) == []
    page.locator(f"{HOST} .launcher").click()
    page.locator(f"{HOST} .chip").first.wait_for()
    assert page.locator(f"{HOST} .msg.user").count() == 0

    page.close()  # (an open tab that remembers would write its own greeting back)
    # The clinic turned it off (data-remember="0"): nothing in localStorage or sessionStorage, ever.
    off_page = ('<!doctype html><html lang="en"><head><title>Off</title></head><body><main><h1>Clinic</h1></main>'
                '<script src="/widget.js" defer data-remember="0"></script></body></html>')
    b.context.route("**/off", lambda r: r.fulfill(status=200, body=off_page, headers={"content-type": "text/html"}))
    off = b.page()
    open_widget(off, live_server.url, "/off")
    assert off.evaluate("localStorage.length + sessionStorage.length") == 0  # the earlier copy was removed too
    ask(off, "what is the psoas?")
    assert off.evaluate("localStorage.length + sessionStorage.length") == 0
    off.reload()
    off.locator(f"{HOST} .launcher").click()
    off.locator(f"{HOST} .chip").first.wait_for()
    assert off.locator(f"{HOST} .msg.user").count() == 0


def test_phone_is_a_modal_dialog_with_focus_kept_in(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                  has_touch=True).page()
    page.goto(live_server.url + "/")
    launcher = page.locator(f"{HOST} .launcher").bounding_box()
    assert launcher is not None and launcher["width"] == 56 and launcher["height"] == 56  # round, not a wide pill
    check_axe(page, "phone, closed")
    open_widget(page, live_server.url)
    box = page.locator(f"{HOST} .panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    assert page.locator(f"{HOST} .panel").get_attribute("aria-modal") == "true"
    assert page.locator(f"{HOST} .launcher").is_hidden()  # out of the tab order
    assert page.evaluate("Array.from(document.body.children).filter((n) => n.id !== 'clinic-chat-widget')"
                         ".every((n) => n.inert)")
    ask(page, "How long is the psoas?")
    check_axe(page, "phone, modal with an answer")
    shot(page, "widget-phone.png")
    # Tab from Send wraps to the first control of the panel; Shift+Tab from there goes back to Send.
    page.locator(f"{HOST} .send").focus()
    seen = set()
    for _ in range(30):
        page.keyboard.press("Tab")
        where = page.evaluate(FOCUSED)
        assert where.startswith("widget:") and "launcher" not in where, where
        seen.add(where)
    assert "widget:ccw-input" in seen and "widget:hbtn close" in seen
    page.locator(f"{HOST} .close").focus()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED) == "widget:ccw-reset"  # "New conversation", in the footer, away from Close
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "widget:hbtn close"
    page.get_by_role("button", name="Close chat").click()
    page.locator(f"{HOST} .panel").wait_for(state="hidden")
    assert page.evaluate(FOCUS_ON_LAUNCHER)
    assert page.evaluate("Array.from(document.body.children).some((n) => n.inert)") is False


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_every_target_is_at_least_44_px(browse, live_server, viewport) -> None:  # type: ignore[no-untyped-def]
    page = browse(viewport={"width": viewport[0], "height": viewport[1]}).page()
    open_widget(page, live_server.url)
    reply = ask(page, "what is the psoas?")
    reply.get_by_role("button", name="No, not helpful").click()  # the comment field and its Send too
    targets = page.evaluate(TARGETS)
    kinds = {t["what"].split()[0] for t in targets}
    assert {"hbtn", "chip", "action", "fb", "send", "TEXTAREA", "INPUT", "A"} <= kinds, kinds
    small = [t for t in targets if t["w"] < 44 or t["h"] < 44]
    assert not small, small
    fonts = page.evaluate(f"[...{SHADOW}.querySelectorAll('textarea, input')].map((n) => getComputedStyle(n).fontSize)")
    assert set(fonts) == {"16px"}  # iOS Safari zooms the page on focus below 16 px


@pytest.mark.parametrize(("width", "height", "name"), [(640, 400, "widget-zoom-200.png"),
                                                        (320, 256, "widget-zoom-400.png")])
def test_reflow_at_200_and_400_percent_zoom(browse, live_server, width, height, name) -> None:  # type: ignore[no-untyped-def]
    """1280x800 at 200% is 640x400 CSS px, at 400% 320x256: the conversation keeps most of the panel."""
    page = browse(viewport={"width": width, "height": height}, device_scale_factor=2).page()
    open_widget(page, live_server.url)
    ask(page, "what is the psoas?")
    sizes = page.evaluate(f"""() => {{ const r = {SHADOW};
      const h = (s) => r.querySelector(s).getBoundingClientRect().height;
      const log = r.querySelector('.log');
      return {{panel: h('.panel'), log: log.clientHeight, header: h('.header'), composer: h('.composer'),
               overflowX: log.scrollWidth - log.clientWidth, page: document.documentElement.scrollWidth}}; }}""")
    assert sizes["log"] >= 0.6 * sizes["panel"], sizes
    assert sizes["overflowX"] <= 0, sizes  # no sideways scrolling (WCAG 1.4.10)
    assert page.locator(f"{HOST} .subtitle").is_hidden() and page.locator(f"{HOST} .foot").is_hidden()
    reset = page.get_by_role("button", name="New conversation")  # an icon in the one-line header
    assert reset.count() == 1 and reset.get_attribute("class") == "hbtn hreset" and reset.is_visible()
    assert page.locator(f"{HOST} .intro-foot").is_visible()  # the footer's advice moved into the log
    small = [t for t in page.evaluate(TARGETS) if t["w"] < 44 or t["h"] < 44]
    assert not small, small
    check_axe(page, f"{width}x{height}")
    page.locator(f"{HOST} .log").evaluate("(n) => n.scrollTo(0, n.scrollHeight)")
    shot(page, name)
    print(f"{width}x{height}: {sizes}")


def test_spanish_from_the_script_tag_the_browser_and_the_reply(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    b = browse()
    # The demo page with data-lang="es" on its tag.
    es_page = httpx.get(live_server.url + "/").text.replace('data-position="right"', 'data-position="right" data-lang="es"')
    assert 'data-lang="es"' in es_page
    b.context.route("**/es", lambda r: r.fulfill(status=200, body=es_page,
                                                 headers={"content-type": "text/html; charset=utf-8"}))
    page = b.page()
    page.goto(live_server.url + "/es")
    page.locator(f"{HOST} .launcher").click()
    page.locator(f"{HOST} .msg.bot.intro").wait_for()
    root = page.locator(f"{HOST} .root")
    assert root.get_attribute("lang") == "es"
    assert page.locator("#ccw-input").get_attribute("placeholder") == "Escriba su pregunta"
    assert page.get_by_role("button", name="Cerrar el chat").count() == 1
    assert page.get_by_role("button", name="Nueva conversación").count() == 1
    assert "asistente automático" in page.locator(f"{HOST} .msg.bot.intro").inner_text()
    # The clinic's data-title is in its page's language (html lang="en"), and says so to a screen reader.
    assert page.locator(f"{HOST} .title").get_attribute("lang") == "en"
    check_axe(page, "Spanish")
    shot(page, "widget-spanish.png")

    # No data-lang: the browser's language decides.
    page2 = browse(locale="es-MX").page()
    page2.goto(live_server.url + "/")
    assert page2.locator(f"{HOST} .root").get_attribute("lang") == "es"
    assert page2.locator(f"{HOST} .launcher").inner_text() == "Ask our assistant"  # data-title is the clinic's

    # An English widget follows a patient who writes in Spanish (the reply says lang "es").
    page3 = browse().page()
    reply = {"session_id": "s1", "kind": "answer", "reply": "El psoas es un músculo profundo.", "citations": [],
             "actions": [], "suggestions": [], "disclaimer": None, "reply_id": "r1", "lang": "es"}
    page3.route("**/chat/stream", lambda route: route.fulfill(status=200, body=stream_body(reply, []),
                                                               headers={"content-type": "text/event-stream"}))
    open_widget(page3, live_server.url)
    assert page3.locator(f"{HOST} .root").get_attribute("lang") == "en"
    ask(page3, "¿Qué es el psoas?")
    assert page3.locator(f"{HOST} .root").get_attribute("lang") == "es"
    assert page3.locator("#ccw-input").get_attribute("placeholder") == "Escriba su pregunta"
    assert page3.locator(f"{HOST} .msg.intro").get_attribute("lang") == "en"  # the English greeting says so
    page3.reload()  # and remembers it
    assert page3.locator(f"{HOST} .root").get_attribute("lang") == "es"


def test_page_css_cannot_change_the_widget(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    normal = page.evaluate(SIZES)
    assert normal["text_font"] == "15px" and normal["title_font"] == "16px" and normal["input_font"] == "16px"

    hostile_css = ("* { all: unset; } html, body, * { font-size: 40px !important; line-height: 3 !important; "
                   "font-family: 'Comic Sans MS', cursive !important; letter-spacing: 4px !important; } "
                   "div, button, textarea { padding: 30px !important; border: 9px solid red !important; "
                   "display: inline !important; } "
                   "#clinic-chat-widget { transform: scale(2) !important; opacity: 0.3 !important; "
                   "position: absolute !important; top: -500px !important; --fg: red; --bg: black; }")
    hostile_page = ("<!doctype html><html><head><link rel=stylesheet href=/hostile.css></head><body>"
                    "<p>A clinic page with unfriendly CSS.</p>"
                    '<script src="/widget.js" defer data-title="Ask our assistant" data-color="#14606e"></script>'
                    "</body></html>")
    csp = "default-src 'self'; script-src 'self'; style-src 'self'"  # a strict page CSP: the widget still styles
    b.context.route("**/hostile", lambda r: r.fulfill(status=200, body=hostile_page, headers={
        "content-type": "text/html", "content-security-policy": csp}))
    b.context.route("**/hostile.css", lambda r: r.fulfill(status=200, body=hostile_css,
                                                           headers={"content-type": "text/css"}))
    hostile = b.page()
    open_widget(hostile, live_server.url, "/hostile")
    assert hostile.evaluate("getComputedStyle(document.body).fontSize") == "40px"  # the page's CSS did apply
    assert hostile.evaluate(f"getComputedStyle({SHADOW}.host).opacity") == "1"
    assert hostile.evaluate(SIZES) == normal


@pytest.mark.parametrize("motion", ["reduce", "no-preference"])
def test_reduced_motion_is_respected(browse, live_server, motion) -> None:  # type: ignore[no-untyped-def]
    page = browse(reduced_motion=motion).page()
    page.goto(live_server.url + "/")
    page.locator(f"{HOST} .launcher").click()
    name = page.locator(f"{HOST} .panel").evaluate("(n) => getComputedStyle(n).animationName")
    assert name == ("none" if motion == "reduce" else "ccw-in")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_at_least_4_5(browse, live_server, scheme) -> None:  # type: ignore[no-untyped-def]
    page = browse(color_scheme=scheme).page()
    open_widget(page, live_server.url)
    ask(page, "what is the psoas?")
    ratios = page.evaluate(CONTRAST, [".launcher", ".title", ".subtitle", ".close", ".reset", ".msg.bot .text", ".msg.user .text",
                                      ".intro-note", ".chip", ".sources", ".citation", ".citation a",
                                      "a.action[data-type=call]", ".disclaimer", ".feedback", ".foot", "textarea"])
    background = page.evaluate(f"getComputedStyle({SHADOW}.querySelector('.log')).backgroundColor")
    assert (background == "rgb(21, 24, 27)") == (scheme == "dark")
    check_axe(page, f"{scheme} scheme")
    if scheme == "dark":
        shot(page, "widget-dark.png")
    ask(page, EMERGENCY)
    ratios |= page.evaluate(CONTRAST, ["a.action.emergency", ".urgent", ".emergency .text"])
    low = {sel: r for sel, r in ratios.items() if r is None or r < 4.5}
    assert not low, ratios


def test_widget_js_is_small_on_the_wire_and_cached_by_version(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/widget.js") as got:
        page.goto(live_server.url + "/")
    resp = got.value
    assert resp.headers.get("content-encoding") == "gzip"
    wire = resp.request.sizes()["responseBodySize"]
    assert wire < 15_000, wire
    assert "v=" in resp.url and resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    print(f"widget.js on the wire: {wire} bytes gzip")


def test_no_cookies_and_no_foreign_requests_across_a_conversation(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    ask(page, "what is the psoas?")
    assert page.evaluate("document.cookie") == ""
    paths = {urlsplit(u).path for u in b.requests}
    assert {"/", "/widget.js", "/static/demo.css", "/widget/config", "/chat/stream"} <= paths
    # check_privacy (run by the fixture) asserts the rest: one origin, no cookies, no dialogs, no errors.
