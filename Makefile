PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# DB: empty for the default database of portfolio/settings.py (or RISKPOOL_DB)
DB     ?=
LOCK_VENV  := .venv-lock
UV_VERSION := 0.13.9

.PHONY: setup demo test fuzz bench lint lock clean

# Every dependency at the exact version (and hash) of requirements.lock, then riskpool itself
# without resolving anything again: a fresh machine needs only Python 3.11 and pip.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/riskpool demo $(if $(DB),--db $(DB))

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

# The property tests with fresh random examples (1,000 each): run before a release; pin what
# they find as a plain test
fuzz: setup
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest -n 2 --dist loadfile -q -m "not browser"

bench: setup
	$(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check portfolio tranching partners dashboards riskpool tests benchmarks
	$(BIN)/mypy portfolio tranching partners riskpool

# Refresh requirements.lock from pyproject.toml (uv, in its own small environment: it is not
# needed to install). Keeps every pin that still satisfies pyproject.toml; UPGRADE=1 moves
# every package to its newest allowed version.
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet 'uv==$(UV_VERSION)'
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --extra dev --extra distributed \
		--python-version 3.11 --universal --generate-hashes --custom-compile-command 'make lock' --quiet \
		$(if $(UPGRADE),--upgrade) -o requirements.lock

clean:
	rm -rf $(VENV) $(LOCK_VENV) data/*.duckdb data/*.wal data/runs
