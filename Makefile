# llmfoundry_lite: `make demo` runs the pipeline on the built-in local corpus, `make test` the test suite.
# Both install the pinned environment into .venv first (only when it is missing or the lock changed).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test test-torch-next bench lm-eval-check lint lock clean

install: $(STAMP) system-deps

# bubblewrap isolates model-written code in eval/humaneval.py; PostgreSQL is the feedback store several
# server replicas share, and Chromium renders the feedback dashboard in its test (Debian packages; root or sudo).
SYSTEM_PACKAGES := bubblewrap postgresql chromium
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  [ -z "$$missing" ] || { echo "==> installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; }

$(STAMP): requirements.lock pyproject.toml
	@echo "==> installing the pinned environment into $(VENV) (first run or lock changed)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) --quiet -r requirements.lock
	$(UV) pip install --python $(PY) --quiet --no-deps -e .
	@touch $(STAMP)

# corpus → filter + X-ray → vocabulary → shards → train code-tiny → HF export → HumanEval; resumable.
demo: install
	$(PY) scripts/demo.py

# The suite on TEST_WORKERS pytest-xdist workers; tests of one Spark cluster or one tiny server share a
# worker (tests/conftest.py). TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# Every benchmarks/bench_*.py with CPU-sized settings; one digest of ratios against their peers.
# llm-foundry (MPT, the training benchmark's peer) pins streaming<0.13 and transformers<4.52, so it
# lives in its own venv and is never a dependency of the package.
BENCH_VENV := .bench-venv
$(BENCH_VENV)/bin/python: | $(STAMP)
	$(UV) venv --quiet --python $(PYTHON) $(BENCH_VENV)
	$(UV) pip install --python $(BENCH_VENV)/bin/python --quiet llm-foundry==0.22.0 torch==2.7.0 'setuptools<81'

# The lock with a newer torch (requirements-torch-next.txt overrides Composer 0.32.1's torch<2.7.1) in its
# own venv, then the suites that touch torch. docs/development.md lists the torch releases checked.
NEXT_VENV := .venv-torch-next
NEXT_STAMP := $(NEXT_VENV)/.installed
$(NEXT_STAMP): requirements.lock requirements-torch-next.txt pyproject.toml | $(STAMP)
	@echo "==> installing the lock with requirements-torch-next.txt's torch into $(NEXT_VENV)"
	@test -x $(NEXT_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(NEXT_VENV)
	$(UV) pip install --python $(NEXT_VENV)/bin/python --quiet -r requirements.lock --override requirements-torch-next.txt
	$(UV) pip install --python $(NEXT_VENV)/bin/python --quiet --no-deps -e .
	@touch $(NEXT_STAMP)

test-torch-next: install $(NEXT_STAMP)
	$(NEXT_VENV)/bin/python -m pytest -q tests/training tests/models tests/finetune tests/serve

bench: install $(BENCH_VENV)/bin/python
	$(PY) benchmarks/bench_all.py

# lm-evaluation-harness's local-completions model against scripts/serve.py must give the log-likelihoods
# its hf model gives on the same export (benchmarks/lm_eval_check.py). lm-eval is no dependency of the
# package: it lives in its own venv, on the lock's torch and transformers.
LM_EVAL_VENV := .lm-eval-venv
$(LM_EVAL_VENV)/bin/lm_eval: | $(STAMP)
	$(UV) venv --quiet --python $(PYTHON) $(LM_EVAL_VENV)
	$(UV) pip install --python $(LM_EVAL_VENV)/bin/python --quiet 'lm-eval[hf,api]==0.4.13' -c requirements.lock

lm-eval-check: install $(LM_EVAL_VENV)/bin/lm_eval
	$(PY) benchmarks/lm_eval_check.py

lint: install
	$(VENV)/bin/ruff check .

# Re-resolve requirements.in into exact pins (needs network access to PyPI).
lock: install
	$(UV) pip compile requirements.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) data runs
