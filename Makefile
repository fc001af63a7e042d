# The two commands of the README: `make demo` (set up + main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: setup demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $$(bash .ci/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,s3]"
	@touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/resistomics demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Unit tests only: no Dask processes, Prefect server, PostgreSQL or S3 server
# (tests marked `integration`, and every test using the `prefect_api` fixture).
test-fast: setup
	$(PY) -m pytest -q -m "not integration" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check platform flows tests benchmarks
	$(VENV)/bin/ruff format --check platform flows
	$(VENV)/bin/mypy platform/resistomics flows
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/expression.py

clean:
	rm -rf $(VENV) .resistomics .pytest_cache
