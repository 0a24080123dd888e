"""The package installs the standard way: pyproject declares what the lock pins, and a built wheel serves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import KNOWLEDGE, ROOT, STAFF_TOKEN, free_port


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_lock_satisfies_the_declared_dependencies() -> None:
    lock = _lock()
    deps = [Requirement(d) for d in _project()["dependencies"]]
    assert len(deps) > 25
    for req in deps:
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is declared but not in requirements.lock"
        assert req.specifier.contains(lock[name], prereleases=True), f"lock {name}=={lock[name]} vs {req}"


def test_requirements_txt_and_pyproject_agree() -> None:
    declared = {canonicalize_name(Requirement(d).name): str(Requirement(d).specifier)
                for d in _project()["dependencies"]}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            assert canonicalize_name(req.name) in declared, f"{req.name} is missing from pyproject.toml"
            if str(req.specifier):
                assert declared[canonicalize_name(req.name)] == str(req.specifier), req.name
    assert "slowapi" not in declared
    assert _project()["scripts"]["clinic-bot"] == "bot.cli:main"
    assert {"llm", "dev"} <= set(_project()["optional-dependencies"])


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_built_wheel_installs_in_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    """`python -m build`, a fresh venv, torch first, `pip install <wheel>` (the lock as constraints), `clinic-bot
    serve`. pip reads wheels from its cache and the machine's wheel folder, so this takes minutes, not hours."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = list(dist.glob("clinic_bot-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=600)
    subprocess.run([*pip, str(wheel), "-c", str(ROOT / "requirements.lock")], check=True, timeout=900)
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(DATA_DIR=str(data), KNOWLEDGE_DIR=str(KNOWLEDGE), STAFF_TOKEN=STAFF_TOKEN)
    log = (tmp_path / "serve.log").open("wb")
    # Run from an empty folder: the installed package must be enough (no ./bot on the path).
    proc = subprocess.Popen([str(venv / "bin" / "clinic-bot"), "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("clinic-bot serve did not become ready: " + (tmp_path / "serve.log").read_text()[-3000:])
        body = httpx.post(f"http://127.0.0.1:{port}/chat", json={"message": "How long is the psoas?"}, timeout=30).json()
        assert body["kind"] == "answer" and "16 inches" in body["reply"]
        assert re.search(r"/widget\.js", httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text)  # static files
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_the_service_package_imports_nothing_from_the_tools() -> None:
    """Benchmarks and evaluation live in tools/ and are not shipped: bot/ must never need them."""
    import ast

    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "tools" or n.startswith("tools.") for n in names), f"{path} imports {names}"
    assert not list((ROOT / "bot").glob("bench*.py")) and not list((ROOT / "bot").glob("evaluate*.py"))
