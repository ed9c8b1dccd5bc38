"""Shared pytest fixtures and the parallel schedule (kept minimal: every test module may rely on them)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator per test, so tests do not depend on their order."""
    return np.random.default_rng(12345)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Group tests for ``pytest -n 2 --dist loadgroup``.

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
        else:
            group = str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
