"""The widget's routes and the staff console's API, in-process."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.conftest import STAFF_TOKEN

AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}
STAFF_ROUTES = [
    ("GET", "/staff/api/session", None),
    ("POST", "/staff/api/ask", {"message": "What is the psoas?"}),
    ("GET", "/staff/api/unanswered", None),
    ("POST", "/staff/api/unanswered/handled", {"ids": [1]}),
    ("GET", "/staff/api/feedback", None),
    ("POST", "/staff/api/feedback/handled", {"ids": [1]}),
    ("POST", "/staff/api/reindex", None),
    ("GET", "/staff/api/stats", None),
    ("GET", "/staff/api/messenger", None),
    ("POST", "/staff/api/messenger/flags/handled", {"ids": [1]}),
    ("POST", "/search", {"query": "psoas"}),
]
BAD_AUTH = [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer wrong-token-0123456789"}, id="wrong-token"),
    pytest.param({"Authorization": f"Bearer {STAFF_TOKEN}x"}, id="token-plus-one"),
    pytest.param({"Authorization": f"Basic {STAFF_TOKEN}"}, id="not-bearer"),
    pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
]


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ROUTES)
@pytest.mark.parametrize("headers", BAD_AUTH)
def test_staff_routes_refuse_without_the_token(client, method, path, body, headers) -> None:  # type: ignore[no-untyped-def]
    resp = client.request(method, path, json=body, headers=headers)
    assert resp.status_code == 401, resp.text
    assert "staff token" in resp.json()["detail"]


def test_every_staff_api_route_is_listed_here(client) -> None:  # type: ignore[no-untyped-def]
    """A new staff route must be added to STAFF_ROUTES (and so get the 401 test)."""
    spec = client.get("/openapi.json").json()
    listed = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/staff/api/")}
    assert listed == {(m, p) for m, p, _ in STAFF_ROUTES if p.startswith("/staff/api/")}
    ours = [p for p in spec["paths"] if p == "/" or p.startswith(("/staff", "/widget", "/static"))]
    assert len(ours) >= 12
    for path in ours:
        for op in spec["paths"][path].values():
            assert op.get("description"), path  # the one-line docstrings become /docs


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ROUTES)
def test_staff_routes_say_how_to_set_the_token_when_none_is_configured(make_client, data_dir, method, path,
                                                                      body) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir, staff_token=None)
    resp = c.request(method, path, json=body, headers=AUTH)
    assert resp.status_code == 503
    assert "STAFF_TOKEN" in resp.json()["detail"] and "set" in resp.json()["detail"]


def test_staff_page_is_served_without_a_token_and_has_no_inline_code(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/staff")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    _assert_no_inline_code(resp.text)
    assert re.search(r'<script src="/static/staff\.js\?v=[0-9a-f]{12}"', resp.text)
    for name in ("staff.js", "staff.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_ask_returns_the_reply_a_patient_would_get_and_stores_nothing(client) -> None:  # type: ignore[no-untyped-def]
    store = client.app.state.runtime.store
    before = store.counts()
    resp = client.post("/staff/api/ask", json={"message": "What is the psoas?"}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert reply["kind"] == "answer"
    assert any("psoas" in c["title"].lower() for c in reply["citations"])
    assert any(a["type"] == "call" for a in reply["actions"])
    assert reply["disclaimer"]
    assert store.counts() == before
    patient = client.post("/chat", json={"message": "What is the psoas?"}).json()
    assert patient["kind"] == reply["kind"] and patient["reply"] == reply["reply"]


@pytest.mark.parametrize("body", [{}, {"message": ""}, {"message": "   "}, {"message": 3}, {"message": "a\x00b"},
                                  {"message": "x" * 2001}])
def test_ask_rejects_bad_input_with_a_4xx_that_says_what_to_fix(client, body) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/staff/api/ask", json=body, headers=AUTH)
    assert resp.status_code == 422
    assert "message" in resp.json()["detail"]


def test_emergency_preview_puts_911_first(client) -> None:  # type: ignore[no-untyped-def]
    reply = client.post("/staff/api/ask", json={"message": "I suddenly can't control my bladder and my groin is numb"},
                        headers=AUTH).json()
    assert reply["kind"] == "emergency"
    assert reply["actions"][0]["value"] == "tel:911"


def test_reindex_returns_counts(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/staff/api/reindex", headers=AUTH)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["files"] >= 4 and report["passages"] > 0
    assert report["embedded"] == 0 and report["unchanged"] == report["passages"]  # nothing changed: nothing embedded
    assert client.post("/search", json={"query": "psoas"}, headers=AUTH).json()["results"]


def test_unanswered_questions_are_grouped_and_can_be_marked_handled(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir)
    asked = ["Do you offer gift cards?", "do you sell gift cards", "Can I buy a gift card?",
             "Is there parking at the clinic?", "How much does a session cost?"]
    for text in asked:
        reply = c.post("/chat", json={"message": text}).json()
        assert reply["kind"] == "handoff", (text, reply)
    resp = c.get("/staff/api/unanswered", headers=AUTH)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["total"] == len(asked)
    groups = data["groups"]
    gift = [g for g in groups if "gift" in g["question"].lower()]
    assert len(gift) == 1 and gift[0]["count"] == 3, groups
    assert groups[0] is not None and groups[0]["count"] == 3  # most asked first
    assert {"question", "count", "last_seen", "ids", "variants"} <= set(groups[0])
    assert sum(g["count"] for g in groups) == len(asked)
    assert any("parking" in g["question"].lower() for g in groups if g is not gift[0])

    done = c.post("/staff/api/unanswered/handled", json={"ids": gift[0]["ids"]}, headers=AUTH)
    assert done.json() == {"handled": 3}
    left = c.get("/staff/api/unanswered", headers=AUTH).json()
    assert left["total"] == 2 and not any("gift" in g["question"].lower() for g in left["groups"])


def test_grouping_is_greedy_on_cosine() -> None:
    from bot.channels.staff import group_questions

    rows = [{"id": i, "question": q, "created_at": f"2026-11-2{i}T10:00:00+00:00"}
            for i, q in enumerate(["a", "b", "c", "d"], start=1)]
    vecs = np.array([[1, 0, 0], [0.9, 0.43589, 0], [0, 1, 0], [0.8, 0.6, 0]], dtype=np.float32)
    groups = group_questions(rows, vecs, threshold=0.75)
    assert [g["ids"] for g in groups] == [[1, 2, 4], [3]]
    assert groups[0]["last_seen"] == "2026-11-24T10:00:00+00:00"
    assert groups[0]["variants"] == ["b", "d"]


def test_thumbs_down_feedback_is_listed_newest_first_and_can_be_handled(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir)
    first = c.post("/chat", json={"message": "What is the psoas?"}).json()
    second = c.post("/chat", json={"message": "What is myofascial release?"}).json()
    assert c.post("/feedback", json={"reply_id": first["reply_id"], "rating": "down",
                                     "comment": "too short"}).status_code == 201
    assert c.post("/feedback", json={"reply_id": second["reply_id"], "rating": "down"}).status_code == 201
    assert c.post("/feedback", json={"reply_id": second["reply_id"], "rating": "up"}).status_code == 201
    items = c.get("/staff/api/feedback", headers=AUTH).json()["items"]
    assert [i["question"] for i in items] == ["What is myofascial release?", "What is the psoas?"]
    assert items[1]["comment"] == "too short" and items[1]["reply_kind"] == "answer" and items[1]["reply_text"]
    assert c.post("/staff/api/feedback/handled", json={"ids": [items[0]["id"]]}, headers=AUTH).json() == {"handled": 1}
    assert len(c.get("/staff/api/feedback", headers=AUTH).json()["items"]) == 1


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": "1"}, {"ids": ["a"]}])
def test_handled_needs_a_list_of_ids(client, body) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/staff/api/unanswered/handled", json=body, headers=AUTH)
    assert resp.status_code == 422 and "ids" in resp.json()["detail"]


def test_stats_shape(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir)
    empty = c.get("/staff/api/stats", headers=AUTH).json()
    assert len(empty["days"]) == 30 and empty["answered_share"] is None
    for text in ["What is the psoas?", "What is myofascial release?", "How much does a session cost?",
                 "I suddenly can't control my bladder and my groin is numb", "Can I book an appointment?"]:
        c.post("/chat", json={"message": text})
    data = c.get("/staff/api/stats", headers=AUTH).json()
    days = data["days"]
    assert len(days) == 30 and days == sorted(days, key=lambda d: d["date"])
    today = days[-1]
    assert set(today) == {"date", "answer", "handoff", "emergency", "booking", "smalltalk", "total"}
    assert (today["answer"], today["handoff"], today["emergency"], today["booking"]) == (2, 1, 1, 1)
    assert today["total"] == 5 and data["totals"]["answer"] == 2
    assert data["answered_share"] == pytest.approx(2 / 3, abs=1e-3)


# --- the widget's routes --------------------------------------------------------------------------------
def test_widget_js_is_gzipped_and_cached_with_an_etag(client) -> None:  # type: ignore[no-untyped-def]
    from bot.assets import load_asset
    from bot.channels.widget import STATIC

    plain = client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["content-type"].startswith("text/javascript")
    assert plain.headers["cache-control"] == "public, max-age=300"  # the clinic's tag: revalidated often
    assert "Accept-Encoding" in plain.headers["vary"]
    etag = plain.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert "set-cookie" not in plain.headers
    assert "content-security-policy" not in plain.headers  # it runs on the clinic's pages, under their rules
    resp = client.get("/widget.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert resp.headers["content-encoding"] == "gzip" and resp.headers["etag"] == etag[:-1] + '-gz"'
    assert resp.content == plain.content  # httpx unzips: the same script
    wire = int(resp.headers["content-length"])
    assert wire < 15_000, wire
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*", resp.headers["etag"]):
        again = client.get("/widget.js", headers={"If-None-Match": header, "Accept-Encoding": "identity"})
        assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    assert client.get("/widget.js", headers={"If-None-Match": '"stale"'}).status_code == 200
    head = client.head("/widget.js", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.headers["etag"] == etag and not head.content
    # The versioned URL the demo page uses is cached for a year; a stale version only briefly.
    version = load_asset(STATIC / "widget.js").version
    assert f'src="/widget.js?v={version}"' in client.get("/").text
    assert client.get(f"/widget.js?v={version}").headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/widget.js?v=000000000000").headers["cache-control"] == "public, max-age=300"
    body = plain.text
    assert "innerHTML" not in body and "insertAdjacentHTML" not in body and "eval(" not in body
    assert "document.cookie" not in body
    assert len(plain.content) < 60_000


def test_compacting_the_script_drops_only_comments_and_indentation() -> None:
    from bot.assets import compact_js

    source = ('/*! licence */\n(() => {\n  // a comment line\n  const a = "x // not a comment"; // trailing\n'
              '  const b = \'it\\\'s // kept\'; // kept: quotes not plain\n  const u = "http://x"; \n})();\n')
    assert compact_js(source) == ('/*! licence */\n(() => {\nconst a = "x // not a comment";\n'
                                  'const b = \'it\\\'s // kept\'; // kept: quotes not plain\n'
                                  'const u = "http://x";\n})();\n')


def test_widget_js_makes_no_third_party_requests() -> None:
    from bot.channels.widget import STATIC

    source = (STATIC / "widget.js").read_text()
    # The only absolute URL in code is the SVG namespace; every request is built from the script's own src.
    urls = set(re.findall(r"https?://[^\s\"'`)]+", source)) - {"http://www.w3.org/2000/svg", "https://BOT/widget.js"}
    assert not urls, urls
    assert "credentials: \"omit\"" in source


def test_widget_config(client) -> None:  # type: ignore[no-untyped-def]
    data = client.get("/widget/config").json()
    clinic = client.app.state.clinic
    assert data["greeting"] == clinic.greeting and data["phone"] == "(828) 458-7218"
    assert data["phone_tel"] == "tel:+18284587218"
    assert 3 <= len(data["suggested_questions"]) <= 4
    assert data["disclaimer"] == clinic.disclaimer and data["max_message_chars"] == 2000
    assert data["emergency_number"] == "911" and data["lang"] == "en"


def test_cors_allows_only_the_configured_origins(client) -> None:  # type: ignore[no-untyped-def]
    ok = client.options("/chat/stream", headers={"Origin": "http://127.0.0.1:8000", "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "content-type"})
    assert ok.headers.get("access-control-allow-origin") == "http://127.0.0.1:8000"
    bad = client.options("/chat/stream", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in bad.headers


def test_demo_page_has_the_widget_tag_and_no_inline_code(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert re.search(r'<script src="/widget\.js\?v=[0-9a-f]{12}" defer data-title="[^"]+" data-color="#[0-9a-f]{6}" '
                     r'data-position="right"></script>', page)
    assert re.search(r'<link rel="stylesheet" href="/static/demo\.css\?v=[0-9a-f]{12}">', page)
    _assert_no_inline_code(page)
    assert "(828) 458-7218" in page and "{{" not in page
    assert "set-cookie" not in resp.headers
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    assert client.get("/static/demo.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("name", ["../api.py", "widget.py", "%2e%2e%2fapi.py", "demo.html", "nope.css"])
def test_static_serves_only_its_own_files(client, name) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"/static/{name}").status_code == 404


def test_static_files_are_gzipped_versioned_and_etag_cached(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/static/staff.js")
    assert resp.headers["content-type"].startswith("text/javascript") and resp.headers["content-encoding"] == "gzip"
    assert client.get("/static/staff.js", headers={"If-None-Match": resp.headers["etag"]}).status_code == 304
    page = client.get("/staff").text
    for name in ("staff.css", "staff.js"):
        url = re.search(rf'"(/static/{name}\?v=[0-9a-f]{{12}})"', page)
        assert url, name
        assert client.get(url[1]).headers["cache-control"] == "public, max-age=31536000, immutable"


def _assert_no_inline_code(page: str) -> None:
    """No inline script, style element, style attribute or event handler: the CSP allows none of them."""
    for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", page, flags=re.S | re.I):
        assert not tag.strip(), "inline <script>"
    assert all("src=" in t for t in re.findall(r"<script\b[^>]*>", page, flags=re.I))
    assert not re.search(r"<style\b", page, flags=re.I)
    assert not re.search(r"\sstyle\s*=", page, flags=re.I)
    assert not re.search(r"\son[a-z]+\s*=", page, flags=re.I)
    assert "javascript:" not in page.lower()


def test_out_of_range_ids_are_a_bad_request_not_a_database_error(client) -> None:  # type: ignore[no-untyped-def]
    # Found by the fuzzer: an id past 64 bits reached SQLite and came back as 503.
    for path in ("/staff/api/unanswered/handled", "/staff/api/feedback/handled"):
        for ids in ([2**63], [0], [-5]):
            r = client.post(path, json={"ids": ids}, headers=AUTH)
            assert r.status_code == 422, (path, ids, r.status_code)
