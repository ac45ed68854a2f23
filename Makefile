# make demo · make test · make bench — each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch first: a plain "torch" would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.foreseer-installed

.PHONY: setup demo lint test bench bench-tracking clean

LINTED := platform search_spaces workers benchmarks tests scripts deploy examples

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/foreseer run examples/quickstart.yaml

# ruff: lint rules and formatting as pyproject.toml configures them.
lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

# scripts/test-deps.sh installs PostgreSQL and Chromium where missing (root + apt-get);
# scripts/pg.sh runs pytest beside a throw-away PostgreSQL and stops it afterwards, also on failure.
test: lint
	scripts/test-deps.sh
	PYTHON=$(PY) scripts/pg.sh run $(PY) -m pytest

bench: setup
	$(PY) benchmarks/overhead.py

# MLflow writes/s and UI load times for 1,000 trials x 20 epochs, on SQLite and a throw-away PostgreSQL.
bench-tracking: setup
	scripts/test-deps.sh
	PYTHON=$(PY) scripts/pg.sh run $(PY) benchmarks/tracking.py

clean:
	rm -rf $(VENV) foreseer.db* foreseer-runs mlartifacts .pytest_cache .build
