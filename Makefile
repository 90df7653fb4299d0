# metaops: `make run` serves on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: run test lint typecheck layers pytest pytest-sqlite pytest-postgres bench clean deps

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "metaops needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP)

run: $(STAMP)
	$(BIN)/metaops db upgrade
	$(BIN)/metaops serve

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest-sqlite: $(STAMP) tools-up
	METAOPS_TEST_DB=sqlite $(BIN)/pytest -q

pytest-postgres: $(STAMP) tools-up
	METAOPS_TEST_DB=postgresql METAOPS_TEST_PG_URL=$(PG_URL) $(BIN)/pytest -q

.PHONY: tools-up
tools-up:
	@bash scripts/ensure-services.sh

test: lint typecheck layers pytest

# Both backends at once, each into its own log; both are shown, and the target fails if either
# pass fails. --durations shows where the time goes.
pytest: $(STAMP) tools-up
	@mkdir -p var; \
	METAOPS_TEST_DB=sqlite $(BIN)/pytest -q -p no:cacheprovider --durations=15 > var/pytest-sqlite.log 2>&1 & sq=$$!; \
	METAOPS_TEST_DB=postgresql METAOPS_TEST_PG_URL=$(PG_URL) $(BIN)/pytest -q -p no:cacheprovider \
	  --durations=15 \
	  > var/pytest-postgres.log 2>&1 & pg=$$!; \
	rs=0; wait $$sq || rs=$$?; rp=0; wait $$pg || rp=$$?; \
	echo "== SQLite pass (exit $$rs) =="; cat var/pytest-sqlite.log; \
	echo "== PostgreSQL pass (exit $$rp) =="; cat var/pytest-postgres.log; \
	test $$rs -eq 0 && test $$rp -eq 0

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/logmine.py
	$(BIN)/python bench/slack_ack.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
