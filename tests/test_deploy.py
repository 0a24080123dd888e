"""docker-compose.yml and Dockerfile: parsed by a real compose implementation, kept in step with the README."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        unavailable("docker-compose (Debian package) is not installed")
    clean = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "STAFF_TOKEN")}
    return subprocess.run([exe, "-f", str(COMPOSE), "config"], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_compose_file_is_valid_and_resolves() -> None:
    out = _compose({"POSTGRES_PASSWORD": "pw-for-test", "STAFF_TOKEN": "token-for-test-0123456789"})
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert {"chroma", "postgres", "redis", "bot", "ingest"} <= set(services)
    assert re.fullmatch(r"chromadb/chroma:\d+\.\d+\.\d+", services["chroma"]["image"])  # pinned, not latest
    assert "healthcheck" in services["chroma"] and "healthcheck" in services["postgres"]
    assert any("chroma-data" in str(v) for v in services["chroma"]["volumes"])
    assert any("postgres-data" in str(v) for v in services["postgres"]["volumes"])
    env = services["bot"]["environment"]
    assert env["CHROMA_HOST"] == "chroma" and env["ENV"] == "production"
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["STAFF_TOKEN"] == "token-for-test-0123456789"
    assert services["bot"]["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    assert services["ingest"]["restart"] == "no"


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "STAFF_TOKEN"])
def test_compose_refuses_missing_secrets(missing: str) -> None:
    env = {"POSTGRES_PASSWORD": "pw-for-test", "STAFF_TOKEN": "token-for-test-0123456789"}
    env.pop(missing)
    out = _compose(env)
    assert out.returncode != 0
    assert missing in out.stderr


def test_dockerfile_runs_what_the_readme_runs() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    assert "RUN make install" in docker  # the same install as `make run`
    assert "torch==2.13.0" in makefile  # CPU torch, pinned, installed first
    assert re.search(r"^USER (?!root)\w+", docker, re.M)
    assert "HEALTHCHECK" in docker and "/health" in docker
    assert '"-m", "bot", "serve"' in docker
    compose = COMPOSE.read_text()
    assert '"-m", "bot", "ingest"' in compose and '"-m", "bot", "serve"' in compose
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_optional_proxy_cuts_off_slow_clients_and_owns_forwarded_for() -> None:
    out = _compose({"POSTGRES_PASSWORD": "pw-for-test", "STAFF_TOKEN": "token-for-test-0123456789",
                    "COMPOSE_PROFILES": "proxy"})
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", services["proxy"]["image"])
    assert "FORWARDED_ALLOW_IPS" in services["bot"]["environment"]
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "keepalive_timeout", "client_max_body_size",
                      "limit_conn", "proxy_set_header X-Forwarded-For $remote_addr"):
        assert directive in conf, directive
