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
    # Staff answers (issue 16); their own behaviour is tested in test_faq_api.py.
    ("GET", "/staff/api/faq", None),
    ("POST", "/staff/api/faq", {"question": "Q?", "answer": "A.", "author": "Ann"}),
    ("GET", "/staff/api/faq/export", None),
    ("GET", "/staff/api/faq/{entry_id}", None),
    ("PUT", "/staff/api/faq/{entry_id}", {"question": "Q?", "answer": "A.", "author": "Ann", "base_version": 1}),
    ("POST", "/staff/api/faq/{entry_id}/publish", {"actor": "Ann"}),
    ("POST", "/staff/api/faq/{entry_id}/approve", {"actor": "Ann"}),
    ("POST", "/staff/api/faq/{entry_id}/unpublish", {"actor": "Ann"}),
    ("POST", "/staff/api/faq/{entry_id}/rollback", {"actor": "Ann", "version": 1}),
    ("GET", "/staff/api/faq/{entry_id}/diff", None),
    ("POST", "/staff/api/faq/{entry_id}/preview", {"message": "gift cards?"}),
    ("GET", "/staff/api/audit", None),
    ("GET", "/staff/api/audit.csv", None),
    ("GET", "/staff/api/clinic-details", None),
    ("PUT", "/staff/api/clinic-details/{key}", {"value": "Behind the building.", "author": "Ann"}),
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
    resp = client.request(method, path.format(entry_id=1, key="parking"), json=body, headers=headers)
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
    resp = c.request(method, path.format(entry_id=1, key="parking"), json=body, headers=AUTH)
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


def _pairwise_grouping(rows, vectors, threshold):  # type: ignore[no-untyped-def]
    """The grouping as it was (issue 16 item 8's baseline), kept once in the benchmark that compares them."""
    from tools.bench_grouping import greedy_baseline

    return greedy_baseline(rows, vectors, threshold)


def _rows(texts: list[str]) -> list[dict]:  # type: ignore[type-arg]
    """Store-shaped rows, newest first, one minute apart (some repeated wordings, some shared minutes)."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 24, 18, tzinfo=UTC)
    return [{"id": len(texts) - n, "question": t, "created_at": (start - timedelta(minutes=n // 2)).isoformat()}
            for n, t in enumerate(texts)]


def test_grouping_matches_the_pairwise_reference_on_fixed_vectors() -> None:
    from bot.channels.staff import group_questions

    rng = np.random.default_rng(20261124)
    centres = rng.standard_normal((25, 64))
    # Points spread around a few centres, so cosines fall on both sides of every threshold below; chains of
    # paraphrases join through any member, repeated vectors and exact ties between two groups are in there too.
    vecs = centres[rng.integers(0, 25, 300)] + rng.standard_normal((300, 64)) * rng.uniform(0.2, 0.9, (300, 1))
    vecs[50:60] = vecs[40:50]
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    texts = [f"question {i % 220}" for i in range(300)]  # repeated wordings: variants dedupe and cap at 5
    rows = _rows(texts)
    for threshold in (0.3, 0.5, 0.75, 0.9, 1.01):
        expected = _pairwise_grouping(rows, vecs, threshold)
        assert group_questions(rows, vecs, threshold=threshold) == expected, threshold
    assert 1 < len(_pairwise_grouping(rows, vecs, 0.5)) < 200  # the case is not degenerate
    tie = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6], [np.sqrt(0.5), np.sqrt(0.5)]], dtype=np.float32)
    tie_rows = _rows(list("abcde"))
    assert group_questions(tie_rows, tie, threshold=0.7) == _pairwise_grouping(tie_rows, tie, 0.7)
    broken = vecs[:20].copy()
    broken[3] = np.nan
    assert group_questions(rows[:20], broken, threshold=0.5) == _pairwise_grouping(rows[:20], broken, 0.5)
    assert group_questions([], np.zeros((0, 64), dtype=np.float32)) == []


def test_grouping_keeps_real_paraphrases_together(embedder) -> None:  # type: ignore[no-untyped-def]
    from bot.channels.staff import SIMILAR, group_questions

    asked = {  # each topic's wordings newest first
        "gift": ["Do you offer gift cards?", "do you sell gift cards", "Can I buy a gift card?"],
        # A chain: the first two and the last two are close, the two ends are not.
        "parking": ["Is there parking near the clinic?", "Does the clinic have parking?", "Is there parking nearby?",
                    "is parking available near you"],
        "price": ["How much does a session cost?", "What is the price of a session?", "how much is one session",
                  "What does a session cost?"],
        # Close to the next topic in words, a different question: they stay apart.
        "insurance accepted": ["Do you take insurance?", "Do you accept my insurance?"],
        "insurance covers": ["Does insurance cover a session?", "Is a session covered by insurance?",
                             "Will my insurance pay for a session?"],
        "hours": ["What are your opening hours?"],
    }
    texts = [q for i in range(4) for qs in asked.values() for q in qs[i:i + 1]]  # the topics interleaved
    texts.append("Do you offer gift cards?")  # asked again
    rows = _rows(texts)
    vecs = embedder.embed(texts)
    groups = group_questions(rows, vecs)
    assert groups == _pairwise_grouping(rows, vecs, SIMILAR)
    topic = {q: name for name, qs in asked.items() for q in qs}
    by_id = {r["id"]: r["question"] for r in rows}
    assert sorted([topic[by_id[i]] for i in g["ids"]] for g in groups) == sorted(
        [name] * (len(qs) + (name == "gift")) for name, qs in asked.items())
    ends = embedder.embed([asked["parking"][1], asked["parking"][3]])
    assert float(ends[0] @ ends[1]) < SIMILAR  # together only through the paraphrases between them
    gift = next(g for g in groups if g["question"] == "Do you offer gift cards?")
    assert gift["count"] == 4 and gift["variants"] == ["do you sell gift cards", "Can I buy a gift card?"]


def test_unanswered_groups_say_whether_an_article_now_answers_them(make_client, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from tests.conftest import KNOWLEDGE

    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    c = make_client(data_dir, knowledge_dir=knowledge)
    for text in ["Do you offer gift cards?", "Does the clinic have parking?", "Is there parking at the clinic?"]:
        assert c.post("/chat", json={"message": text}).json()["kind"] == "handoff", text
    store = c.app.state.runtime.store
    before = store.counts()
    groups = c.get("/staff/api/unanswered", headers=AUTH).json()["groups"]
    assert len(groups) == 2 and not any(g["answered_now"] for g in groups), groups

    # The clinic writes an article on parking; gift cards always go to the phone, whatever the articles say.
    (knowledge / "parking.md").write_text(
        '---\ntitle: Parking at the clinic\nurl: ""\nupdated: 2026-11-24\nsummary: Where to park.\n---\n\n'
        "# Parking at the clinic\n\n## Where to park\n\nThe clinic has free parking in the lot behind the "
        "building, and there is more parking on the street out front.\n", encoding="utf-8")
    assert c.post("/staff/api/reindex", headers=AUTH).json()["embedded"] > 0
    groups = c.get("/staff/api/unanswered", headers=AUTH).json()["groups"]
    now = {g["question"]: (g["count"], g["answered_now"]) for g in groups}
    assert now == {"Is there parking at the clinic?": (2, True), "Do you offer gift cards?": (1, False)}, groups
    assert store.counts() == before  # the checks are previews: nothing stored, the list itself unchanged


def test_answered_now_checks_the_first_40_groups_together_as_staff_previews(make_client, data_dir,
                                                                            monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from bot.types import Reply

    c = make_client(data_dir)
    runtime = c.app.state.runtime
    for n in range(45):
        runtime.store.record_exchange(f"s{n}", "web", f"q{n}", "handoff", "sorry", unanswered_question=f"q{n}")
    # Every question its own group (one-hot vectors), so there are 45 groups and only 40 get checked.
    monkeypatch.setattr(runtime, "embedder", _OneHot())
    seen: list[tuple[str, str, str]] = []
    running = peak = 0

    async def fake_reply(message, session):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        seen.append((message.text, message.channel, session.id))
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return Reply(kind="answer" if int(message.text[1:]) % 2 else "handoff", reply="x")

    monkeypatch.setattr(runtime.chatbot, "reply", fake_reply)
    groups = c.get("/staff/api/unanswered", headers=AUTH).json()["groups"]
    assert len(groups) == 45 and len(seen) == 40 and peak == 40
    assert {(ch, sid) for _, ch, sid in seen} == {("staff", "staff-preview")}
    assert {t for t, _, _ in seen} == {g["question"] for g in groups[:40]}
    assert [g["answered_now"] for g in groups[:40]] == [int(g["question"][1:]) % 2 == 1 for g in groups[:40]]
    assert not any(g["answered_now"] for g in groups[40:])

    async def broken_reply(message, session):  # type: ignore[no-untyped-def]
        raise RuntimeError("model down")

    monkeypatch.setattr(runtime.chatbot, "reply", broken_reply)
    resp = c.get("/staff/api/unanswered", headers=AUTH)
    assert resp.status_code == 200 and not any(g["answered_now"] for g in resp.json()["groups"])


class _OneHot:
    """An embedder that makes every distinct text orthogonal to the others."""

    name, dim = "one-hot", 64

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, t in enumerate(texts):
            out[n, self.seen.setdefault(t, len(self.seen))] = 1
        return out


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
    assert set(today) == {"date", "answer", "handoff", "emergency", "booking", "smalltalk", "total", "answered_share"}
    assert (today["answer"], today["handoff"], today["emergency"], today["booking"]) == (2, 1, 1, 1)
    assert today["total"] == 5 and data["totals"]["answer"] == 2
    assert data["answered_share"] == pytest.approx(2 / 3, abs=1e-3)
    assert today["answered_share"] == pytest.approx(2 / 3, abs=1e-3)
    assert all(d["answered_share"] is None for d in days[:-1])  # no questions those days: no share, not 0


def test_stats_give_each_day_its_own_answered_share(make_client, data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    c = make_client(data_dir)
    today = datetime.now(UTC).date()
    day = [(today - timedelta(days=n)).isoformat() for n in range(4)]
    counts = [(day[3], "answer", 1), (day[3], "handoff", 3),  # a quarter answered
              (day[2], "handoff", 2),  # none answered
              (day[1], "booking", 4), (day[1], "emergency", 1),  # no questions at all
              (day[0], "answer", 9), (day[0], "handoff", 1), (day[0], "smalltalk", 5)]
    store = c.app.state.runtime.store
    monkeypatch.setattr(store, "daily_counts", lambda days: [{"date": d, "kind": k, "count": n} for d, k, n in counts])
    data = c.get("/staff/api/stats", headers=AUTH).json()
    shares = {d["date"]: d["answered_share"] for d in data["days"]}
    assert [shares[d] for d in reversed(day)] == [0.25, 0.0, None, 0.9]
    assert all(shares[d["date"]] is None for d in data["days"][:-4])
    assert data["answered_share"] == pytest.approx(10 / 16)  # the month's share is over all its questions


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


def test_a_second_load_of_the_unanswered_list_embeds_only_new_questions(embedder) -> None:  # type: ignore[no-untyped-def]
    from bot.channels import staff

    calls: list[list[str]] = []

    class Counting:
        name = "counting-" + embedder.name

        def embed(self, texts: list[str]) -> np.ndarray:
            calls.append(list(texts))
            return np.asarray(embedder.embed(texts))

    rows = [{"id": n, "question": q, "created_at": "2026-12-01T10:00:00+00:00"}
            for n, q in enumerate(["is there parking", "where do I park", "do you sell gift cards"], 1)]
    first = staff._embed_and_group(Counting(), rows)
    again = staff._embed_and_group(Counting(), [*rows, {"id": 4, "question": "gift certificate?",
                                                        "created_at": "2026-12-02T10:00:00+00:00"}])
    assert calls == [["is there parking", "where do I park", "do you sell gift cards"], ["gift certificate?"]]
    assert sum(g["count"] for g in first) == 3 and sum(g["count"] for g in again) == 4
    assert not any("park" in key for key in staff._VECTORS)  # hashed keys: no patient text held
