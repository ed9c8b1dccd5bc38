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
# Every notebook kernel imports stablegrad: compiled once, each start saves about 0.4 s (hundreds of kernels in
# `make test`; sandboxed kernels cannot write bytecode, so `test` compiles src/ first). Some shells set this.
unexport PYTHONDONTWRITEBYTECODE

ASSIGNMENTS := $(notdir $(wildcard solutions/ex*))
# nbval runs each notebook from its own folder with the book's per-cell timeout (_config.yml execute.timeout),
# the conditions myst-nb executes chapters under in `make book`.
NBVAL_CELL_TIMEOUT := $(shell sed -n 's/^  timeout: *\([0-9]*\).*/\1/p' _config.yml)
PYTEST := pytest -p no:cacheprovider --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	--nbval-cell-timeout $(NBVAL_CELL_TIMEOUT)

.PHONY: help setup system-deps book pdf test test-package test-chapters test-solutions release collect grade check bench clean

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

# A chapter whose execution failed is not stored in the execution cache, but Sphinx would skip its unchanged
# page on the next build and print "build succeeded". So a failed build also drops Sphinx's saved state
# (_build/.doctrees): the next `make book` re-reads every page, executes that chapter again and fails again,
# while the chapters that executed successfully still come from the cache. A good build stays incremental.
# The tracebacks of failed chapters (jupyter-book writes them into _build/html/reports) are moved out of the
# site to _build/reports: build logs are not published.
book: setup  ## build the HTML book into _build/html (offline; warnings are errors; fails while a chapter fails)
	@rm -rf _build/reports
	jupyter-book build . -W -n --keep-going \
	  || { rm -rf _build/.doctrees; mv _build/html/reports _build/reports 2>/dev/null; \
	       echo "make book FAILED: see the warnings above (tracebacks in _build/reports)"; exit 1; }
	@rm -rf _build/html/reports
	@echo
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

# The whole book as one page (Sphinx's singlehtml builder, into _build/singlehtml), printed by Debian's headless
# chromium to one PDF (tools/print_pdf.py: served on a local port, printed once MathJax has typeset everything and
# every image has loaded; it fails when a page title, typeset math or an image is missing from the PDF).
# The chapters' outputs come from the execution cache that `make book` fills (_build/.jupyter_cache): an
# unchanged chapter is not executed again; a failed build drops Sphinx's saved state as `make book` does.
pdf: setup system-deps  ## print the whole book to one PDF, _build/pdf/book.pdf (math typeset, code wrapped; offline)
	jupyter-book build . --builder singlehtml -W -n --keep-going \
	  || { rm -rf _build/.doctrees; echo "make pdf FAILED: the single-page build failed (see the warnings above)"; exit 1; }
	python tools/print_pdf.py _build/singlehtml _build/pdf/book.pdf --toc _toc.yml

# One pytest session on both cores: the package, the book, grading end to end, and every chapter and solution
# under this machine's numeric configuration and two others (tests/test_portability.py). All of it runs even
# when one part fails; the exit status is non-zero if anything failed. Slowest groups first (tests/conftest.py).
# Three workers on two cores: kernels start, grading runs wait on timeouts and the sandbox, and a third
# worker fills those gaps (measured on 2 cores: 5m08s with -n 2, 4m28s with -n 3).
SUITE := $(PYTEST) -n 3 --dist loadgroup --no-loadscope-reorder
test: setup system-deps  ## run the whole suite: package, book, grading, every notebook under three numeric configurations
	python -m compileall -q src tests
	$(SUITE) tests

# Debian packages the tests need: bubblewrap (the kernel sandbox), util-linux (setpriv, prlimit),
# postgresql (a real server for the shared-gradebook test), and chromium with chromium-driver (the book's
# pages read in a real headless browser, tests/test_pages.py; `make pdf`), and poppler-utils (pdftotext, pdfinfo,
# pdfimages: `make pdf` and tests/test_pdf.py read the printed PDF back). Installed with apt-get when missing.
SYSTEM_DEPS_CHECK := command -v bwrap && command -v setpriv && command -v prlimit \
	&& ls /usr/lib/postgresql/*/bin/initdb && command -v chromium && command -v chromedriver \
	&& command -v pdftotext && command -v pdfinfo && command -v pdfimages
system-deps:  ## install the Debian packages the tests need (bubblewrap, util-linux, postgresql, chromium, poppler-utils) if missing
	@{ $(SYSTEM_DEPS_CHECK); } >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	    || { echo "Install bubblewrap, util-linux, postgresql, chromium, chromium-driver and poppler-utils (Debian/Ubuntu: apt-get install), or run as root."; exit 1; }; \
	  echo "Installing bubblewrap util-linux postgresql chromium chromium-driver poppler-utils with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    bubblewrap util-linux postgresql chromium chromium-driver poppler-utils >/dev/null; }

test-package: setup system-deps  ## the suite without the notebook runs: package, book build, nbgrader end to end
	$(SUITE) tests -k "not test_notebooks_hold_under_each_configuration"

test-chapters: setup  ## re-execute every chapter here and compare with its committed outputs (a report per cell)
	$(PYTEST) -n 2 --dist loadfile --nbval chapters

test-solutions: setup  ## run every solution notebook: all cells run and all tests pass
	$(PYTEST) -n 2 --dist loadfile --nbval-lax solutions

release: setup  ## regenerate exercises/ from solutions/ (a failed generation restores exercises/<id> from git)
	course release

collect: setup  ## copy DIR/<student>/<assignment>/<assignment>.ipynb into submitted/ (make collect DIR=...)
	@test -n "$(DIR)" || { echo "usage: make collect DIR=folder/<student>/<assignment>/"; exit 2; }
	course collect "$(DIR)"

grade: setup  ## autograde new submissions in parallel and sandboxed, export grades.csv, generate feedback
	course grade $(if $(JOBS),--jobs $(JOBS))

check: setup  ## run a notebook's visible tests; fails when one fails, naming it (make check NB=...)
	@test -n "$(NB)" || { echo "usage: make check NB=exercises/<id>/<id>.ipynb"; exit 2; }
	course check "$(NB)"

bench: setup  ## measure set-up, build, test and autograde times (prints the figures quoted in README)
	python tests/benchmarks/course_speed.py
	python tests/benchmarks/package_speed.py

clean:  ## remove build outputs and nbgrader state (keeps .venv)
	rm -rf _build .pytest_cache gradebook.db autograded feedback grades.csv
