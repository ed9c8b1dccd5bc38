"""Shared pytest fixtures (kept minimal: every test module may rely on them)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator per test, so tests do not depend on their order."""
    return np.random.default_rng(12345)
