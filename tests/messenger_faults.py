"""Fault runs for the Messenger channel (issue 14), measured from outside like Meta would see them.

    .venv/bin/python -m tests.messenger_faults [--scenario kill|sigterm|graph500|dbdown|burst] [--workers 2]

Each run starts `python -m bot serve` on PostgreSQL (a throwaway database, reached through a loopback TCP proxy
so the database can be taken away), Redis, a loopback Graph stand-in that records every send and echoes it back
to the webhook like Meta, then posts signed events (one sender's events one after another, senders at once),
injects the fault, restarts the server when it was killed, re-posts what was refused (Meta redelivers), and
counts per event: accepted (200), answered (a delivered reply carrying its idempotency key), lost, duplicated
messages, senders whose replies came out of order, and senders told twice that this is an automated assistant.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.graph_stub import GraphStub
from tests.test_messenger import PAGE_ID, PAGE_TOKEN, SECRET, VERIFY, sign

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TEXTS = ["hello", "What is the psoas?", "thanks", "Can I book an appointment?", "ok"]


class Proxy:
    """A loopback TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self.up = True
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._listen()

    def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):  # shutdown first: a bare close() does not wake the other direction's recv()
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """The database goes away."""
        self.up = False
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._conns.clear()

    def restore(self) -> None:
        """The database comes back."""
        self._listen()
        self.up = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _create_db() -> str:
    import psycopg
    from psycopg import sql

    name = f"bot_faults_{secrets.token_hex(5)}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_db(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _dropped(name: str) -> int:
    """Events the queue dropped (too old, unreadable, gave up), read straight from the database."""
    import psycopg

    with psycopg.connect(ADMIN.rsplit("/", 1)[0] + "/" + name) as conn:
        row = conn.execute("SELECT count(*) FROM messenger_events WHERE status = 'dropped'").fetchone()
    return int(row[0]) if row else 0


def _children(pid: int) -> list[int]:
    """Direct children of a process we started (uvicorn's workers), from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _kill_all(server: LiveServer, sig: int) -> None:
    pids = [server.proc.pid, *_children(server.proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _key_hash(mid: str) -> str:
    return hashlib.sha256(mid.encode()).hexdigest()[:24]


class Run:
    """One fault run: the events, what Meta's stand-in received, and the counts."""

    def __init__(self, scenario: str, workers: int, senders: int, per_sender: int) -> None:
        self.scenario, self.workers = scenario, workers
        self.senders = [f"{7100000000000000 + n}" for n in range(senders)]
        self.per_sender = per_sender
        self.accepted: dict[str, tuple[str, int]] = {}  # mid -> (psid, n)
        self.refused: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def post(self, server_url: str, psid: str, n: int) -> bool:
        mid = f"m_{self.scenario}_{psid}_{n}"
        stamp = int(time.time() * 1000)
        event = {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": stamp,
                 "message": {"mid": mid, "text": TEXTS[n % len(TEXTS)]}}
        raw = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": stamp, "messaging": [event]}]}).encode()
        try:
            resp = httpx.post(server_url + "/messenger/webhook", content=raw, timeout=20,
                              headers={"content-type": "application/json", "x-hub-signature-256": sign(raw)})
            ok = resp.status_code == 200
        except httpx.HTTPError:
            ok = False
        with self.lock:
            if ok:
                self.accepted[mid] = (psid, n)
            else:
                self.refused.append((psid, n))
        return ok

    def burst(self, server_url: str, stop: threading.Event | None = None) -> None:
        def sender(psid: str) -> None:
            for n in range(self.per_sender):
                if stop is not None and stop.is_set():
                    with self.lock:
                        self.refused.append((psid, n))
                    continue
                self.post(server_url, psid, n)

        with ThreadPoolExecutor(max_workers=min(30, len(self.senders))) as pool:
            list(pool.map(sender, self.senders))

    def redeliver(self, server_url: str) -> None:
        """Meta retries what the webhook did not acknowledge (a few rounds, in each sender's order)."""
        for _ in range(5):
            with self.lock:
                again, self.refused = sorted(self.refused), []
            if not again:
                return
            for psid, n in again:
                self.post(server_url, psid, n)
            time.sleep(1)

    def count(self, stub: GraphStub) -> dict[str, Any]:
        by_hash = {_key_hash(mid): mid for mid in self.accepted}
        delivered: dict[str, int] = {}
        answered: dict[str, list[str]] = {}  # psid -> mids in the order their first message arrived
        disclosures: dict[str, int] = {}
        first_seen: set[str] = set()
        for call in stub.ok_calls():
            message = call.message
            if not message:
                continue
            meta = str(message.get("metadata") or "")
            key = meta.split(":", 1)[1] if ":" in meta else ""
            delivered[key] = delivered.get(key, 0) + 1
            mid = by_hash.get(key.rsplit(".", 1)[0])
            psid = call.recipient or ""
            text = message.get("text") or message.get("attachment", {}).get("payload", {}).get("text", "")
            if "automated assistant, not a person" in text:
                disclosures[psid] = disclosures.get(psid, 0) + 1
            if mid is not None and mid not in first_seen:
                first_seen.add(mid)
                answered.setdefault(psid, []).append(mid)
        out_of_order = sum(1 for mids in answered.values()
                           if [self.accepted[m][1] for m in mids] != sorted(self.accepted[m][1] for m in mids))
        return {"scenario": self.scenario, "workers": self.workers, "accepted": len(self.accepted),
                "answered": len(first_seen), "lost": len(set(self.accepted) - first_seen),
                "duplicated_messages": sum(n - 1 for n in delivered.values() if n > 1),
                "senders_out_of_order": out_of_order,
                "senders_disclosed_twice": sum(1 for n in disclosures.values() if n > 1),
                "messages_sent": sum(delivered.values())}


def _open_events(server: LiveServer) -> int | None:
    try:
        state = httpx.get(server.url + "/health", timeout=5).json().get("messenger", {})
    except (httpx.HTTPError, ValueError):
        return None
    if state.get("open") is None:
        return None
    return int(state["open"]) + int(state.get("in_flight") or 0)


def run(scenario: str, workers: int) -> dict[str, Any]:
    senders, per_sender = (100, 10) if scenario == "burst" else (30, 10)
    tmp = Path(tempfile.mkdtemp(prefix="faults-"))
    data = tmp / "data"
    data.mkdir()
    db = _create_db()
    proxy = Proxy(("127.0.0.1", 5432))
    stub = GraphStub().start()
    env = {"MESSENGER_APP_SECRET": SECRET, "MESSENGER_VERIFY_TOKEN": VERIFY, "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
           "GRAPH_API_BASE": stub.url, "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{db}",
           "REDIS_URL": "redis://127.0.0.1:6379/0", "MESSENGER_LEASE_S": "5", "MESSENGER_ECHO_WAIT_S": "10",
           "MESSENGER_RETRY_MAX_S": "5"}
    result: dict[str, Any] = {}
    server = LiveServer(data, env=env, workers=workers)
    try:
        server.wait_ready(timeout=300)
        stub.echo_to(server.url + "/messenger/webhook", SECRET)
        r = Run(scenario, workers, senders, per_sender)
        stop = threading.Event()
        poster = threading.Thread(target=r.burst, args=(server.url, stop))
        started = time.monotonic()
        if scenario == "graph500":
            until = time.monotonic() + 30
            stub.fail(10**9, 500, match=lambda c: c.message is not None and time.monotonic() < until)
        poster.start()
        if scenario in ("kill", "sigterm", "burst"):
            # In the middle of the burst: after 90 acknowledged events (the run had 89), or half of 1,000.
            target = senders * per_sender // 2 if scenario == "burst" else 90
            while len(r.accepted) < target and poster.is_alive():
                time.sleep(0.01)
            result["accepted_before_fault"] = len(r.accepted)
            _kill_all(server, signal.SIGKILL if scenario in ("kill", "burst") else signal.SIGTERM)
            server.proc.wait(60)
            stop.set()
            poster.join()
            server = LiveServer(data, env=env, workers=workers, port=server.port)
            server.wait_ready(timeout=300)
            r.redeliver(server.url)
        elif scenario == "dbdown":
            time.sleep(0.5)
            proxy.cut()
            time.sleep(20)
            proxy.restore()
            poster.join()
        poster.join()
        r.redeliver(server.url)
        deadline = time.monotonic() + 600
        last, still = None, 0
        while time.monotonic() < deadline:
            counts = r.count(stub)
            opened = _open_events(server)
            if counts["lost"] == 0 and opened == 0:
                break
            # Nothing left in the queue and nothing new delivered for 60 s: what is missing stays missing.
            still = still + 1 if (opened == 0 and counts == last) else 0
            if still >= 60:
                break
            last = counts
            time.sleep(1)
        time.sleep(2)
        result.update(r.count(stub), seconds=round(time.monotonic() - started, 1), dropped=_dropped(db))
    finally:
        stub.echo_to(None, "")
        server.stop()
        stub.stop()
        proxy.cut()
        _drop_db(db)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="all", choices=["all", "kill", "sigterm", "graph500", "dbdown", "burst"])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    plan = ([("kill", 1), ("kill", 2), ("graph500", 2), ("dbdown", 2), ("sigterm", 2), ("burst", 2)]
            if args.scenario == "all" else [(args.scenario, args.workers)])
    for scenario, workers in plan:
        print(json.dumps(run(scenario, workers)), flush=True)


if __name__ == "__main__":
    main()
