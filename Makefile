# hpsearch — the two commands a new user needs are `make study` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HPSEARCH := $(VENV)/bin/hpsearch
STAMP  := $(VENV)/.installed
CONFIG ?= study_configs/toy_transformer.yaml
# One worker per core: toy trials run on one thread each (see README "Running many workers").
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# Tests and CI never reach a model or dataset hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE

.PHONY: install study test test-fast dashboard lint format bench bench-deps bench-quick clean

install: $(STAMP)

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

study: $(STAMP)
	$(HPSEARCH) run $(CONFIG) --workers $(WORKERS)

test: $(STAMP)
	$(OFFLINE) $(PY) -m pytest

test-fast: $(STAMP)
	$(OFFLINE) $(PY) -m pytest -m "not slow"

dashboard: $(STAMP)
	$(HPSEARCH) dashboard

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# accelerate (which Hugging Face Trainer needs) is for the throughput comparison only.
bench-deps: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt accelerate

bench: bench-deps
	$(OFFLINE) $(PY) -m benchmarks

bench-quick: bench-deps
	$(OFFLINE) $(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) studies report .pytest_cache .ruff_cache build *.egg-info
