# Two commands a newcomer needs: `make run` (demo on SQLite) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint schema clean browser-assets screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Load the demo school into ./coursepulse.db and serve it on http://127.0.0.1:8000/graphql
run: install
	$(BIN)/coursepulse demo
	$(BIN)/coursepulse serve

## Lint, check the exported schema against the public contract, run the test suite.
test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/refresh_browser_assets.py --check

## Re-export graphql/schema.graphql after changing the schema.
schema: install
	$(BIN)/coursepulse export-schema --output graphql/schema.graphql

## Refresh the pages' pinned npm files (GraphiQL, graphql-ws) from the npm registry (verifying the tarballs' hashes).
browser-assets:
	$(PYTHON) scripts/refresh_browser_assets.py

## Re-take docs/screenshots/*.png from the browser tests.
screenshots: install
	COURSEPULSE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_browser_graphiql.py tests/test_browser_app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache coursepulse.db coursepulse.db-*

.PHONY: bench bench-full bench-peers bench-transfer

## Benchmarks (bench/README.md): quick (a few minutes), and full (longer runs, fanout up to
## 10,000 subscribers; `make bench-full BENCH_ARGS="--scale 10"` for the 10x dataset).
## Results: bench/results/latest.md and latest.json.
bench: install
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

bench-full: install
	$(BIN)/python bench/run.py --full $(BENCH_ARGS)

## The raw baseline, coursepulse and PostGraphile 5 on the PostgreSQL dataset, interleaved
## (bench/peers.py; installs PostGraphile with npm on first use). Adds its table to latest.md.
bench-peers: install
	$(BIN)/python bench/peers.py $(BENCH_ARGS)

## Export and import of the benchmark dataset: time and peak memory (bench/results/transfer.md);
## BENCH_ARGS="--postgres-url postgresql+asyncpg://postgres@127.0.0.1/postgres" adds PostgreSQL.
bench-transfer: install
	$(BIN)/python bench/transfer.py $(BENCH_ARGS)
