# make demo  -- set up .venv (if missing or stale) and run the built-in demo
# make test  -- set up .venv (if missing or stale) and run the test suite
# make dist  -- build the sdist, a wheel from that sdist, and check both with twine
# make lint  -- ruff over the package, tests, benchmarks and examples
# make gpu-check  -- on a CUDA machine (no .venv, no package index): build the kernels in place,
#                    install pydensecrf2 from third_party/, run the CUDA tests, print one table
# make test PYTEST_ARGS='-m "not slow"'  -- leave out the slow end-to-end tests (CI runs all)
# make test-checked  -- the fuzz suite and the kernel tests again, against kernels built with
#                       Cython's bounds checks (CRFSEG_BOUNDSCHECK=1) and AddressSanitizer (where
#                       gcc has libasan) in a temporary copy of the tree, under glibc's heap
#                       checks; the in-place kernels are left alone
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.crfseg-installed
SOURCES := pyproject.toml setup.py constraints.txt $(wildcard ext/*.pyx) $(wildcard ext/*.pxd) $(wildcard ext/*.pxi)
PYTEST_ARGS ?=

.PHONY: demo test test-checked venv bench lint dist clean gpu-check

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

CHECKED_TESTS := tests/test_fuzz.py tests/test_fuzz_properties.py tests/test_grid.py \
	tests/test_pairwise.py tests/test_metrics.py tests/test_split_merge.py tests/test_dense.py \
	tests/test_dense_ranges.py tests/test_validation.py tests/test_lattice.py

test-checked: $(STAMP)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r crfseg ext tests setup.py pyproject.toml README.md LICENSE "$$tmp"/; \
	rm -rf "$$tmp"/crfseg/*.so "$$tmp"/ext/*.c "$$tmp"/ext/*.cpp; \
	find "$$tmp" -name __pycache__ -prune -exec rm -rf {} +; \
	cd "$$tmp"; \
	asan=$$(gcc -print-file-name=libasan.so 2>/dev/null); sanitize=address; \
	if [ ! -f "$$asan" ]; then echo "no libasan: bounds checks only"; asan=; sanitize=; fi; \
	CRFSEG_BOUNDSCHECK=1 CRFSEG_SANITIZE=$$sanitize $(CURDIR)/$(PY) setup.py -q build_ext \
		--inplace >build.log 2>&1 || { tail -40 build.log; exit 1; }; \
	export LD_PRELOAD=$$asan ASAN_OPTIONS=detect_leaks=0:abort_on_error=1; \
	PYTHONPATH="$$tmp" $(CURDIR)/$(PY) -c "import sys, crfseg, crfseg._grid, crfseg._metrics, \
		crfseg._split_merge, crfseg._lattice; \
		mods = [crfseg, crfseg._grid, crfseg._metrics, crfseg._split_merge, crfseg._lattice]; \
		bad = [m.__file__ for m in mods if not m.__file__.startswith(sys.argv[1])]; \
		sys.exit('the checked copy is not what is imported: ' + ', '.join(bad) if bad else 0)" "$$tmp"; \
	echo "checked kernels built in $$tmp$${asan:+, with AddressSanitizer}"; \
	PYTHONPATH="$$tmp" MALLOC_CHECK_=3 MALLOC_PERTURB_=165 $(CURDIR)/$(PY) -m pytest -n 2 -q \
		-p no:cacheprovider -W error::pytest.PytestUnraisableExceptionWarning $(CHECKED_TESTS)

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

# The Python of the GPU machine, which already has torch, torchvision, scipy, scikit-image,
# opencv, Cython, pytest and tqdm; nothing is downloaded.
GPU_PYTHON ?= python3
GPU_TESTS = $(shell grep -l -E "cuda|device" tests/test_*.py)

gpu-check:
	@$(GPU_PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
		|| { echo "make gpu-check: no CUDA device is visible to $(GPU_PYTHON) (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU and its driver" >&2; exit 1; }
	$(GPU_PYTHON) setup.py build_ext --inplace
	$(GPU_PYTHON) -c "import pydensecrf.densecrf" 2>/dev/null \
		|| $(GPU_PYTHON) -m pip install --no-build-isolation --no-deps --no-index third_party/pydensecrf2-1.1.tar.gz
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) -m pytest $(GPU_TESTS) -k cuda -q -p no:randomly -p no:cacheprovider
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) benchmarks/gpu_check.py
