# kefu — the commands of README's Quick start.
#   make run    set up, create the demo database (SQLite) and serve on http://127.0.0.1:8000
#   make test   set up (with the test plugin and Debian's chromium for the browser tests)
#               and run the checks and the whole test suite (SQLite and PostgreSQL) in
#               $(WORKERS) processes (pytest-xdist): about 3 min on a 2-core machine
#   make check  the edit-test loop, under a minute (about 50 s on 2 cores): ruff, the unit
#               tests and the SQLite integration tests not marked slow (those start kefu
#               processes or run for seconds)
#   make messages  extract the pages' words into their catalogues (docs/web.md,
#               "Translating the pages")
# The interpreter .venv is made from: the system's own /usr/bin/python3 when it is 3.11 or
# newer and can make a venv (Debian's python3-venv), else the first python3 on the PATH.
# Debian builds its python with profile-guided and link-time optimisation and links the
# interpreter statically; a python built from source with the defaults (pyenv's, say)
# has neither and calls into a shared libpython: kefu's actions ran 1.2-1.35x faster on
# Debian's in alternating runs on one machine (bench/actions_bench.py). `make PYTHON=…`
# chooses another; delete .venv to make it again with a new one.
SYSTEM_PYTHON := $(shell /usr/bin/python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo /usr/bin/python3)
PYTHON ?= $(or $(SYSTEM_PYTHON),python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
WORKERS ?= 2

.PHONY: run test check setup system-packages lint bench scale-bench messages

$(BIN)/kefu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(BIN)/kefu

# Debian packages kefu needs besides Python's: Chinese fonts for PDF records (they are
# embedded in each PDF), Pango for WeasyPrint (records as PDF), libmagic to sniff the type
# of uploads, poppler-utils for the tests' pictures of records (pdftoppm), chromium for the
# browser tests (tests/e2e drive it through Playwright, which cannot download a browser of
# its own here). Installed with apt-get when one is missing (as root, else through sudo);
# nothing happens when all are.
SYSTEM_PACKAGES := fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libmagic1 poppler-utils \
	chromium
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "kefu needs these Debian packages (or your system's equivalents):" $$missing; \
			exit 1; fi; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing" $$missing; \
		$$sudo apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

# axe-core (from the npm registry) checks the staff case page's accessibility in the
# browser tests; kept under var/, never in the repository
AXE := var/axe/node_modules/axe-core/axe.min.js
$(AXE):
	@if command -v npm >/dev/null 2>&1; then \
		echo "installing axe-core for the browser tests"; \
		npm install --silent --no-audit --no-fund --prefix var/axe axe-core@4 >/dev/null; \
	else \
		echo "no npm: the accessibility check of the browser tests needs axe-core (npm)"; \
	fi

# The pages' words: each language's catalogue (api/web/locale/<lang>/LC_MESSAGES/messages.po,
# in the repository) compiled to the messages.mo the server reads (not in the repository;
# the server refuses to start without it). pybabel's settings are pyproject.toml's
# [tool.babel.*] tables.
CATALOGUES := $(wildcard api/web/locale/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)
$(COMPILED): %.mo: %.po $(BIN)/kefu
	$(BIN)/pybabel -q compile --input-file $< --output-file $@

# after adding or changing a t("…"): the messages into messages.pot, merged into each
# language's messages.po (translate the new ones there), compiled again
messages: $(BIN)/kefu
	$(BIN)/pybabel -q extract
	$(BIN)/pybabel -q update
	$(BIN)/pybabel -q compile

setup: system-packages $(BIN)/kefu $(COMPILED) $(AXE)

# The test plugin (tests/plugins/kefu-example) is for the test suite only. kefu finds
# plugins through the entry points of the packages installed in its environment, so in
# the one .venv that `run` and `test` share, an installed test plugin would be loaded by
# the demo server too (its routes, effect types and warranty-desk pack). Hence: `test`
# installs it (this stamp), and `run` uninstalls it first and removes the stamp, so the
# next `make test` installs it again (a few seconds). One venv keeps a fresh clone's
# `make run` and `make test` to a single install of kefu and its dependencies; run the
# tests with `make test`, not with a bare pytest after `make run`.
TEST_PLUGIN := $(VENV)/.kefu-example-installed

$(TEST_PLUGIN): $(BIN)/kefu tests/plugins/kefu-example/pyproject.toml
	$(BIN)/pip install -q -e tests/plugins/kefu-example
	@touch $@

run: setup
	@if $(BIN)/pip show -q kefu-example 2>/dev/null; then \
		echo "uninstalling the test plugin kefu-example (make test installs it again)"; \
		$(BIN)/pip uninstall -q -y kefu-example; fi
	@rm -f $(TEST_PLUGIN)
	$(BIN)/kefu validate
	$(BIN)/kefu init --demo
	$(BIN)/kefu serve

lint: setup
	$(BIN)/ruff check core api plugins tests bench rules
	$(BIN)/ruff format --check core api plugins tests bench rules
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/vulture

test: lint $(TEST_PLUGIN)
	$(BIN)/pytest -q -n $(WORKERS) --dist worksteal

check: setup $(TEST_PLUGIN)
	$(BIN)/ruff check core api plugins tests bench rules
	$(BIN)/ruff format --check core api plugins tests bench rules
	$(BIN)/pytest -q -n $(WORKERS) --dist worksteal -m "not pg and not slow" tests

bench: setup
	$(BIN)/python bench/rules_bench.py
	$(BIN)/python bench/actions_bench.py
	$(BIN)/python bench/time_bench.py
	$(BIN)/python bench/http_bench.py

# minutes: loads 200,000 cases (CASES=1000000 for a million) into SQLite and PostgreSQL
CASES ?= 200000
scale-bench: setup
	$(BIN)/python bench/scale_bench.py --cases $(CASES)
