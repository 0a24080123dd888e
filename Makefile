# Two commands do everything on a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev bench eval lint audit test-llm clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	# The venv's own pip is whatever the interpreter bundled (23.2.1 here): a current one first.
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip==26.3

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU build on disk.
$(VENV)/.runtime: requirements.txt requirements.lock | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.txt -c requirements.lock
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	$(BIN)/python -m bot serve --host $(HOST) --port $(PORT)

# tests/services.sh starts PostgreSQL and Redis and installs chromium / docker-compose when missing.
test: install-dev
	bash tests/services.sh
	$(BIN)/python -m pytest

bench: install-dev
	$(BIN)/python -m tools.bench

eval: install
	$(BIN)/python -m tools.evaluate

lint: install-dev
	$(BIN)/ruff check bot tools tests ingest.py
	$(BIN)/mypy bot tools

# Needs PyPI's JSON API or OSV. From the development machines and CI only the package index is reachable, so
# there every package reports "could not be audited": run it where the advisory service answers (README).
audit: install-dev
	$(BIN)/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off

# The real local model: llama-cpp-python builds from source (~6 min), then the verifier faces it.
test-llm: install-dev
	$(PIP) -r requirements-llm.txt
	$(BIN)/python -m pytest -m llm tests/test_llm_real.py

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
