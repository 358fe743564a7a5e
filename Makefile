# StemForge: `make run` starts the app, `make test` runs the whole suite. Both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-install whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.test-installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test install install-test services browser js-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The CPU build of torch 2.13.0 first, where this machine offers it: otherwise the
# project's `torch>=2.1` would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0 || echo "torch 2.13.0 not available here; pip picks a torch build"
	$(BIN)/pip install -q -e .
	rm -f $(VENV)/.installed-*; touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.test-installed-*; touch $@

install: $(STAMP)

install-test: $(TEST_STAMP)

run: install
	$(BIN)/python main.py serve

# PostgreSQL and Redis for the scale-out and PostgreSQL runs; Chromium for browser tests.
services:
	@bash tests/scripts/services.sh

browser:
	@bash tests/scripts/browser.sh

# The official phoenix JS client for the /socket compatibility test (tests/js, node_modules git-ignored).
js-deps:
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error

# Test processes side by side (pytest-xdist): most of a test's time is spent waiting on a server, a worker or
# Chromium, so three share two cores well. TEST_WORKERS=0 runs the suite in this one process.
TEST_WORKERS ?= 3

test: install-test services browser js-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n $(TEST_WORKERS)
	STEMFORGE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test $(BIN)/pytest -q -n $(TEST_WORKERS) -m postgres

lint: install-test
	$(BIN)/ruff check .

# Every benchmark; each prints its figures beside their targets and ends with one JSON line.
bench: install-test services
	$(BIN)/python bench/api.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/download.py
	bash bench/scripts/realmusic_deps.sh
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/separate.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/mixdown.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
