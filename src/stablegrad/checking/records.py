"""Callables that checks pass to learners' functions, as records that can cross a process boundary.

A case for ``numerical_gradient`` passes a function ``f``; a case for
``activation_variances`` passes an initializer. Lambdas cannot be sent to a
learner's function running in another process, so these are named tuples
registered with :mod:`stablegrad.checking.encoding`: their fields travel as
plain data, and the receiving side rebuilds the same callable. This module
holds no reference implementation of any graded function, so the grading
sandbox may import it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stablegrad import init
from stablegrad.checking.encoding import register_record

__all__ = ["TestFunction", "TEST_FUNCTIONS", "Initializer"]

#: name -> (formula, f(coefficients, x), coefficients(rng, size)).
TEST_FUNCTIONS = {
    "sin": ("sum(sin(3x) x^2)", lambda c, x: np.sum(np.sin(3.0 * x) * x ** 2), lambda rng, n: np.zeros(0)),
    "tanh_quadratic": ("v . tanh(A v), v = x flattened", lambda A, x: np.ravel(x) @ np.tanh(A @ np.ravel(x)),
                       lambda rng, n: rng.standard_normal((n, n)) / np.sqrt(n)),
    "log_sin": ("log(1 + |x|^2) sum(sin x)", lambda c, x: np.log1p(np.sum(x ** 2)) * np.sum(np.sin(x)),
                lambda rng, n: np.zeros(0)),
    "cubic": ("sum(c x^3)/3 + (sum x)^2", lambda c, x: np.sum(c * np.ravel(x) ** 3) / 3.0 + np.sum(x) ** 2,
              lambda rng, n: rng.standard_normal(n)),
}


@register_record
class TestFunction(NamedTuple):
    """A scalar test function ``f(x) -> float`` as data: its name (a key of :data:`TEST_FUNCTIONS`) and
    coefficients. All but ``sin`` couple the entries of x, which a per-entry perturbation must respect."""

    name: str
    coefficients: np.ndarray

    def __call__(self, x) -> float:
        return float(TEST_FUNCTIONS[self.name][1](self.coefficients, np.asarray(x)))

    @property
    def formula(self) -> str:
        return TEST_FUNCTIONS[self.name][0]


@register_record
class Initializer(NamedTuple):
    """An initializer a case passes to ``activation_variances``, as data: one of stablegrad.init's by ``name``;
    for ``"normal"`` and ``"uniform"``, ``scale`` is the standard deviation or the bound."""

    name: str
    scale: float = 0.0

    def __call__(self, fan_in, fan_out, rng):
        if self.name == "normal":
            return init.normal(fan_in, fan_out, rng, std=self.scale)
        if self.name == "uniform":
            return init.uniform(fan_in, fan_out, rng, low=-self.scale, high=self.scale)
        return getattr(init, self.name)(fan_in, fan_out, rng)

    def __str__(self):
        return f"{self.name}({'std' if self.name == 'normal' else 'bound'}={self.scale:g})" \
            if self.name in ("normal", "uniform") else self.name
