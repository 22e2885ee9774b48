# The two commands a new user runs: `make dev` (local stack) and `make test` (whole suite).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-fast install lint format bench-api clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade "pip>=24"

install: $(BIN)/python
	$(BIN)/pip install -e ".[local,dev,gpu,deploy]"

dev: install
	$(BIN)/svc-local up

test: install
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

test-fast: install
	$(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) .local
