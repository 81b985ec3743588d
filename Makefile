# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# `make test` (what CI runs) = `make lint` + every test. For feedback in under a minute, the
# tests not marked slow (validation against reference solvers and measured ice, the browser, the
# wheel install) in two tiers by area: `make test-fast` (engine, planning, anatomy, analysis,
# instruments: 546 tests, 28 s on 2 idle cores) and `make test-fast-registry` (the registry and
# web app: 205 tests, 59 s); `make test-fast-all` runs both (751 tests, 91 s).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-fast-registry test-fast-all lint docs bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cryoneuro demo --out out/demo

# Style, layer contract, types of the core, and the documentation with warnings as errors.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

test: lint
	$(BIN)/python -m pytest -n 2 --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow" --ignore=tests/registry

test-fast-registry: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow" tests/registry

test-fast-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site
	@echo "open build/site/index.html"

bench: $(STAMP)
	$(BIN)/python benchmarks/thermal.py

clean:
	rm -rf $(VENV) out build site .pytest_cache
