"""Shared pytest fixtures and the parallel schedule (kept minimal: every test module may rely on them)."""

import numpy as np
import pytest


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
    "grading:",                             # 30-60 s each: one autograde run per exercise with its mutants
    "postgres",                             # ~30 s: a real PostgreSQL server
    "book",                                 # ~40 s: the book build and the fixture-book builds
    "portability:",                         # ~12 s each: the five solutions under nbval-lax
    "grading-cli",
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
        elif item.path.name == "test_book.py":
            group = "book"
        else:
            group = str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
    groups = {item: item.get_closest_marker("xdist_group").args[0] for item in items}
    items.sort(key=lambda item: _rank(groups[item]))      # stable: order inside a rank is kept
