"""Shared pytest fixtures and the parallel schedule (kept minimal: every test module may rely on them)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def pycache(tmp_path_factory):
    """Where the book builds byte-compile Sphinx and its extensions (outside the repository), once per session."""
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture(scope="session")
def book(tmp_path_factory, pycache):
    """A cold ``-W --all`` build of a copy of the real book, rendering the committed chapter outputs.

    Shared by tests/test_book.py (the build and its HTML) and tests/test_pages.py (every page in a browser),
    which form one xdist group ("book"), so it is built once per session.

    This proves what a build with execution on would, without executing every chapter a fourth time:
    ``make test`` executes each chapter under nbval from its own folder with the book's per-cell timeout
    (the conditions myst-nb executes it under), where every cell must run and every compared output must
    equal the committed one, on this machine and under the portability harness's configurations; this
    build renders exactly those outputs with zero warnings (glue keys included). That execution itself
    works as configured (chapters run, exercises do not, a cell error fails the first and every later
    ``make book``, the cache serves a rebuild) is checked on the fixture book in tests/test_book.py, with the
    real _config.yml and the Makefile's own ``book`` recipe.
    """
    import yaml
    from test_book import copy_book, jupyter_book_build

    path = copy_book(tmp_path_factory.mktemp("book"))
    config = yaml.safe_load((path / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (path / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    build = jupyter_book_build(path, pycache)
    print(f"cold build of the book (committed outputs): {build.seconds:.1f} s")
    return build


@pytest.fixture
def rng():
    """A freshly seeded generator per test, so tests do not depend on their order."""
    return np.random.default_rng(12345)


# The slowest groups, slowest first (seconds, measured with --durations on 2 cores): each
# runs real kernels, builds or grading runs. ``make test`` passes --no-loadscope-reorder, so the workers
# take groups in this order and the hundreds of quick unit tests fill the gaps at the end (longest
# first is close to the shortest finishing time; xdist's default, most tests first, would leave one
# 60-second group alone on one core at the very end).
SLOW_GROUPS_FIRST = (
    "zoo",                                  # ~70 s: one sandboxed `course grade` run over the whole zoo
    "portability:own-chapters",             # ~60 s each: the five chapters under nbval, one config each
    "portability:other-blas-chapters",
    "portability:reduced-simd-chapters",
    "grading:",                             # 30-60 s each: one `course grade` run per exercise with its mutants
    "postgres",                             # ~30 s: a real PostgreSQL server
    "book",                                 # ~70 s: the book build, the fixture-book builds, the browser scan
    "pdf",                                  # ~20 s: a small one-page book printed by chromium
    "portability:",                         # ~12 s each: the five solutions under nbval-lax
    "grading-cli",
    "scoring",                              # ~30 s: real (unsandboxed) grading of crafted notebooks
    "sandbox",                              # ~20 s: a package copy per declaration, a real sandbox
)


def _rank(group: str) -> int:
    for i, prefix in enumerate(SLOW_GROUPS_FIRST):
        if group == prefix or (prefix.endswith(":") and group.startswith(prefix)):
            return i
    return len(SLOW_GROUPS_FIRST)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Group tests for ``pytest -n 2 --dist loadgroup``, slowest groups first.

    Each file is one group, except the nbgrader end-to-end tests, which form one group per
    assignment: each assignment's autograde run is among the slowest units of the suite, and they
    run in parallel on separate workers. Expensive fixtures (the book build, an assignment's
    autograde run) are session-scoped, so a worker that interleaves groups builds each only once.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.path.name == "test_exercises.py" and "assignment" in params:
            group = f"grading:{params['assignment']}"
        elif item.path.name in ("test_book.py", "test_pages.py"):
            group = "book"
        else:
            group = str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
    groups = {item: item.get_closest_marker("xdist_group").args[0] for item in items}
    items.sort(key=lambda item: _rank(groups[item]))      # stable: order inside a rank is kept
