"""Rate limits: 429 with Retry-After per client and route, shared through Redis across app instances."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.conftest import unavailable


def test_chat_limit_gives_429_with_retry_after(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir, rate_limit_chat="3/minute")
    codes = [c.post("/chat", json={"message": "hi"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    resp = c.post("/chat/stream", json={"message": "hi"})
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert "wait" in resp.json()["detail"]
    # Feedback counts against its own limit (same number), staff search against another.
    assert c.post("/feedback", json={"reply_id": "x", "rating": "up"}).status_code == 404


def test_search_limit(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import STAFF_TOKEN

    c = make_client(data_dir, rate_limit_search="2/minute")
    auth = {"Authorization": f"Bearer {STAFF_TOKEN}"}
    codes = [c.post("/search", json={"query": "psoas"}, headers=auth).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def _redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        unavailable(f"Redis is not reachable at {url}")
    return url


def test_limits_are_shared_through_redis(make_client, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    url = _redis_url()
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    # Two app instances (two workers) over one Redis: the limit is for both together.
    limit = "4/minute"
    salt = uuid.uuid4().hex  # a fresh key space for this run
    a = make_client(data_dir, rate_limit_chat=limit, redis_url=url, staff_token=f"shared-{salt}-token")
    b = make_client(other, rate_limit_chat=limit, redis_url=url, staff_token=f"shared-{salt}-token")
    codes = [c.post("/chat", json={"message": "hi"}).status_code for c in (a, b, a, b, a, b)]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_limiter_down_fails_open(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir, rate_limit_chat="1/minute", redis_url="redis://127.0.0.1:1/0")
    assert [c.post("/chat", json={"message": "hi"}).status_code for _ in range(3)] == [200, 200, 200]


def _loaded_app(data_dir, **overrides):  # type: ignore[no-untyped-def]
    from bot.api import create_app
    from tests.conftest import make_settings

    return create_app(make_settings(data_dir, **overrides), load_in_background=False,
                      embedder=_session_embedder())


def _session_embedder():  # type: ignore[no-untyped-def]
    from bot.config import Settings
    from bot.embeddings import make_embedder

    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = make_embedder(Settings())
    return _EMBEDDER


_EMBEDDER = None


@pytest.mark.timeout(60)
def test_hung_redis_fails_open_fast_and_never_blocks_the_loop(data_dir, silent_server) -> None:  # type: ignore[no-untyped-def]
    """A Redis that accepts and never answers: /chat answers (fail open, counted), /health stays instant."""
    import asyncio

    import httpx

    from bot import metrics

    app = _loaded_app(data_dir, rate_limit_chat="1/minute", redis_url=f"redis://127.0.0.1:{silent_server.port}/0")
    before = metrics.RATE_LIMIT_FAILURES.labels("timeout")._value.get()

    async def run() -> tuple[list[int], float, float]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
                started = time.perf_counter()
                chats = [asyncio.create_task(c.post("/chat", json={"message": "hi"})) for _ in range(4)]
                await asyncio.sleep(0.05)  # the chats are now waiting on Redis
                t0 = time.perf_counter()
                health = await c.get("/health")
                health_ms = (time.perf_counter() - t0) * 1000
                assert health.status_code == 200
                codes = [r.status_code for r in await asyncio.gather(*chats)]
                again = await c.post("/chat", json={"message": "hi"})  # Redis is left alone for a while now
                return codes + [again.status_code], health_ms, time.perf_counter() - started

    codes, health_ms, total = asyncio.run(run())
    assert codes == [200] * 5  # over the 1/minute limit, but the limiter is unavailable: fail open
    assert health_ms < 100, f"/health took {health_ms:.0f} ms while Redis hung"
    assert total < 3, f"requests took {total:.1f} s with a hung Redis"
    assert metrics.RATE_LIMIT_FAILURES.labels("timeout")._value.get() > before


def test_failed_staff_sign_ins_are_limited_and_logged_without_the_token(make_client, data_dir,  # type: ignore[no-untyped-def]
                                                                     caplog) -> None:
    from tests.conftest import STAFF_TOKEN

    c = make_client(data_dir, rate_limit_staff_failures="3/minute", forwarded_allow_ips=["testclient"])
    wrong = {"Authorization": "Bearer guess-number-1234567", "X-Forwarded-For": "203.0.113.7"}
    right = {"Authorization": f"Bearer {STAFF_TOKEN}", "X-Forwarded-For": "203.0.113.7"}
    with caplog.at_level("WARNING", logger="bot.auth"):
        codes = [c.get("/staff/api/session", headers=wrong).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    # Blocked before the token is compared: the right token from that address waits too ...
    resp = c.get("/staff/api/session", headers=right)
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    # ... but not from another address.
    assert c.get("/staff/api/session", headers={**right, "X-Forwarded-For": "203.0.113.8"}).status_code == 200
    failures = [r for r in caplog.records if r.getMessage() == "staff sign-in failed"]
    assert len(failures) == 3
    assert not any("guess-number" in r.getMessage() or "guess-number" in str(r.__dict__) for r in caplog.records)


def test_failed_staff_sign_ins_have_a_global_budget(make_client, data_dir) -> None:  # type: ignore[no-untyped-def]
    c = make_client(data_dir, rate_limit_staff_failures_global="4/minute", forwarded_allow_ips=["testclient"])
    codes = [c.get("/staff/api/session", headers={"Authorization": "Bearer nope-nope-nope-nope",
                                                   "X-Forwarded-For": f"198.51.100.{n}"}).status_code
             for n in range(6)]
    assert codes == [401] * 4 + [429] * 2


def test_forwarded_for_only_from_trusted_proxies_and_ipv6_by_64(make_client, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    def codes(c, addresses):  # type: ignore[no-untyped-def]
        return [c.post("/chat", json={"message": "hi"}, headers={"X-Forwarded-For": a}).status_code
                for a in addresses]

    behind = make_client(data_dir, rate_limit_chat="2/minute", forwarded_allow_ips=["testclient"])
    # Behind a trusted proxy every patient has their own bucket ...
    assert codes(behind, ["203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"]) == [200, 200, 429, 200]
    # ... IPv6 addresses of one /64 share one, another /64 has its own.
    assert codes(behind, ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::1"]) == [200, 200, 429, 200]
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    direct = make_client(other, rate_limit_chat="2/minute")
    # Without FORWARDED_ALLOW_IPS the header is ignored: a client cannot pick a fresh bucket per request.
    assert codes(direct, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [200, 200, 429]
