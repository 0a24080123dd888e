"""The widget and the staff console in Debian's chromium (Playwright, never a downloaded browser)."""

from __future__ import annotations

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
    page.screenshot(path=str(DOCS / name), **kwargs)


# --- the widget --------------------------------------------------------------------------------------------
def test_streamed_answer_with_citation_call_button_and_feedback(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    shadow = page.locator(HOST)
    # Greeting, disclaimer once, 3-4 suggested questions from /widget/config.
    assert "automated assistant" in shadow.locator(".msg.bot.intro").inner_text()
    assert shadow.locator(".intro-note").count() == 1 and "not medical advice" in shadow.locator(".intro-note").inner_text()
    assert 3 <= shadow.locator(".chip").count() <= 4
    assert shadow.locator(".foot").inner_text().endswith("In an emergency call 911.")
    dialog = shadow.locator(".panel")
    assert dialog.get_attribute("role") == "dialog" and dialog.get_attribute("aria-labelledby") == "ccw-title"
    log = shadow.locator(".log")
    assert log.get_attribute("role") == "log" and log.get_attribute("aria-live") == "polite"

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
    shot(page, "widget-desktop.png")

    with page.expect_response(lambda r: r.url.endswith("/feedback")) as fb:
        reply.get_by_role("button", name="Yes, helpful").click()
    assert fb.value.status == 201
    reply.get_by_text("Thanks for your feedback.").wait_for()
    assert json.loads(fb.value.request.post_data or "{}")["rating"] == "up"

    # A suggestion chip asks its question.
    chip = shadow.locator(".chips .chip").first
    question = chip.inner_text()
    chip.click()
    shadow.locator(".msg.user .text", has_text=question).wait_for()
    page.locator(f"{HOST} .msg.bot[data-kind]").nth(1).wait_for()


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
    assert reply.get_attribute("role") == "alert"
    assert "emergency" in (reply.get_attribute("class") or "")
    style = reply.evaluate("(n) => { const s = getComputedStyle(n); return [s.borderTopColor, s.borderTopWidth]; }")
    assert style == ["rgb(176, 0, 32)", "3px"]
    first = reply.locator("a.action").first
    assert first.get_attribute("data-type") == "emergency" and first.get_attribute("href") == "tel:911"
    assert "911" in first.inner_text()
    assert first.evaluate("(n) => getComputedStyle(n).backgroundColor") == "rgb(176, 0, 32)"
    assert "911" in reply.locator(".text").inner_text()


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
             "suggestions": ["<i>chip</i>"], "disclaimer": "<u>d</u>", "reply_id": "r1"}
    body = (f"event: sentence\r\ndata: {json.dumps({'text': '<b>streamed</b>'})}\r\n\r\n"
            f"event: reply\r\ndata: {json.dumps(reply)}\r\n\r\n")
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
    page.wait_for_timeout(300)
    assert b.dialogs == []


@pytest.mark.parametrize(("status", "body", "expect"), [
    pytest.param(503, '{"detail": "The assistant is starting up"}', "call the clinic at (828) 458-7218", id="5xx"),
    pytest.param(None, "", "call the clinic at (828) 458-7218", id="network-down"),
])
def test_failure_shows_the_phone_and_retry_works(browse, live_server, status, body, expect) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    failing = {"on": True}

    def handler(route: Any) -> None:
        if not failing["on"]:
            route.continue_()
        elif status is None:
            route.abort("connectionrefused")
        else:
            route.fulfill(status=status, body=body, headers={"content-type": "application/json"})

    page.route("**/chat/stream", handler)
    page.route("**/chat", handler)
    page.locator("#ccw-input").fill("what is the psoas?")
    page.locator("#ccw-input").press("Enter")
    error = page.locator(f"{HOST} .msg.error")
    error.wait_for()
    assert error.get_attribute("role") == "alert"
    assert expect in error.inner_text()
    assert error.locator("a[href='tel:+18284587218']").count() == 1
    failing["on"] = False
    error.get_by_role("button", name="Retry").click()
    reply = page.locator(f"{HOST} .msg.bot[data-kind=answer]")
    reply.wait_for()
    assert page.locator(f"{HOST} .msg.error").count() == 0
    assert page.locator(f"{HOST} .msg.user").count() == 1  # the retry did not repeat the message


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
    # Tab moves on through the panel's own controls (no trap), Shift+Tab comes back.
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


def test_reload_keeps_the_conversation_and_new_conversation_clears_it(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    ask(page, "What is myofascial release?")
    page.reload()
    page.locator(f"{HOST} .panel").wait_for(state="visible")  # it was open: it stays open
    assert page.locator(f"{HOST} .msg.user .text").all_text_contents() == ["What is myofascial release?"]
    assert page.locator(f"{HOST} .msg.bot[data-kind=answer]").count() == 1
    session = page.evaluate("JSON.parse(Object.values(sessionStorage)[0]).sessionId")
    # A follow-up after a navigation continues the same server-side session.
    page.goto(live_server.url + "/?another=page")
    with page.expect_request(lambda r: r.url.endswith("/chat/stream")) as sent:
        ask(page, "what is the psoas?")
    assert json.loads(sent.value.post_data or "{}")["session_id"] == session
    assert page.locator(f"{HOST} .msg.user").count() == 2

    page.get_by_role("button", name="New conversation").click()
    page.locator(f"{HOST} .chip").first.wait_for()
    assert page.locator(f"{HOST} .msg.user").count() == 0
    assert page.locator(f"{HOST} .intro-note").count() == 1
    page.reload()
    page.locator(f"{HOST} .chip").first.wait_for()
    assert page.locator(f"{HOST} .msg.user").count() == 0
    with page.expect_request(lambda r: r.url.endswith("/chat/stream")) as sent:
        ask(page, "what is the psoas?")
    assert json.loads(sent.value.post_data or "{}")["session_id"] is None


def test_phone_viewport_shows_a_full_screen_panel(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                  has_touch=True).page()
    open_widget(page, live_server.url)
    box = page.locator(f"{HOST} .panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    ask(page, "How long is the psoas?")
    shot(page, "widget-phone.png")
    page.get_by_role("button", name="Close chat").click()
    page.locator(f"{HOST} .panel").wait_for(state="hidden")


def test_page_css_cannot_change_the_widget(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    normal = page.evaluate(SIZES)
    assert normal["text_font"] == "15px" and normal["title_font"] == "16px"

    hostile_css = ("* { all: unset; } html, body, * { font-size: 40px !important; line-height: 3 !important; "
                   "font-family: 'Comic Sans MS', cursive !important; letter-spacing: 4px !important; } "
                   "div, button, textarea { padding: 30px !important; border: 9px solid red !important; "
                   "display: inline !important; } "
                   "#clinic-chat-widget { transform: scale(2) !important; opacity: 0.3 !important; "
                   "position: absolute !important; top: -500px !important; }")
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


def test_text_contrast_is_at_least_4_5(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browse().page()
    open_widget(page, live_server.url)
    ask(page, "what is the psoas?")
    ratios = page.evaluate(CONTRAST, [".launcher", ".title", ".subtitle", ".hbtn", ".msg.bot .text", ".msg.user .text",
                                      ".intro-note", ".chip", ".sources", ".citation", "a.action[data-type=call]",
                                      ".disclaimer", ".feedback", ".foot", "textarea"])
    ask(page, EMERGENCY)
    ratios |= page.evaluate(CONTRAST, ["a.action.emergency", ".urgent", ".emergency .text"])
    low = {sel: r for sel, r in ratios.items() if r is None or r < 4.5}
    assert not low, ratios


def test_no_cookies_and_no_foreign_requests_across_a_conversation(browse, live_server) -> None:  # type: ignore[no-untyped-def]
    b = browse()
    page = b.page()
    open_widget(page, live_server.url)
    ask(page, "what is the psoas?")
    assert page.evaluate("document.cookie") == ""
    paths = {urlsplit(u).path for u in b.requests}
    assert {"/", "/widget.js", "/static/demo.css", "/widget/config", "/chat/stream"} <= paths
    # check_privacy (run by the fixture) asserts the rest: one origin, no cookies, no dialogs, no errors.
