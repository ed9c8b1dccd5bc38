"""Seeded toy data sets, NumPy only.

Every function draws from the generator it is given and from nothing else, so
the same seed gives the same data on every machine:

>>> import numpy as np
>>> from stablegrad.datasets import two_moons
>>> X, y = two_moons(4, noise=0.0, rng=np.random.default_rng(0))
>>> X.shape, y.shape
((4, 2), (4,))

Shapes use N for the number of samples and F for the number of features.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from stablegrad._validate import check_int, check_positive, check_rng

__all__ = ["RegressionData", "two_moons", "linear_regression", "synthetic_classification"]


class RegressionData(NamedTuple):
    """A linear regression set: ``y = X @ w + bias + noise``.

    Attributes
    ----------
    X : ndarray of shape (N, F)
    y : ndarray of shape (N, 1)
    w : ndarray of shape (F, 1)
        The true weights that generated ``y``.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray


def two_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, the classic non-linearly separable set.

    The upper moon (label 0) is ``(cos t, sin t)`` and the lower moon (label 1)
    is ``(1 - cos t, 1/2 - sin t)`` for ``t`` evenly spaced in ``[0, pi]``; Gaussian
    noise of standard deviation ``noise`` is added to every coordinate and the
    rows are shuffled.

    Parameters
    ----------
    n : int
        Number of points N >= 2; the upper moon gets ``N // 2`` of them.
    noise : float
        Standard deviation of the Gaussian noise (>= 0).
    rng : numpy.random.Generator
        Source of the noise and of the shuffle.

    Returns
    -------
    X : ndarray of shape (N, 2), float64
    y : ndarray of shape (N,), int64
        Labels in {0, 1}.
    """
    func = "two_moons"
    n = check_int(n, "n", func, minimum=2)
    noise = check_positive(noise, "noise", func, allow_zero=True)
    rng = check_rng(rng, func)

    n_upper = n // 2
    n_lower = n - n_upper
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_lower)
    X = np.empty((n, 2))
    X[:n_upper, 0] = np.cos(t_upper)
    X[:n_upper, 1] = np.sin(t_upper)
    X[n_upper:, 0] = 1.0 - np.cos(t_lower)
    X[n_upper:, 1] = 0.5 - np.sin(t_lower)
    y = np.concatenate([np.zeros(n_upper, dtype=np.int64), np.ones(n_lower, dtype=np.int64)])

    order = rng.permutation(n)
    X, y = X[order], y[order]
    if noise > 0:
        X += noise * rng.standard_normal(X.shape)
    return X, y


def linear_regression(n: int, n_features: int, noise: float, rng: np.random.Generator, *,
                      weight_scale: float = 1.0, bias: float = 0.0) -> RegressionData:
    """A linear regression set with Gaussian features.

    ``X ~ N(0, 1)`` elementwise, ``w ~ N(0, weight_scale^2)`` and

        y = X @ w + bias + noise * eps,   eps ~ N(0, 1).

    Parameters
    ----------
    n : int
        Number of samples N >= 1.
    n_features : int
        Number of features F >= 1.
    noise : float
        Standard deviation of the noise added to ``y`` (>= 0).
    rng : numpy.random.Generator
        Source of ``X``, ``w`` and the noise, drawn in that order.
    weight_scale : float, default 1.0
        Standard deviation of the true weights (> 0).
    bias : float, default 0.0
        Constant added to every target.

    Returns
    -------
    RegressionData
        Named tuple ``(X, y, w)`` with shapes (N, F), (N, 1) and (F, 1), float64;
        it unpacks as ``X, y, w = linear_regression(...)``.
    """
    func = "linear_regression"
    n = check_int(n, "n", func, minimum=1)
    n_features = check_int(n_features, "n_features", func, minimum=1)
    noise = check_positive(noise, "noise", func, allow_zero=True)
    rng = check_rng(rng, func)
    weight_scale = check_positive(weight_scale, "weight_scale", func)
    if isinstance(bias, bool) or not isinstance(bias, numbers.Real):
        raise TypeError(f"{func}: bias must be a real number; got {type(bias).__name__}")
    if not np.isfinite(bias):
        raise ValueError(f"{func}: bias must be finite; got {bias!r}")

    X = rng.standard_normal((n, n_features))
    w = weight_scale * rng.standard_normal((n_features, 1))
    y = X @ w + float(bias) + noise * rng.standard_normal((n, 1))
    return RegressionData(X, y, w)


def synthetic_classification(n: int, n_features: int, n_classes: int,
                             rng: np.random.Generator, *, separation: float = 2.0,
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, one per class, for multi-class classification.

    Class centres are drawn as ``separation * N(0, I)`` in ``F`` dimensions; each
    sample is its class centre plus ``N(0, I)`` noise. Classes are balanced
    (sizes differ by at most one) and the rows are shuffled.

    Parameters
    ----------
    n : int
        Number of samples N >= n_classes.
    n_features : int
        Number of features F >= 1.
    n_classes : int
        Number of classes K >= 2.
    rng : numpy.random.Generator
        Source of the centres, the noise and the shuffle.
    separation : float, default 2.0
        Scale of the class centres relative to the unit within-class spread
        (> 0): larger means easier.

    Returns
    -------
    X : ndarray of shape (N, F), float64
    y : ndarray of shape (N,), int64
        Labels in {0, ..., K - 1}.
    """
    func = "synthetic_classification"
    n = check_int(n, "n", func, minimum=1)
    n_features = check_int(n_features, "n_features", func, minimum=1)
    n_classes = check_int(n_classes, "n_classes", func, minimum=2)
    rng = check_rng(rng, func)
    separation = check_positive(separation, "separation", func)
    if n < n_classes:
        raise ValueError(f"{func}: n must be >= n_classes = {n_classes} so that every class "
                         f"has a sample; got n = {n}")

    centres = separation * rng.standard_normal((n_classes, n_features))
    y = np.arange(n, dtype=np.int64) % n_classes
    X = centres[y] + rng.standard_normal((n, n_features))
    order = rng.permutation(n)
    return X[order], y[order]
