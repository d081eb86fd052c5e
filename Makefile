# Two entry points do all the set-up on a fresh machine:
#   make book   build the HTML book into _build/html (strict: any warning fails)
#   make test   run ntlib's unit tests and every chapter under nbval
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NTLIB_SCALE ?= ci
export PYTHONHASHSEED ?= 0

.PHONY: book test install clean bench

install: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-lock.txt -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import ntlib, torch, jupyter_book" || { echo "install failed"; exit 1; }
	@touch $(STAMP)

book: $(STAMP)
	rm -rf _build
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going
	@echo "book: _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

# speed side by side with the alternatives (pyhessian, scipy eigsh, Python loops); writes
# book/performance_table.md, included by the book's Performance page. --quick: smoke run.
bench: $(STAMP)
	@$(PY) -c "import pyhessian" 2>/dev/null || { $(PY) -m pip install -q --disable-pip-version-check -r requirements-lock.txt -e ".[bench]" 2>&1 | grep -v "^WARNING: Location" || true; }
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache
