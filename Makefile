# hpsearch — the two commands a new user needs are `make study` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HPSEARCH := $(VENV)/bin/hpsearch
STAMP  := $(VENV)/.installed
CONFIG ?= study_configs/toy_transformer.yaml
# One worker per core: toy trials run on one thread each (see docs/how-to/many-workers.md).
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# Tests and CI never reach a model or dataset hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE

.PHONY: install study test test-fast dashboard lint format bench bench-deps bench-quick \
	bench-ablation bench-ablation-quick bench-acceptance gpu-wheels gpu-check clean docs docs-deps docs-serve docs-figures

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

# The suite runs on one xdist worker per core (2 here): a file's tests stay on one worker, and
# the groups in tests/conftest.py (XDIST_GROUPS) share one. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
PYTEST := $(OFFLINE) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

dashboard: $(STAMP)
	$(HPSEARCH) dashboard

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# accelerate (which Hugging Face Trainer needs) is a base dependency now; kept for old venvs.
bench-deps: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt accelerate

bench: bench-deps
	$(OFFLINE) $(PY) -m benchmarks

bench-quick: bench-deps
	$(OFFLINE) $(PY) -m benchmarks --quick

# The pruning ablation (benchmarks/ablation.py): about 7 hours in all, so never part of `bench`.
# One piece: the studies of ABLATION_ARGS that have no row yet, nothing new after --minutes;
# rerun it until the report's verdicts are no longer pending, committing the rows of each piece.
ABLATION_ARGS ?= --group heldout --variants A,B,C,D,H --minutes 55
bench-ablation: $(STAMP)
	$(OFFLINE) $(PY) -m benchmarks.ablation run $(ABLATION_ARGS)
	$(PY) -m benchmarks.ablation report

# The acceptance check on seed pairs of your own (never the committed ones), e.g.
# `make bench-acceptance SEEDS=31:41,59:26`: the default as shipped (S) against A, B and stock
# Optuna (D); rows in /tmp/hpsearch-ablation-check; exit 1 when the check is missed.
bench-acceptance: $(STAMP)
	@test -n "$(SEEDS)" || { echo "make bench-acceptance: set SEEDS=SAMPLER:DATA[,...], e.g. SEEDS=31:41,59:26"; exit 2; }
	$(OFFLINE) $(PY) -m benchmarks.ablation run --seeds $(SEEDS) --variants A,B,D,S --minutes 600
	$(PY) -m benchmarks.ablation report --seeds $(SEEDS)

bench-ablation-quick: $(STAMP)
	$(OFFLINE) $(PY) -m benchmarks.ablation run --quick --variants A,B,D,H --pairs 1
	$(OFFLINE) $(PY) -m benchmarks.ablation report --quick

# The GPU check (docs/how-to/gpus.md) runs on a machine's own Python 3.12, torch and
# transformers. The packages such a machine lacks travel as cp312 wheels in .gpu-wheels (git-ignored,
# about 8 MB), fetched here with the versions of constraints.txt and installed there without deps.
GPU_WHEELS   ?= .gpu-wheels
GPU_PYTHON   ?= python3
GPU_SITE     ?= /tmp/hpsearch-gpu-site
GPU_PACKAGES := optuna alembic Mako colorlog SQLAlchemy pydantic pydantic_core annotated-types typing-inspection typing_extensions

gpu-wheels: $(STAMP)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d $(GPU_WHEELS) \
		$$(for p in $(GPU_PACKAGES); do grep -i "^$$p==" constraints.txt; done)
	@ls $(GPU_WHEELS)

gpu-check:
	@test -n "$$(ls $(GPU_WHEELS)/*.whl 2>/dev/null)" || { echo "gpu-check: no wheels in $(GPU_WHEELS); run 'make gpu-wheels' first (where pip can reach the registry)"; exit 2; }
	$(GPU_PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --upgrade \
		--target $(GPU_SITE) $(GPU_WHEELS)/*.whl
	PYTHONPATH=$(GPU_SITE):. $(OFFLINE) $(GPU_PYTHON) -m benchmarks.gpu_check $(GPU_CHECK_ARGS)

# The documentation site (docs/, mkdocs.yml). `docs` is phony: a folder docs/ exists, so make would
# otherwise call it up to date. The site tools are an extra of their own (pinned in constraints.txt),
# so `make study` does not install them. The iframe-worker shim, which Material's offline plugin
# needs to search from a local folder, comes pinned from the npm registry; its path must keep
# `iframe-worker`, or the plugin adds the shim's web address again.
DOCS_STAMP    := $(VENV)/.docs-installed
IFRAME_WORKER := iframe-worker@1.0.4
DOCS_NPM      := .docs-npm
SHIM          := docs/assets/javascripts/iframe-worker/shim.js
MKDOCS        := $(OFFLINE) NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs

docs-deps: $(DOCS_STAMP) $(SHIM)

$(DOCS_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,docs]'
	touch $(DOCS_STAMP)

$(SHIM):
	npm install --silent --no-audit --no-fund --prefix $(DOCS_NPM) $(IFRAME_WORKER)
	mkdir -p $(dir $(SHIM))
	cp $(DOCS_NPM)/node_modules/iframe-worker/shim/index.js $(SHIM)

docs: docs-deps
	$(MKDOCS) build --strict

docs-serve: docs-deps
	$(MKDOCS) serve

# Regenerates the figures the site shows: the report sample, the dashboard screenshots (headless
# Chromium) and the benchmark plots from benchmarks/results.json. Minutes; not part of `docs` or CI.
docs-figures: $(STAMP)
	$(OFFLINE) $(PY) -m tools.docs_figures

clean:
	rm -rf $(VENV) studies report .pytest_cache .ruff_cache build *.egg-info site $(DOCS_NPM) $(dir $(SHIM))
