PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= data/riskpool.duckdb

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/riskpool demo --db $(DB)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

bench: setup
	$(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check portfolio tranching partners dashboards riskpool tests benchmarks
	$(BIN)/mypy portfolio tranching partners riskpool

clean:
	rm -rf $(VENV) data/*.duckdb data/*.wal data/runs
