# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PORT ?= 5066

.PHONY: demo test lint unit integration bench fuzz-long deps venv clean

deps:
	@bash deploy/install-debian-packages.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m deploy.swagger_ui_assets
	@touch $(STAMP)

venv: deps $(STAMP)

## Start the console with the simulation bench on https://localhost:$(DEMO_PORT)
demo: venv
	$(BIN)/nhi-console serve --sim --port $(DEMO_PORT)

## Run the whole test suite (unit, then integration with real processes)
test: venv
	@bash tests/run.sh

## ruff (lint rules and format check) and mypy, as configured in pyproject.toml (tests/lint.sh)
lint: $(STAMP)
	@bash tests/lint.sh

unit: venv
	$(BIN)/python -m pytest -q tests/unit

integration: venv
	$(BIN)/python -m pytest -q tests/integration

## The long fuzzing run (docs/fuzzing.md): the nightly hypothesis profile, and schemathesis with 1000 examples per operation
fuzz-long: venv
	NHI_FUZZ_PROFILE=nightly $(BIN)/python -m pytest -q -o timeout=0 --hypothesis-show-statistics tests/unit -k fuzz
	NHI_SCHEMATHESIS_EXAMPLES=1000 $(BIN)/python -m pytest -q -s -o timeout=0 tests/integration/test_openapi_conformance.py

## Every benchmark, one table, written to docs/performance.md (about six minutes)
bench: venv
	$(BIN)/python bench/performance.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
