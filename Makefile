# One entry point for learners, instructors and CI.  `make help` lists the targets.
#
# Set-up is automatic: every target that needs the environment depends on `setup`,
# which bootstraps a pinned uv into .uv/ and installs uv.lock into .venv/ (stablegrad editable).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter that creates the environments (override: make PYTHON=python3.12 ...).
PYTHON := $(shell command -v python3)
UV_VERSION := 0.13.8
VENV := .venv
UV := .uv/bin/uv
STAMP := $(VENV)/.synced

# nbgrader, nbval and myst-nb start the `python3` kernel and call `alembic` from PATH: the venv comes first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# Byte-compile at install: every jupyter-book/nbgrader start is ~2.5 s faster (PYTHONDONTWRITEBYTECODE may be set).
export UV_COMPILE_BYTECODE := 1
export MPLBACKEND := Agg
# One BLAS thread per process: the suite runs processes in parallel on 2 cores, and committed outputs
# must not depend on how a BLAS splits its sums (measured: 15x slower with competing BLAS threads).
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

ASSIGNMENTS := $(notdir $(wildcard solutions/ex*))
SUBMITTED = $(sort $(notdir $(wildcard submitted/*/ex*)))
PYTEST := pytest -p no:cacheprovider --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: help setup book test test-package test-chapters test-solutions release grade bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	@test -n "$(PYTHON)" || { echo "python3 (3.11+) is required"; exit 1; }
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

setup: $(STAMP)  ## create .venv from uv.lock (book, grading and test groups; stablegrad editable)

book: setup  ## build the HTML book into _build/html (offline; warnings are errors)
	jupyter-book build . -W -n --keep-going
	@echo
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

test: setup  ## run the whole suite: package, book, grading pipeline, chapters (nbval), solutions
	$(MAKE) --no-print-directory test-package test-chapters test-solutions

test-package: setup  ## pytest tests/: the package, the book build, nbgrader end to end
	$(PYTEST) -n 2 --dist loadgroup tests

test-chapters: setup  ## re-execute every chapter and compare with its committed outputs
	$(PYTEST) -n 2 --dist loadfile --nbval chapters

test-solutions: setup  ## run every solution notebook: all cells run and all tests pass
	$(PYTEST) -n 2 --dist loadfile --nbval-lax solutions

release: setup  ## regenerate exercises/ from solutions/ (nbgrader generate_assignment)
	@# A failed --force generation can leave exercises/<id> deleted: restore the committed release then.
	@for id in $(ASSIGNMENTS); do \
	  nbgrader generate_assignment "$$id" --force --log-level=WARN \
	    || { git checkout -- "exercises/$$id" 2>/dev/null; echo "release of $$id failed"; exit 1; }; \
	done
	@echo "Released: $(ASSIGNMENTS)"

grade: setup  ## autograde submitted/<student>/<id>/, export grades.csv, generate feedback
	@test -n "$(SUBMITTED)" || { echo "nothing in submitted/<student>/<assignment>/ to grade"; exit 1; }
	@test -f gradebook.db || $(MAKE) --no-print-directory release
	@for id in $(SUBMITTED); do nbgrader autograde "$$id" --log-level=WARN || exit 1; done
	nbgrader export --log-level=WARN
	@for id in $(SUBMITTED); do nbgrader generate_feedback "$$id" --log-level=WARN || exit 1; done
	@echo "Grades: $(CURDIR)/grades.csv   Feedback: $(CURDIR)/feedback/<student>/<assignment>/"

bench: setup  ## measure set-up, build, test and autograde times (prints the figures quoted in README)
	python tests/benchmarks/course_speed.py

clean:  ## remove build outputs and nbgrader state (keeps .venv)
	rm -rf _build .pytest_cache gradebook.db autograded feedback grades.csv
