"""Seeded toy data sets: shapes, dtypes, reproducibility, the geometry they promise."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stablegrad.datasets import linear_regression, synthetic_classification, two_moons


@given(n=st.integers(2, 300), noise=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_two_moons_shapes_labels_and_balance(n, noise, seed):
    X, y = two_moons(n, noise, np.random.default_rng(seed))
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y)) <= {0, 1}
    assert np.count_nonzero(y == 0) == n // 2  # the upper moon gets N // 2 points
    assert np.all(np.isfinite(X))


def test_two_moons_without_noise_lies_on_the_two_half_circles(rng):
    X, y = two_moons(200, 0.0, rng)
    upper, lower = X[y == 0], X[y == 1]
    # upper moon: unit half circle centred at (0, 0), y >= 0
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-12)
    assert np.all(upper[:, 1] >= -1e-12)
    # lower moon: unit half circle centred at (1, 0.5), y <= 0.5
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0, atol=1e-12)
    assert np.all(lower[:, 1] <= 0.5 + 1e-12)


def test_two_moons_noise_has_the_requested_scale():
    clean, y0 = two_moons(3000, 0.0, np.random.default_rng(7))
    noisy, y1 = two_moons(3000, 0.25, np.random.default_rng(7))
    np.testing.assert_array_equal(y0, y1)  # same permutation: noise is drawn after the shuffle
    assert abs(np.std(noisy - clean) - 0.25) < 0.01


def test_datasets_are_reproducible_and_seed_dependent():
    a = two_moons(100, 0.2, np.random.default_rng(3))
    b = two_moons(100, 0.2, np.random.default_rng(3))
    c = two_moons(100, 0.2, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    r1 = linear_regression(50, 3, 0.1, np.random.default_rng(3))
    r2 = linear_regression(50, 3, 0.1, np.random.default_rng(3))
    for u, v in zip(r1, r2):
        np.testing.assert_array_equal(u, v)
    s1 = synthetic_classification(60, 4, 3, np.random.default_rng(3))
    s2 = synthetic_classification(60, 4, 3, np.random.default_rng(3))
    np.testing.assert_array_equal(s1[0], s2[0])
    np.testing.assert_array_equal(s1[1], s2[1])


def test_linear_regression_shapes_and_model(rng):
    X, y, w = linear_regression(1500, 15, 0.2, rng)
    assert X.shape == (1500, 15) and y.shape == (1500, 1) and w.shape == (15, 1)
    residual = y - X @ w
    assert abs(residual.std() - 0.2) < 0.02
    # least squares recovers the true weights to within the noise
    w_hat, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(w_hat, w, atol=0.05)


def test_linear_regression_noise_free_with_bias_is_exact(rng):
    X, y, w = linear_regression(20, 4, 0.0, rng, weight_scale=3.0, bias=2.5)
    np.testing.assert_allclose(y, X @ w + 2.5, rtol=0, atol=1e-12)


def test_synthetic_classification_is_balanced_and_separable(rng):
    X, y = synthetic_classification(900, 5, 3, rng, separation=6.0)
    assert X.shape == (900, 5) and y.shape == (900,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [300, 300, 300])
    # well separated blobs: nearest class mean classifies almost everything
    means = np.stack([X[y == k].mean(axis=0) for k in range(3)])
    pred = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(pred == y) > 0.95


@pytest.mark.parametrize("call, exc, words", [
    (lambda r: two_moons(1, 0.1, r), ValueError, "n must be >= 2"),
    (lambda r: two_moons(10.0, 0.1, r), TypeError, "n must be an integer"),
    (lambda r: two_moons(10, -0.1, r), ValueError, "noise"),
    (lambda r: two_moons(10, 0.1, 0), TypeError, "rng"),
    (lambda r: linear_regression(10, 0, 0.1, r), ValueError, "n_features"),
    (lambda r: linear_regression(10, 2, 0.1, r, weight_scale=0.0), ValueError, "weight_scale"),
    (lambda r: linear_regression(10, 2, 0.1, r, bias="1"), TypeError, "bias"),
    (lambda r: linear_regression(10, 2, 0.1, r, bias=float("nan")), ValueError, "bias"),
    (lambda r: synthetic_classification(10, 2, 1, r), ValueError, "n_classes"),
    (lambda r: synthetic_classification(2, 2, 3, r), ValueError, "n must be >= n_classes"),
    (lambda r: synthetic_classification(10, 2, 2, np.random.RandomState(0)), TypeError, "rng"),
])
def test_bad_arguments_are_named(rng, call, exc, words):
    with pytest.raises(exc, match=words):
        call(rng)
