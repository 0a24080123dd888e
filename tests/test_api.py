"""The HTTP contract: /chat, /chat/stream, /feedback, /search, /health; bad input is a clear 4xx."""

from __future__ import annotations

import json

import pytest

from tests.conftest import STAFF_TOKEN

REPLY_KEYS = {"session_id", "kind", "reply", "citations", "actions", "suggestions", "disclaimer", "lang"}
AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}


def chat(client, message: str, session_id: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    resp = client.post("/chat", json={"message": message, "session_id": session_id})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_answer_has_the_contract_shape_and_a_citation(client) -> None:  # type: ignore[no-untyped-def]
    body = chat(client, "How long is the psoas?")
    assert set(body) >= REPLY_KEYS
    assert body["kind"] == "answer"
    # The answer comes first, with no "Our article on ... explains:" in front of it: the citation carries the source.
    assert "16 inches" in body["reply"].split(". ")[0]
    assert not body["reply"].lower().startswith(("our article", "from our article"))
    assert body["citations"] and {"title", "source", "url", "snippet"} <= set(body["citations"][0])
    assert body["citations"][0]["source"] == "psoas-muscle.md"
    assert body["disclaimer"] and "not medical advice" in body["disclaimer"]
    assert {"type": "call", "label": "Call the clinic", "value": "tel:+18284587218"} in body["actions"]
    assert len(body["session_id"]) >= 24


def test_every_answer_sentence_comes_from_an_article(client) -> None:  # type: ignore[no-untyped-def]
    from bot.documents import load_passages
    from bot.sentences import split_sentences
    from tests.conftest import KNOWLEDGE

    passages, _, _ = load_passages(KNOWLEDGE)
    corpus = " ".join(p.text for p in passages)
    for question in ["what is myofascial release", "where does the psoas start", "what is pelvic instability"]:
        body = chat(client, question)
        assert body["kind"] == "answer"
        from bot.phrases import Phrases

        say = Phrases(client.app.state.clinic)
        framing = {say.say("book_line"), say.say("call_to_talk")}
        for sentence in split_sentences(body["reply"]):
            if sentence in framing:
                continue
            assert sentence in corpus, sentence


def test_follow_up_uses_the_conversation(client) -> None:  # type: ignore[no-untyped-def]
    first = chat(client, "tell me about the psoas")
    second = chat(client, "how long is it?", first["session_id"])
    assert second["session_id"] == first["session_id"]
    assert second["kind"] == "answer" and "16 inches" in second["reply"]


def test_unknown_or_expired_session_starts_a_new_one(client) -> None:  # type: ignore[no-untyped-def]
    body = chat(client, "what is the psoas", "not-a-real-session-id")
    assert body["session_id"] != "not-a-real-session-id" and body["kind"] == "answer"


@pytest.mark.parametrize(
    ("message", "kind", "must"),
    [
        ("How much does a session cost?", "handoff", "(828) 458-7218"),
        ("what are your opening hours on saturday", "handoff", "(828) 458-7218"),
        ("do you take blue cross insurance", "handoff", "(828) 458-7218"),
        ("who is the therapist", "handoff", "(828) 458-7218"),
        ("write me a poem about the sea", "handoff", "can only help"),
        ("I need to book an appointment next week", "booking", "(828) 458-7218"),
        ("can I talk to a real person", "handoff", "(828) 458-7218"),
        ("hi", "smalltalk", "assistant"),
        ("thanks!", "smalltalk", "welcome"),
        ("I suddenly can't control my bladder and my inner thighs are numb", "emergency", "911"),
        ("I want to kill myself", "emergency", "988"),
    ],
)
def test_reply_kinds(client, message: str, kind: str, must: str) -> None:  # type: ignore[no-untyped-def]
    body = chat(client, message)
    assert body["kind"] == kind, body
    assert must.lower() in body["reply"].lower()
    if kind == "emergency":
        assert body["actions"][0]["type"] == "emergency"
        assert "book" not in body["reply"].lower() and body["citations"] == []
    if kind in ("handoff", "emergency"):
        assert body["citations"] == []


def test_markup_is_never_echoed(client) -> None:  # type: ignore[no-untyped-def]
    body = chat(client, "<script>alert(1)</script> what is the psoas <b>bold</b>")
    assert "<script>" not in body["reply"] and "<b>" not in body["reply"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"message": ""}, "empty"),
        ({"message": "   \n\t "}, "empty"),
        ({"message": "x" * 2001}, "limit"),
        ({"message": 42}, "message"),
        ({"message": None}, "message"),
        ({"message": ["a"]}, "message"),
        ({}, "message is required"),
        ({"session_id": "abc"}, "message is required"),
        ({"message": "hi", "session_id": 5}, "session_id"),
        ({"message": "bad\u0000byte"}, "NUL"),
    ],
)
def test_bad_chat_input_is_a_clear_4xx(client, payload: dict, fragment: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/chat", json=payload)
    assert resp.status_code == 422, resp.text
    assert fragment.lower() in resp.json()["detail"].lower()


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"message": "caf\xe9"}', "application/json"),  # invalid UTF-8
        (b"", "application/json"),
        (b'["a list"]', "application/json"),
    ],
)
def test_malformed_bodies_are_4xx_not_500(client, raw: bytes, content_type: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/chat", content=raw, headers={"Content-Type": content_type})
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert resp.json()["detail"]


def test_oversized_body_is_refused_before_parsing(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/chat", content=b'{"message": "' + b"a" * 100_000 + b'"}',
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]


def test_stream_sends_sentences_then_the_whole_reply(client) -> None:  # type: ignore[no-untyped-def]
    with client.stream("POST", "/chat/stream", json={"message": "What is myofascial release?"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = "".join(resp.iter_text())
    events = [block for block in raw.replace("\r\n", "\n").split("\n\n") if block.strip()]
    names = [line.split(":", 1)[1].strip() for block in events for line in block.splitlines()
             if line.startswith("event:")]
    assert names[-1] == "reply" and names.count("sentence") >= 2
    final = json.loads([b for b in events if "event: reply" in b][0].split("data:", 1)[1])
    sentences = [json.loads(b.split("data:", 1)[1])["text"] for b in events if "event: sentence" in b]
    assert final["kind"] == "answer" and " ".join(sentences) == final["reply"]


def test_feedback_round_trip(client) -> None:  # type: ignore[no-untyped-def]
    body = chat(client, "what is the iliopsoas")
    ok = client.post("/feedback", json={"reply_id": body["reply_id"], "rating": "down", "comment": "too short"})
    assert ok.status_code == 201
    missing = client.post("/feedback", json={"reply_id": "nope", "rating": "up"})
    assert missing.status_code == 404 and "reply_id" in missing.json()["detail"]
    bad = client.post("/feedback", json={"reply_id": body["reply_id"], "rating": "meh"})
    assert bad.status_code == 422


def test_search_requires_the_staff_token(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/search", json={"query": "psoas"}).status_code == 401
    wrong = client.post("/search", json={"query": "psoas"}, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    resp = client.post("/search", json={"query": "how long is the psoas"}, headers=AUTH)
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert "16 inches" in results[0]["text"]
    assert {"title", "source", "url", "section", "text", "score"} <= set(results[0])
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_search_without_configured_token_says_how(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir, staff_token=None)
    resp = c.post("/search", json={"query": "psoas"}, headers=AUTH)
    assert resp.status_code == 503 and "STAFF_TOKEN" in resp.json()["detail"]


def test_health_reports_the_index(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["index"]["passages"] > 10 and body["index"]["built_at"]


def test_health_is_503_until_loaded(data_dir, embedder) -> None:  # type: ignore[no-untyped-def]
    import threading

    from fastapi.testclient import TestClient

    from bot.api import create_app
    from tests.conftest import make_settings

    gate = threading.Event()

    class SlowEmbedder:
        name, dim = embedder.name, embedder.dim

        def embed(self, texts):  # type: ignore[no-untyped-def]
            gate.wait(30)
            return embedder.embed(texts)

    app = create_app(make_settings(data_dir), embedder=SlowEmbedder())
    with TestClient(app) as c:
        assert c.get("/health").status_code == 503
        assert c.post("/chat", json={"message": "hi"}).status_code == 503
        gate.set()
        app.state.runtime.ready.wait(30)
        assert c.get("/health").status_code == 200


def test_docs_list_every_route(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    for path in ("/chat", "/chat/stream", "/feedback", "/search", "/health", "/metrics"):
        assert path in spec["paths"], path
    assert spec["paths"]["/chat"]["post"]["description"] or spec["paths"]["/chat"]["post"]["summary"]


def test_security_headers_and_cors(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/health")
    assert resp.headers["x-content-type-options"] == "nosniff" and resp.headers["x-request-id"]
    allowed = client.options("/chat", headers={"Origin": "http://127.0.0.1:8000",
                                               "Access-Control-Request-Method": "POST"})
    assert allowed.headers.get("access-control-allow-origin") == "http://127.0.0.1:8000"
    denied = client.options("/chat", headers={"Origin": "https://evil.example",
                                              "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in denied.headers


def test_metrics_count_replies_by_kind(client) -> None:  # type: ignore[no-untyped-def]
    client.post("/chat", json={"message": "I want to kill myself"})
    client.post("/chat", json={"message": "what is the price of a session"})
    text = client.get("/metrics").text
    assert 'bot_replies_total{channel="web",kind="emergency"}' in text
    assert "bot_unanswered_total" in text and "bot_http_request_seconds_bucket" in text
    assert 'bot_emergencies_total{level="crisis"}' in text
    assert "bot_index_passages" in text


def test_delete_session_forgets_the_conversation(client) -> None:  # type: ignore[no-untyped-def]
    """The widget's "Clear conversation": the stored turns go, and the id no longer continues anything."""
    first = chat(client, "tell me about the psoas")
    session = first["session_id"]
    chat(client, "how long is it?", session)
    store = client.app.state.runtime.store
    from sqlalchemy import func, select

    from bot.store import sessions, turns

    def stored() -> tuple[int, int]:
        with store.engine.connect() as conn:
            return (conn.scalar(select(func.count()).select_from(turns).where(turns.c.session_id == session)) or 0,
                    conn.scalar(select(func.count()).select_from(sessions).where(sessions.c.id == session)) or 0)

    assert stored() == (4, 1)
    resp = client.delete(f"/chat/session/{session}")
    assert resp.status_code == 204 and not resp.content
    assert stored() == (0, 0)
    after = chat(client, "how long is it?", session)
    assert after["session_id"] != session  # a new conversation: nothing to follow up on
    # Unknown, malformed or repeated ids: the same 204 (nothing to tell about other sessions).
    for other in (session, "not-a-session", "x" * 200):
        assert client.delete(f"/chat/session/{other}").status_code == 204
    assert client.delete("/chat/session/" + "x" * 201).status_code == 422


def test_cors_lets_the_widget_clear_a_session_and_read_retry_after(client) -> None:  # type: ignore[no-untyped-def]
    origin = "http://127.0.0.1:8000"
    pre = client.options("/chat/session/abc", headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"})
    assert pre.status_code == 200 and "DELETE" in pre.headers["access-control-allow-methods"]
    resp = client.post("/chat", json={"message": "hi"}, headers={"Origin": origin})
    assert "retry-after" in resp.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("path", ["/chat", "/chat/stream", "/feedback", "/search"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_json_routes_refuse_other_content_types(client, path: str, content_type: str | None) -> None:  # type: ignore[no-untyped-def]
    # A cross-site form or text/plain POST needs no CORS pre-flight: it must not reach a JSON route.
    headers = {"Authorization": f"Bearer {STAFF_TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    resp = client.post(path, content=b'{"message":"what is the psoas","query":"psoas"}', headers=headers)
    assert resp.status_code == 415 and "Content-Type: application/json" in resp.json()["detail"]
    ok = client.post("/chat", content=b'{"message":"what is the psoas"}',
                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


@pytest.mark.parametrize("path", ["/chat", "/feedback", "/search"])
def test_chunked_body_over_the_cap_is_413(client, path: str) -> None:  # type: ignore[no-untyped-def]
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"message": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'"}'

    resp = client.post(path, content=chunks(), headers={"Content-Type": "application/json",
                                                        "Authorization": f"Bearer {STAFF_TOKEN}"})
    assert "content-length" not in {k.lower() for k in resp.request.headers}  # really chunked
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/redoc", "/openapi.json"])
def test_ops_routes_can_require_the_staff_token_or_loopback(make_client, data_dir, path: str) -> None:  # type: ignore[no-untyped-def]
    staff = make_client(data_dir, ops_access="staff")
    assert staff.get(path).status_code == 401
    assert staff.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert staff.get(path, headers={"Authorization": f"Bearer {STAFF_TOKEN}"}).status_code == 200
    loopback = make_client(data_dir, ops_access="loopback")
    assert loopback.get(path).status_code == 403  # the test client is not 127.0.0.1
    assert loopback.get("/health").status_code == 200 and staff.get("/health").status_code == 200


def test_production_defaults_ops_routes_to_staff_only() -> None:
    from bot.api import OpsGuard
    from bot.config import Settings

    prod = Settings(_env_file=None, env="production", staff_token="Zq8-vN3xK0pL7rT2mW9yB4cF6hJ1sD5gA")  # type: ignore[call-arg]
    assert OpsGuard(None, prod).mode == "staff"
    assert OpsGuard(None, Settings(_env_file=None)).mode == "open"  # type: ignore[call-arg]


def test_docs_have_their_own_csp_and_pages_keep_the_strict_one(client) -> None:  # type: ignore[no-untyped-def]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" in client.get("/redoc").headers["content-security-policy"]
    page = client.get("/").headers["content-security-policy"]
    assert "unsafe-inline" not in page and "jsdelivr" not in page


def test_failed_start_does_not_echo_the_exception_text(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    from bot.api import Runtime
    from bot.config import load_clinic
    from tests.conftest import KNOWLEDGE, make_settings

    runtime = Runtime(make_settings(data_dir), load_clinic(KNOWLEDGE))

    class Broken:
        name, dim = "broken", 384

        def embed(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("cannot connect to postgresql://bot:hunter2pw@db/bot")

    runtime.load(Broken())  # type: ignore[arg-type]
    assert runtime.error is not None and "hunter2pw" not in runtime.error and "RuntimeError" in runtime.error
