# Two entry points do all the set-up on a fresh machine:
#   make book   build the HTML book into _build/html (strict: any warning fails)
#   make test   run ntlib's unit tests and every chapter under nbval
# `make test` then `make book` executes each chapter once: the book takes the chapters the
# tests ran from the execution cache (same code and settings only; tools/chapter_cache.py).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NTLIB_SCALE ?= ci
export PYTHONHASHSEED ?= 0
# One thread per process (torch: NTLIB_THREADS=1; BLAS here): the book's tensors are tiny and
# make test runs two workers on two cores (measured: 168 s with, 196-202 s without xdist).
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
# A Jupyter server sets JPY_SESSION_NAME for its kernels, and ntlib.book.progress then draws in
# the running cell (ntlib/book/terminal.py): never for the chapters that make runs (nbval, the
# book build, the sweeps), not even when make is started from a cell or a Lab terminal.
unexport JPY_SESSION_NAME

# Parallel test workers (pytest-xdist, one chapter per worker): `make test TEST_JOBS=1` for one process.
TEST_JOBS ?= 2
# make seeds: SEEDS=0-19 (or 3,5,7), CHAPTERS=01,03 (default all), ENGINE=joblib|submitit-local|
# submitit-slurm, JOBS=runs at a time (default: the cores), SWEEP_ARGS="--param slurm_partition=cpu".
SEEDS ?= 0-19
CHAPTERS ?=
ENGINE ?= joblib
JOBS ?=

.PHONY: book test install clean bench assets browser-check pdf chromium seeds paper lab lab-check

install: $(STAMP)

# --no-compile: Python compiles the modules it imports when first needed; compiling all of
# the ~130 packages up front took longer than the rest of the install (measured 135 s vs 54 s).
$(STAMP): pyproject.toml requirements-lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-compile -r requirements-lock.txt -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import ntlib, torch, jupyter_book, submitit, xdist, jupyterlab, jupytext" || { echo "install failed"; exit 1; }
	@touch $(STAMP)

# Offline assets of the HTML pages (MathJax 3, require.js, ipywidgets manager) and the
# browser driver, pinned in package-lock.json.
NODE_STAMP := node_modules/.installed
assets: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

# Headless Chromium (Debian package) for the browser check and the PDF.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@test -x $(CHROMIUM) || { echo "chromium not found at $(CHROMIUM)"; exit 1; }

# Strict build from a clean _build (the execution cache _build/.jupyter_cache is kept: it is
# keyed by a fingerprint of ntlib, the lock and NTLIB_*, so it never serves a stale run).
book: $(STAMP) $(NODE_STAMP)
	@mkdir -p _build && find _build -mindepth 1 -maxdepth 1 ! -name .jupyter_cache -exec rm -rf {} +
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going
	@echo "book: _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder)

# Every chapter (or CHAPTERS=...) under many seeds, in parallel; writes book/claims/sweep.json,
# shown on the book's "Claims and checks" page.
seeds: $(STAMP)
	$(PY) -m tools.seeds --seeds "$(SEEDS)" --chapters "$(CHAPTERS)" --engine $(ENGINE) \
	  $(if $(JOBS),--jobs $(JOBS)) $(SWEEP_ARGS)

# Chapters (or CHAPTERS=...) at paper scale, one at a time, progress in the terminal; writes
# book/timings/paper.json, listed on the book's Execution page.
paper: $(STAMP)
	$(PY) -m tools.paper --chapters "$(CHAPTERS)"

# Open every page of the built book in headless Chromium (run `make book` first).
browser-check: $(NODE_STAMP) chromium
	@test -f _build/html/index.html || { echo "no built book: run make book first"; exit 1; }
	CHROMIUM=$(CHROMIUM) node tests/browser/check_pages.mjs _build/html

# The whole book as one PDF (_build/pdf/book.pdf): the HTML pages printed by headless
# Chromium after MathJax has typeset them, offline. Builds the book first if needed.
pdf: $(NODE_STAMP) chromium
	@test -f _build/html/index.html || $(MAKE) book
	CHROMIUM=$(CHROMIUM) node tools/print_pdf.mjs _build/html _build/pdf/book.pdf

# The chapters in JupyterLab, with this .venv's kernel (ntlib installed): the file browser opens
# on notebooks/, and a chapter's .md opens as a notebook with a double click (its default viewer;
# autosave off, so running a chapter never rewrites it: tools/lab/overrides.json, installed into
# the venv's Lab settings). LAB_ARGS passes options, e.g. LAB_ARGS="--no-browser --port 8890".
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/ntbook.json
LAB_ARGS ?=
# root (a container, CI) needs --allow-root; nobody else gets it
ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)

$(LAB_SETTINGS): tools/lab/overrides.json $(STAMP)
	@mkdir -p $(dir $@) && cp $< $@

lab: $(STAMP) $(LAB_SETTINGS)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
	  $(ALLOW_ROOT) $(LAB_ARGS)

# Chapter 1 in JupyterLab in headless Chromium: opened from the file browser as a notebook, Run
# All, no error output, the explorer live (tests/browser/lab_check.sh starts and stops the server).
lab-check: $(STAMP) $(LAB_SETTINGS) $(NODE_STAMP) chromium
	CHROMIUM=$(CHROMIUM) VENV=$(VENV) tests/browser/lab_check.sh notebooks/01_entropic_loss.md

# speed side by side with the alternatives (pyhessian, curvlinops, scipy eigsh, Python loops);
# writes book/performance_table.md, included by the book's Performance page. BENCH_ARGS=--quick:
# smoke run. curvlinops goes in with --no-deps: the lock pins what it needs (see pyproject.toml).
bench: $(STAMP)
	@$(PY) -c "import pyhessian, curvlinops" 2>/dev/null || { $(PY) -m pip install -q --disable-pip-version-check -r requirements-lock.txt -e . && $(PY) -m pip install -q --disable-pip-version-check --no-deps curvlinops-for-pytorch==3.0.1; } 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import pyhessian, curvlinops" || { echo "bench: pyhessian/curvlinops failed to install"; exit 1; }
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache
