"""Hidden-test inputs that cannot be predicted from the course's public sources.

The solutions, hidden tests included, are public, so a seed written in a
hidden-test cell is no secret: a learner could compute the hidden inputs
and special-case them. Hidden cells therefore draw through
:func:`hidden_rng`. In a notebook or in the test suite it is
``np.random.default_rng(seed)``; when the grader sets
:data:`SALT_VARIABLE` (a fresh random number per grading run, recorded with
the grade so that the run can be repeated), the seed is mixed with it, and
the inputs are new for every run. The learner's code never sees the salt:
it runs in a sandbox started with an empty environment.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["SALT_VARIABLE", "hidden_rng"]

SALT_VARIABLE = "COURSEGRADE_SALT"


def hidden_rng(seed: int) -> np.random.Generator:
    """A generator for a hidden test's inputs: ``default_rng(seed)``, or ``seed`` mixed with the grading salt."""
    salt = os.environ.get(SALT_VARIABLE, "").strip()
    if not salt:
        return np.random.default_rng(seed)
    return np.random.default_rng([int(seed), int(salt)])
