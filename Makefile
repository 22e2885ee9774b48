# The two commands a new user runs: `make dev` (local stack) and `make test` (whole suite).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-fast install web browser espeak rubberband lint format bench-api clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade "pip>=24"

install: $(BIN)/python web
	$(BIN)/pip install -e ".[local,dev,gpu,text,text-local,deploy,schema]"

# The page's pinned third-party JS, copied into web/public/vendor/ (no CDN at run time).
web:
	cd web && npm ci --no-audit --no-fund && npm run vendor

# Debian's Chromium for the browser tests.
browser:
	scripts/install-debian.sh chromium chromium

# Debian's espeak-ng: the dataset-analysis tests synthesise speech with it.
espeak:
	scripts/install-debian.sh espeak-ng espeak-ng

# Debian's rubberband-cli: the instrumental's pitch shift (gpu/conversion/shift.py) runs it.
rubberband:
	scripts/install-debian.sh rubberband rubberband-cli

dev: install rubberband
	$(BIN)/svc-local up

test: install browser espeak rubberband
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-api: install
	$(BIN)/python bench/api.py

test-fast: install browser espeak rubberband
	$(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) .local
