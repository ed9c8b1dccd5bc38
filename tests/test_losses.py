"""Losses: values, gradients against centered finite differences, stability, validation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from stablegrad.activations import sigmoid
from stablegrad.gradcheck import check_gradient
from stablegrad.losses import (
    LOSSES, bce_loss, bce_with_logits, get_loss, mse_loss, softmax, softmax_cross_entropy,
)

# float64 centered differences with eps = 1e-6 agree with a correct gradient to ~1e-9;
# 1e-7 leaves margin and still fails any gradient that is off by 0.1% (~5e-4).
TOL = 1e-7
SHAPES = [(1, 1), (5, 1), (8, 3)]


def _scalar(loss_fn, other):
    return lambda x: loss_fn(x, other)[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_mse_gradient_matches_finite_differences(rng, shape):
    pred, y = rng.normal(size=shape), rng.normal(size=shape)
    _, dpred = mse_loss(pred, y)
    result = check_gradient(_scalar(mse_loss, y), pred, dpred, tol=TOL)
    assert result.passed, result.max_rel_error


@pytest.mark.parametrize("shape", SHAPES)
def test_bce_gradient_matches_finite_differences(rng, shape):
    p = rng.uniform(0.05, 0.95, size=shape)
    y = rng.uniform(0.0, 1.0, size=shape)  # soft labels exercise both terms
    _, dp = bce_loss(p, y)
    result = check_gradient(_scalar(bce_loss, y), p, dp, tol=TOL)
    assert result.passed, result.max_rel_error


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.1, 3.0, 20.0])
def test_bce_with_logits_gradient_matches_finite_differences(rng, shape, scale):
    z = scale * rng.normal(size=shape)
    y = rng.integers(0, 2, size=shape).astype(float)
    _, dz = bce_with_logits(z, y)
    # large logits make the loss itself large (~|z|): rounding in f(x +- eps) is ~1e-16 |f| / eps,
    # so take eps = 1e-5 (truncation eps^2 |f'''| / 6 stays below 1e-11, as |f'''| <= 0.1)
    result = check_gradient(_scalar(bce_with_logits, y), z, dz, eps=1e-5, tol=TOL)
    assert result.passed, result.max_rel_error


@pytest.mark.parametrize("shape", [(1, 2), (6, 3), (10, 5)])
@pytest.mark.parametrize("scale", [0.1, 5.0])
def test_softmax_cross_entropy_gradient_matches_finite_differences(rng, shape, scale):
    z = scale * rng.normal(size=shape)
    labels = rng.integers(0, shape[1], size=shape[0])
    _, dz = softmax_cross_entropy(z, labels)
    result = check_gradient(_scalar(softmax_cross_entropy, labels), z, dz, tol=TOL)
    assert result.passed, result.max_rel_error
    # with probability targets as well
    Y = softmax(rng.normal(size=shape))
    _, dz = softmax_cross_entropy(z, Y)
    assert check_gradient(_scalar(softmax_cross_entropy, Y), z, dz, tol=TOL).passed


def test_the_gradient_check_catches_a_gradient_off_by_a_tenth_of_a_percent(rng):
    z, y = rng.normal(size=(6, 1)), rng.integers(0, 2, size=(6, 1)).astype(float)
    _, dz = bce_with_logits(z, y)
    assert not check_gradient(_scalar(bce_with_logits, y), z, dz * 1.001, tol=TOL).passed


def test_known_values():
    assert mse_loss(np.array([[1.0], [3.0]]), np.array([0.0, 1.0]))[0] == pytest.approx(2.5)
    assert bce_loss(np.full((4, 1), 0.5), np.array([0, 1, 0, 1]))[0] == pytest.approx(math.log(2))
    assert bce_with_logits(np.zeros((3, 2)), np.ones((3, 2)))[0] == pytest.approx(math.log(2))
    loss, dz = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    assert loss == pytest.approx(math.log(4))
    np.testing.assert_allclose(dz, [[-0.375, 0.125, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])


def test_fused_and_unfused_bce_agree_away_from_saturation(rng):
    z = rng.normal(size=(7, 1))
    y = rng.integers(0, 2, size=(7, 1)).astype(float)
    p = sigmoid(z)
    loss_p, dp = bce_loss(p, y)
    loss_z, dz = bce_with_logits(z, y)
    assert loss_p == pytest.approx(loss_z, rel=1e-12)
    np.testing.assert_allclose(dp * p * (1 - p), dz, rtol=1e-10)  # chain rule through the sigmoid


def test_softmax_cross_entropy_labels_equal_one_hot(rng):
    z = rng.normal(size=(5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    a = softmax_cross_entropy(z, labels)
    b = softmax_cross_entropy(z, np.eye(3)[labels])
    assert a[0] == pytest.approx(b[0], rel=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-14)
    np.testing.assert_allclose(a[1].sum(axis=1), 0.0, atol=1e-15)  # softmax rows and one-hot rows both sum to 1


def test_extreme_logits_stay_finite_and_exact():
    z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    loss, dz = bce_with_logits(z, y)
    assert loss == pytest.approx(500.0)  # two confidently wrong answers cost |z| = 1000 each
    np.testing.assert_allclose(dz.ravel(), [0.0, 0.0, 0.25, -0.25])
    loss, dz = softmax_cross_entropy(np.array([[1e4, 0.0, -1e4]]), np.array([2]))
    assert loss == pytest.approx(2e4)
    np.testing.assert_allclose(dz, [[1.0, 0.0, -1.0]])


def test_bce_on_saturated_probabilities_is_finite_and_points_the_right_way():
    p = np.array([[0.0], [1.0]])
    y = np.array([1.0, 0.0])
    loss, dp = bce_loss(p, y)
    assert loss == pytest.approx(-math.log(1e-7))
    assert np.all(np.isfinite(dp)) and dp[0, 0] < 0 < dp[1, 0]  # push p up for y = 1, down for y = 0


@pytest.mark.parametrize("fn, make", [
    (mse_loss, lambda r: (r.normal(size=(4, 2)), r.normal(size=(4, 2)))),
    (bce_loss, lambda r: (r.uniform(0.1, 0.9, size=(4, 1)), r.integers(0, 2, size=4))),
    (bce_with_logits, lambda r: (r.normal(size=(4, 1)), r.integers(0, 2, size=(4, 1)))),
    (softmax_cross_entropy, lambda r: (r.normal(size=(4, 3)), r.integers(0, 3, size=4))),
])
def test_float32_in_float32_out_and_inputs_untouched(rng, fn, make):
    x, y = make(rng)
    x32 = x.astype(np.float32)
    before_x, before_y = x32.copy(), np.copy(y)
    loss, grad = fn(x32, y)
    assert isinstance(loss, float) and grad.dtype == np.float32 and grad.shape == x32.shape
    np.testing.assert_array_equal(x32, before_x)
    np.testing.assert_array_equal(y, before_y)
    loss64, grad64 = fn(x, y)
    assert loss == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-7)


def test_one_dimensional_targets_for_one_output(rng):
    pred = rng.normal(size=(6, 1))
    y = rng.normal(size=6)
    a = mse_loss(pred, y)
    b = mse_loss(pred, y.reshape(-1, 1))
    assert a[0] == b[0] and a[1].shape == (6, 1)
    assert bce_with_logits(pred, np.array([True, False] * 3))[1].shape == (6, 1)


@given(z=hnp.arrays(np.float64, (5, 2), elements=st.floats(-30, 30)),
       y=hnp.arrays(np.float64, (5, 2), elements=st.sampled_from([0.0, 1.0])))
@settings(max_examples=50, deadline=None)
def test_bce_with_logits_matches_log_sum_exp_and_is_nonnegative(z, y):
    loss, dz = bce_with_logits(z, y)
    # -[y log s + (1 - y) log(1 - s)] = log(1 + e^z) - y z, with numpy's own stable logaddexp
    reference = np.mean(np.logaddexp(0.0, z) - y * z)
    assert loss >= 0
    assert loss == pytest.approx(reference, rel=1e-12, abs=1e-15)
    assert np.all(np.abs(dz) <= 1 / z.size)


@given(z=hnp.arrays(np.float64, (4, 3), elements=st.floats(-1e3, 1e3)))
@settings(max_examples=50, deadline=None)
def test_softmax_rows_are_distributions(z):
    s = softmax(z)
    assert np.all(s >= 0)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(s, softmax(z + 123.0), rtol=1e-9, atol=1e-300)  # shift invariance


def test_registry():
    assert set(LOSSES) == {"mse", "bce", "bce_with_logits", "softmax_cross_entropy"}
    assert get_loss("mse").fn is mse_loss and get_loss("bce_with_logits").on_logits
    assert get_loss(LOSSES["bce"]) is LOSSES["bce"]
    with pytest.raises(ValueError, match="name must be one of"):
        get_loss("hinge")
    with pytest.raises(TypeError, match="name must be a string"):
        get_loss(3)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: mse_loss(np.zeros((3, 2)), np.zeros((3, 1))), ValueError, "y must have the same shape"),
    (lambda: mse_loss("a", np.zeros(3)), TypeError, "pred"),
    (lambda: bce_loss(np.array([[1.5]]), np.array([1.0])), ValueError, "p must hold probabilities"),
    (lambda: bce_loss(np.array([[0.5]]), np.array([2.0])), ValueError, "y must hold targets in"),
    (lambda: bce_loss(np.array([[0.5]]), np.array([1.0]), eps=0.6), ValueError, "eps"),
    (lambda: bce_with_logits(np.zeros((2, 1)), np.array([0.0, np.nan])), ValueError, "y must hold targets"),
    (lambda: softmax_cross_entropy(np.zeros(3), np.array([0])), ValueError, "logits must have shape"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError, r"labels in y must be in \[0, 2\]"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3)), np.array([0.5, 1])), ValueError, "integer class labels"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3)), np.array([0])), ValueError, r"shape \(2,\)"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3)), np.ones((2, 3))), ValueError, "summing to 1"),
])
def test_bad_inputs_name_the_argument(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_registry_serves_training_loops():
    assert get_loss("cross_entropy") is LOSSES["softmax_cross_entropy"]
    assert {name: l.kind for name, l in LOSSES.items()} == {
        "mse": "regression", "bce": "binary", "bce_with_logits": "binary", "softmax_cross_entropy": "multiclass"}
    rng = np.random.default_rng(0)
    z, labels = rng.normal(size=(5, 3)), np.array([0, 2, 1, 1, 0])
    Y = LOSSES["softmax_cross_entropy"].targets(labels, 5, 3, np.float64, "f")
    # the unchecked core on prepared targets is the public function, to the last bit
    assert LOSSES["softmax_cross_entropy"].core(z, Y)[0] == softmax_cross_entropy(z, labels)[0]
    p, y = rng.uniform(0.1, 0.9, (5, 1)), rng.integers(0, 2, 5)
    Yb = LOSSES["bce"].targets(y, 5, 1, np.float64, "f")
    np.testing.assert_array_equal(LOSSES["bce"].core(p, Yb)[1], bce_loss(p, y)[1])
    with pytest.raises(ValueError, match="f: y must hold targets in"):
        LOSSES["bce"].targets(np.array([0.0, 2.0]), 2, 1, np.float64, "f")
