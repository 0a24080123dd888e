"""Fault injection with real processes: a Redis and a Chroma server paused (SIGSTOP) under a live bot server.

Each test starts its own redis-server / `chroma run` on a free port (the machine's shared ones are never touched)
and its own `python -m bot serve`; /health must answer within 100 ms while a dependency hangs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import KNOWLEDGE, STAFF_TOKEN, LiveServer, free_port, make_settings, unavailable
from tests.test_scale import ChromaServer

pytestmark = pytest.mark.slow
HEALTH_BUDGET_MS = 100


class RedisServer:
    """A throwaway redis-server on loopback."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            unavailable("redis-server is not installed")
        self.port = free_port()
        self.proc = subprocess.Popen([str(exe), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_chroma(tmp_path: Path, embedder) -> Iterator[ChromaServer]:  # type: ignore[no-untyped-def]
    from bot.index import IndexStore
    from bot.indexing import ingest

    server = ChromaServer(tmp_path / "chroma")
    server.start()
    ingest(KNOWLEDGE, IndexStore(make_settings(tmp_path / "ingest", chroma_host="127.0.0.1",
                                               chroma_port=server.port)), embedder, progress=False)
    try:
        yield server
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.kill()


_PROBE: dict[str, httpx.Client] = {}


def _health_ms(url: str) -> tuple[float, int]:
    # One kept-alive client, as a load balancer's probe: a new httpx client costs 30-50 ms of its own here.
    client = _PROBE.setdefault(url, httpx.Client(timeout=5))
    started = time.perf_counter()
    resp = client.get(url + "/health")
    return (time.perf_counter() - started) * 1000, resp.status_code


def _chat(url: str, message: str = "how long is the psoas") -> tuple[float, int, str]:
    started = time.perf_counter()
    resp = httpx.post(url + "/chat", json={"message": message}, timeout=30)
    kind = resp.json().get("kind", "") if resp.status_code == 200 else ""
    return time.perf_counter() - started, resp.status_code, kind


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    servers: list[LiveServer] = []

    def start(env: dict[str, str], workers: int = 1) -> LiveServer:
        data = tmp_path / f"data{len(servers)}"
        data.mkdir()
        server = LiveServer(data, env=env, workers=workers)
        servers.append(server)
        server.wait_ready()
        _health_ms(server.url)  # open the probe's connection
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.mark.timeout(180)
def test_paused_redis_freezes_nothing(own_redis: RedisServer, server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0", "RATE_LIMIT_CHAT": "1000/minute"})
    assert _chat(server.url)[1] == 200  # the limiter has connected
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(4) as pool:
            chats = [pool.submit(_chat, server.url) for _ in range(4)]
            time.sleep(0.05)  # the chats are waiting on Redis now
            health = [_health_ms(server.url) for _ in range(5)]
            results = [c.result() for c in chats]
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    print(f"\nRedis paused: /health {[round(ms, 1) for ms, _ in health]} ms; /chat "
          f"{[round(s, 2) for s, _, _ in results]} s")
    assert all(code == 200 for _, code in health)
    assert max(ms for ms, _ in health) < HEALTH_BUDGET_MS
    assert all(code == 200 and kind == "answer" for _, code, kind in results)  # failed open
    assert max(s for s, _, _ in results) < 2.0
    assert "bot_ratelimit_failures_total" in httpx.get(server.url + "/metrics").text


@pytest.mark.timeout(180)
def test_paused_chroma_leaves_health_and_staff_search_answering(own_chroma: ChromaServer,  # type: ignore[no-untyped-def]
                                                                server_factory) -> None:
    server = server_factory({"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(own_chroma.port), "INDEX_TIMEOUT": "1"})
    auth = {"Authorization": f"Bearer {STAFF_TOKEN}"}
    assert httpx.post(server.url + "/search", json={"query": "psoas"}, headers=auth, timeout=10).status_code == 200
    assert own_chroma.proc is not None
    os.kill(own_chroma.proc.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(3) as pool:
            searches = [pool.submit(httpx.post, server.url + "/search", json={"query": "hip flexor"}, headers=auth,
                                    timeout=30) for _ in range(3)]
            health = []
            for _ in range(12):  # over 3 s: past the checks' grace period, so "degraded" shows too
                health.append(_health_ms(server.url))
                time.sleep(0.25)
            started = time.perf_counter()
            codes = [s.result().status_code for s in searches]
            waited = time.perf_counter() - started
    finally:
        os.kill(own_chroma.proc.pid, signal.SIGCONT)
    print(f"\nChroma paused: /health {[round(ms, 1) for ms, _ in health]} ms, statuses {[c for _, c in health]}; "
          f"/search {codes}")
    assert max(ms for ms, _ in health) < HEALTH_BUDGET_MS
    assert health[-1][1] == 503  # a hung index is reported
    assert codes == [503] * 3 and waited < 2.0  # INDEX_TIMEOUT=1: the staff are told, not kept waiting
    deadline = time.monotonic() + 30
    while _health_ms(server.url)[1] != 200:  # and it recovers once Chroma answers again
        assert time.monotonic() < deadline, "did not recover after Chroma resumed"
        time.sleep(0.5)


@pytest.mark.timeout(180)
def test_paused_chroma_chat_hands_off_in_time_and_health_answers(own_chroma: ChromaServer,  # type: ignore[no-untyped-def]
                                                                 server_factory) -> None:
    server = server_factory({"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(own_chroma.port), "INDEX_TIMEOUT": "1"})
    assert _chat(server.url)[2] == "answer"
    assert own_chroma.proc is not None
    os.kill(own_chroma.proc.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(3) as pool:
            chats = [pool.submit(_chat, server.url, q) for q in ("where does the psoas attach",
                                                                  "what is myofascial release", "hip flexor")]
            time.sleep(0.1)
            health = [_health_ms(server.url) for _ in range(5)]
            results = [c.result() for c in chats]
    finally:
        os.kill(own_chroma.proc.pid, signal.SIGCONT)
    assert max(ms for ms, _ in health) < HEALTH_BUDGET_MS
    assert all(code == 200 and kind == "handoff" and secs < 2.5 for secs, code, kind in results)
