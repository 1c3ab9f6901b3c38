# kefu — the two commands of README's Quick start.
#   make run    set up, create the demo database (SQLite) and serve on http://127.0.0.1:8000
#   make test   set up and run the checks and the whole test suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test setup lint bench

$(BIN)/kefu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q -e tests/plugins/kefu-example
	@touch $(BIN)/kefu

setup: $(BIN)/kefu

run: setup
	$(BIN)/kefu validate
	$(BIN)/kefu init --demo
	$(BIN)/kefu serve

lint: setup
	$(BIN)/ruff check core api plugins tests bench rules
	$(BIN)/ruff format --check core api plugins tests bench rules
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/rules_bench.py
	$(BIN)/python bench/actions_bench.py
	$(BIN)/python bench/time_bench.py
