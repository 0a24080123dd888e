"""The durable queue against a real crash: `python -m bot serve` SIGKILLed between accepting an event and sending
its reply (and again after Meta took the reply but before the worker heard back), then restarted on the same
port. Meta's stand-in records every send and echoes it back, so exactly-once is asserted on what it received."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tests.graph_stub import GraphStub
from tests.test_messenger import PAGE_TOKEN, PSID, SECRET, VERIFY, body, sign, text_event

ENV = {"MESSENGER_APP_SECRET": SECRET, "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
       "MESSENGER_LEASE_S": "2", "MESSENGER_POLL_S": "0.1", "MESSENGER_ECHO_WAIT_S": "30"}


def _post(server: LiveServer, text: str, mid: str) -> None:
    raw = json.dumps(body([text_event(text, mid)])).encode()
    resp = httpx.post(server.url + "/messenger/webhook", content=raw, timeout=10,
                      headers={"content-type": "application/json", "x-hub-signature-256": sign(raw)})
    assert resp.status_code == 200


def _keys(stub: GraphStub) -> list[str]:
    return [m["metadata"] for m in stub.sent(PSID)]


@pytest.mark.slow
def test_sigkill_between_accept_and_send_then_restart_sends_each_reply_exactly_once(data_dir: Path) -> None:
    stub = GraphStub().start()
    server = LiveServer(data_dir, env={**ENV, "GRAPH_API_BASE": stub.url})
    try:
        server.wait_ready()
        stub.echo_to(server.url + "/messenger/webhook", SECRET)
        # 1. Killed before the reply went out: Meta is slow to answer the typing indicator.
        stub.delay, stub.delay_match = 4.0, lambda c: bool(c.body and c.body.get("sender_action") == "mark_seen")
        _post(server, "hello", "m_kill_1")
        stub.wait_for(lambda: any(c.body and c.body.get("sender_action") == "mark_seen" for c in stub.calls))
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        assert stub.sent(PSID) == []  # accepted, not answered: only the database knows it
        stub.delay = 0.0
        server = LiveServer(data_dir, env={**ENV, "GRAPH_API_BASE": stub.url}, port=server.port)
        server.wait_ready()
        stub.wait_for(lambda: len(stub.sent(PSID)) >= 1, timeout=60)
        time.sleep(1.5)
        first = _keys(stub)
        assert len(first) == len(set(first)) >= 1
        # 2. Killed after Meta took the reply but before the worker heard back: the echo settles it.
        stub.delay, stub.delay_match = 4.0, lambda c: c.message is not None
        _post(server, "thanks", "m_kill_2")
        stub.wait_for(lambda: len(stub.sent(PSID)) > len(first), timeout=30)  # recorded before the slow answer
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        stub.delay = 0.0
        server = LiveServer(data_dir, env={**ENV, "GRAPH_API_BASE": stub.url}, port=server.port)
        server.wait_ready()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and _pending(server) != 0:
            time.sleep(0.3)
        keys = _keys(stub)
        assert len(keys) == len(set(keys)), keys  # no message twice
        assert len({k.rsplit(".", 1)[0] for k in keys}) == 2  # both events answered
    finally:
        stub.echo_to(None, "")
        server.stop()
        stub.stop()


def _pending(server: LiveServer) -> int:
    health = httpx.get(server.url + "/health", timeout=5).json()
    state = health.get("messenger", {})
    return int(state.get("in_flight") or 0) + int(state.get("open") if state.get("open") is not None else 1)
