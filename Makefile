# make demo · make test · make bench — each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch first: a plain "torch" would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.foreseer-installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/foreseer run examples/quickstart.yaml

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) foreseer.db* foreseer-runs mlartifacts .pytest_cache
