"""Fuzzing against a live server: schemathesis over every route of the OpenAPI schema (staff routes with and
without the token) and signed random Messenger webhook bodies. No 500 anywhere, and the server stays up."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import STAFF_TOKEN, LiveServer, free_port

SECRET = "fuzz-app-secret-0123456789"
STAFF_PATHS = ("/staff", "/search")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, built_index: Path) -> Iterator[LiveServer]:
    """A live server with the Messenger channel configured; its Graph API address refuses connections."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(built_index, data)
    srv = LiveServer(data, env={"MESSENGER_APP_SECRET": SECRET, "MESSENGER_VERIFY_TOKEN": "fuzz-verify-token-0123",
                                "MESSENGER_PAGE_ACCESS_TOKEN": "fuzz-page-token-0123456789",
                                "GRAPH_API_BASE": f"http://127.0.0.1:{free_port()}"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_no_route_answers_500(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    tested: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        staff = operation.path.startswith(STAFF_PATHS)
        # Staff routes are fuzzed signed in (the real handlers run) and signed out (the guard runs).
        for headers in ([{"Authorization": f"Bearer {STAFF_TOKEN}"}, {}] if staff else [{}]):
            _fuzz(operation.as_strategy(), server.url, headers, failures)
        tested.add(f"{operation.method.upper()} {operation.path}")
    # Every channel's routes were in the schema and fuzzed.
    for route in ("POST /chat", "POST /chat/stream", "POST /feedback", "POST /search", "GET /widget.js",
                  "POST /staff/api/ask", "GET /staff/api/unanswered", "POST /staff/api/reindex",
                  "GET /articles/{slug}", "GET /messenger/webhook", "POST /messenger/webhook"):
        assert route in tested, (route, sorted(tested))
    assert not failures, failures[:10]
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200


def _fuzz(strategy, base_url: str, headers: dict[str, str], failures: list[str]) -> None:  # type: ignore[no-untyped-def]
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):  # type: ignore[no-untyped-def]
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.path} -> {response.status_code}")

    run()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                     max_leaves=20)
_event = st.fixed_dictionaries({}, optional={
    "sender": st.fixed_dictionaries({"id": st.text(max_size=20) | st.integers()}) | _json,
    "recipient": st.fixed_dictionaries({"id": st.text(max_size=20)}) | _json,
    "timestamp": st.integers() | _json,
    "message": st.fixed_dictionaries({}, optional={
        "mid": st.text(max_size=30) | _json, "text": st.text(max_size=300) | _json, "is_echo": st.booleans() | _json,
        "quick_reply": st.fixed_dictionaries({"payload": st.text(max_size=50)}) | _json,
        "attachments": st.lists(_json, max_size=2) | _json, "app_id": st.integers() | _json}) | _json,
    "postback": st.fixed_dictionaries({}, optional={"payload": st.text(max_size=50) | _json,
                                                    "title": st.text(max_size=20), "mid": st.text(max_size=20)}) | _json,
    "delivery": _json, "read": _json,
    "pass_thread_control": st.fixed_dictionaries({"new_owner_app_id": st.text(max_size=20) | st.integers()}) | _json,
    "take_thread_control": _json,
})
_body = st.fixed_dictionaries({}, optional={
    "object": st.sampled_from(["page", "instagram", ""]) | _json,
    "entry": st.lists(st.fixed_dictionaries({}, optional={
        "id": st.text(max_size=20) | _json, "time": st.integers() | _json,
        "messaging": st.lists(_event, max_size=3) | _json, "standby": st.lists(_event, max_size=2) | _json}),
        max_size=3) | _json,
}) | _json


def test_signed_random_webhook_bodies_never_500(server: LiveServer) -> None:
    failures: list[str] = []

    @settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=_body)
    def run(body):  # type: ignore[no-untyped-def]
        raw = json.dumps(body, ensure_ascii=False).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        r = httpx.post(server.url + "/messenger/webhook", content=raw, timeout=10,
                       headers={"content-type": "application/json", "x-hub-signature-256": sig})
        if r.status_code >= 500:
            failures.append(f"{r.status_code}: {raw[:200]!r}")

    run()
    assert not failures, failures[:5]
    # The background workers survived whatever they were handed.
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
