# biasaudit — developer entry points. `make demo` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip
# The CPU torch wheel is pinned in constraints.txt; the GPU image (docker/) picks CUDA itself.
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install system data services lint format test test-fast demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@echo "== installing biasaudit and its dependencies into $(VENV) (a few minutes the first time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PIP) install --progress-bar on --disable-pip-version-check \
		-c $(CONSTRAINTS) -e '.[dev]' | { grep -v '^Requirement already satisfied' || true; }
	touch $(STAMP)
	@echo "== installed"

data: install
	@echo "== fetching the public data sets (once; cached)"
	$(BIN)/biasaudit data fetch --census

# Debian packages the tests need (browser, PDF tools, ...): scripts/system_packages.txt
system:
	bash scripts/install_system_packages.sh

services: system
	bash scripts/ensure_services.sh

lint: install
	$(BIN)/ruff check audit probes workers tests benchmarks scripts
	$(BIN)/ruff format --check audit probes workers tests benchmarks scripts
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix audit probes workers tests benchmarks scripts
	$(BIN)/ruff format audit probes workers tests benchmarks scripts

test: install data services lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not services" $(PYTEST_ARGS)

demo: install data
	@echo "== running the demo audits (progress on stderr)"
	$(BIN)/biasaudit demo --out biasaudit-demo

bench: install data
	$(PY) benchmarks/bench_demographic.py
	$(PY) benchmarks/bench_counterfactual.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_progress.py
	$(PY) benchmarks/bench_pdf.py

clean:
	rm -rf $(VENV) biasaudit-demo .pytest_cache .mypy_cache .ruff_cache
