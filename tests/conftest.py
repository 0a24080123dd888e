"""Shared fixtures: the real embedding model (loaded once), a tmp DATA_DIR, the app in-process, a live server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
SHARED = ROOT.parent / "shared"
STAFF_TOKEN = "test-staff-token-0123456789"
REVIEWER_TOKEN = "test-reviewer-token-9876543210"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real all-MiniLM-L6-v2, loaded once for the whole run."""
    from bot.config import Settings
    from bot.embeddings import make_embedder

    return make_embedder(Settings())


def unavailable(reason: str) -> NoReturn:
    """A real service the suite needs is missing: fail and say so (never skip into green)."""
    pytest.fail(f"{reason}; `make test` starts or installs it (tests/services.sh)", pytrace=False)


def make_settings(data_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Settings for a test: tmp DATA_DIR, the repo's knowledge, a staff token; env vars ignored."""
    from bot.config import Settings

    values: dict[str, object] = {"data_dir": data_dir, "knowledge_dir": KNOWLEDGE, "staff_token": STAFF_TOKEN,
                                 "database_url": None, "chroma_host": None, "redis_url": None,
                                 # Tests talk from one address; limits get their own tests.
                                 "rate_limit_chat": "100000/minute", "rate_limit_search": "100000/minute",
                                 "rate_limit_staff_failures": "100000/minute",
                                 "rate_limit_staff_failures_global": "100000/minute"}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """A DATA_DIR with knowledge/ ingested once; copy it for tests that change things."""
    from bot.index import IndexStore
    from bot.indexing import ingest
    from bot.understanding import make_understander

    data = tmp_path_factory.mktemp("built")
    ingest(KNOWLEDGE, IndexStore(make_settings(data)), embedder, progress=False)
    # The banks' vectors and trained weights too, so every app and live server of the run starts from them.
    make_understander(embedder, data / "cache")
    return data


@pytest.fixture
def data_dir(tmp_path: Path, built_index: Path) -> Path:
    """A private copy of the built index for one test."""
    target = tmp_path / "data"
    shutil.copytree(built_index, target)
    return target


@pytest.fixture(scope="session")
def session_app(tmp_path_factory: pytest.TempPathFactory, built_index: Path, embedder):  # type: ignore[no-untyped-def]
    """One app for read-mostly tests (its own DATA_DIR copy), ready before the first request."""
    from bot.api import create_app

    data = tmp_path_factory.mktemp("app") / "data"
    shutil.copytree(built_index, data)
    return create_app(make_settings(data), embedder=embedder, load_in_background=False)


@pytest.fixture(scope="session")
def client(session_app) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    """TestClient over the session app."""
    from fastapi.testclient import TestClient

    with TestClient(session_app) as c:
        yield c


@pytest.fixture
def make_client(embedder):  # type: ignore[no-untyped-def]
    """Build a TestClient over a fresh app with settings overrides."""
    from fastapi.testclient import TestClient

    from bot.api import create_app

    opened: list[TestClient] = []

    def factory(data: Path, **overrides: object) -> TestClient:
        app = create_app(make_settings(data, **overrides), embedder=embedder, load_in_background=False)
        c = TestClient(app)
        c.__enter__()
        opened.append(c)
        return c

    yield factory
    for c in opened:
        c.__exit__(None, None, None)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`python -m bot serve` in a subprocess on loopback."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, workers: int = 1,
                 port: int | None = None) -> None:
        self.port = port or free_port()  # a restart may reuse the port (Meta keeps calling the same URL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        full_env = {**os.environ, "DATA_DIR": str(data_dir), "KNOWLEDGE_DIR": str(KNOWLEDGE),
                    "RATE_LIMIT_CHAT": "100000/minute", "RATE_LIMIT_SEARCH": "100000/minute",
                    "RATE_LIMIT_STAFF_FAILURES": "100000/minute", "RATE_LIMIT_STAFF_FAILURES_GLOBAL": "100000/minute",
                    "STAFF_TOKEN": STAFF_TOKEN, "REVIEWER_TOKEN": REVIEWER_TOKEN, "ALLOWED_ORIGINS": self.url,
                    **(env or {})}
        self.log = data_dir.parent / f"server-{self.port}.log"
        self._fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)], cwd=ROOT, env=full_env, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        """Block until /health answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"server not ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Terminate and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._fh.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, built_index: Path) -> Iterator[LiveServer]:
    """A real server on loopback (shared by the browser tests)."""
    data = tmp_path_factory.mktemp("live") / "data"
    shutil.copytree(built_index, data)
    server = LiveServer(data)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class SilentServer:
    """A TCP stand-in for a dependency that accepts connections and never answers (a hung Redis, say)."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self._held.append(conn)  # read nothing, answer nothing, close nothing

    def close(self) -> None:
        """Stop accepting and drop every held connection."""
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts and never answers."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
