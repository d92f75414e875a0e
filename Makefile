# make demo  -- set up .venv (if missing or stale) and run the built-in demo
# make test  -- set up .venv (if missing or stale) and run the test suite
# make dist  -- build the sdist, a wheel from that sdist, and check both with twine
# make lint  -- ruff over the package, tests, benchmarks and examples
# make test PYTEST_ARGS='-m "not slow"'  -- leave out the slow end-to-end tests (CI runs all)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.crfseg-installed
SOURCES := pyproject.toml setup.py constraints.txt $(wildcard ext/*.pyx) $(wildcard ext/*.pxd) $(wildcard ext/*.pxi)
PYTEST_ARGS ?=

.PHONY: demo test venv bench lint dist clean

$(STAMP): $(SOURCES)
	@if ! $(PY) -c "import sys" >/dev/null 2>&1; then \
		rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install -e ".[dev]" -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/crfseg demo --output-dir demo_output

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install -e ".[dev,bench]" -c constraints.txt
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check crfseg tests benchmarks examples

# python -m build makes the sdist first and then the wheel from that sdist, in
# an isolated environment: what pip does for a user who installs the sdist.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf build dist demo_output crfseg/*.so ext/*.c ext/*.cpp
