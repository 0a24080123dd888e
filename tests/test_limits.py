"""Rate limits: 429 with Retry-After per client and route, shared through Redis across app instances."""

from __future__ import annotations

import os
import uuid

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
