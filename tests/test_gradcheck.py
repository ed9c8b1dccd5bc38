"""stablegrad.gradcheck: the checker itself, including that it fails wrong gradients."""

import numpy as np
import pytest

from stablegrad import gradcheck as gc
from stablegrad import layers, normalization

TOL = 1e-7  # the default; correct float64 gradients measure ~1e-9, a 0.1% error ~5e-4


def cubic(x):
    return float(np.sum(x ** 3) + np.sum(np.sin(x)))


def cubic_grad(x):
    return 3 * x ** 2 + np.cos(x)


@pytest.mark.parametrize("shape", [(1,), (5,), (3, 4), (2, 3, 2)])
def test_numerical_gradient_of_known_function(rng, shape):
    x = rng.standard_normal(shape)
    before = x.copy()
    num = gc.numerical_gradient(cubic, x)
    assert num.shape == x.shape and num.dtype == x.dtype
    np.testing.assert_allclose(num, cubic_grad(x), rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(x, before)  # the caller's x is never left modified


def test_numerical_gradient_array_of_known_function(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    before = x.copy()
    num = gc.numerical_gradient_array(lambda v: v ** 2, x, dout)
    np.testing.assert_allclose(num, 2 * x * dout, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_array_copes_with_f_returning_its_input(rng):
    # an f that returns (a view of) its argument must not see its output change under it
    x = rng.standard_normal(4)
    dout = rng.standard_normal(4)
    np.testing.assert_allclose(gc.numerical_gradient_array(lambda v: v, x, dout), dout, rtol=1e-9)


def test_relative_error_definition():
    assert gc.relative_error(np.zeros(3), np.zeros(3)) == 0.0  # 0 / tiny, not NaN
    assert gc.relative_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert gc.relative_error(np.array([1.0, 2.0]), np.array([1.001, 2.0])) == pytest.approx(0.001 / 2.001)
    assert gc.relative_error(np.array([1.0]), np.array([-1.0])) == 1.0  # opposite signs: the maximum
    assert gc.relative_error(np.array([1.0, np.nan]), np.array([1.0, 1.0])) == np.inf
    # the floor: a small absolute error on a tiny entry counts against the floor instead
    assert gc.relative_error(np.array([1e-12]), np.array([0.0]), floor=1.0) == pytest.approx(1e-12)


def test_check_gradient_passes_a_correct_gradient(rng):
    x = rng.standard_normal((4, 3))
    result = gc.check_gradient(cubic, x, cubic_grad(x))
    assert isinstance(result, gc.GradCheckResult)
    assert result.passed and result.max_rel_error < 1e-8
    assert len(result.worst_index) == 2 and result.numerical.shape == x.shape


# --------------------------------------------------------------------------- testing the tester

def _dense_case(rng):
    x = rng.standard_normal((6, 5))
    W = rng.standard_normal((5, 4)) / np.sqrt(5)
    b = rng.standard_normal(4)
    dout = rng.standard_normal((6, 4))
    return x, W, b, dout


@pytest.mark.parametrize("factor", [1.001, 0.999])
def test_off_by_a_tenth_of_a_percent_fails(rng, factor):
    x, W, b, dout = _dense_case(rng)
    _, cache = layers.dense_forward(x, W, b)
    dx, dW, _ = layers.dense_backward(dout, cache)
    f = lambda v: np.sum(layers.dense_forward(v, W, b)[0] * dout)  # noqa: E731
    assert gc.check_gradient(f, x, dx).passed  # the correct one passes...
    bad = gc.check_gradient(f, x, dx * factor)
    assert not bad.passed  # ...and an error of 0.1% fails, by a wide margin
    assert bad.max_rel_error > 100 * TOL
    assert not gc.directional_check(f, x, dx * factor, rng).passed
    fW = lambda v: np.sum(layers.dense_forward(x, v, b)[0] * dout)  # noqa: E731
    assert not gc.check_gradient(fW, W, dW * factor).passed


def test_a_single_wrong_entry_is_found(rng):
    x, W, b, dout = _dense_case(rng)
    _, cache = layers.dense_forward(x, W, b)
    dx, _, _ = layers.dense_backward(dout, cache)
    bad = dx.copy()
    bad[3, 2] *= 1.001
    result = gc.check_gradient(lambda v: np.sum(layers.dense_forward(v, W, b)[0] * dout), x, bad)
    assert not result.passed and result.worst_index == (3, 2)


def test_wrong_sign_fails(rng):
    x, W, b, dout = _dense_case(rng)
    _, cache = layers.dense_forward(x, W, b)
    _, dW, _ = layers.dense_backward(dout, cache)
    f = lambda v: np.sum(layers.dense_forward(x, v, b)[0] * dout)  # noqa: E731
    result = gc.check_gradient(f, W, -dW)
    assert not result.passed and result.max_rel_error == pytest.approx(1.0)
    assert not gc.directional_check(f, W, -dW, rng).passed


def test_missing_activation_derivative_fails(rng):
    # a classic bug: backpropagating through tanh as if it were the identity
    x = rng.standard_normal((5, 3))
    params = [(rng.standard_normal((3, 4)), rng.standard_normal(4))]
    out, caches = layers.stack_forward(x, params, "tanh")
    dout = rng.standard_normal(out.shape)
    wrong_dx = (dout @ params[0][0].T)  # missing the factor (1 - tanh^2)
    f = lambda v: np.sum(layers.stack_forward(v, params, "tanh")[0] * dout)  # noqa: E731
    assert gc.check_gradient(f, x, layers.stack_backward(dout, caches)[0]).passed
    assert not gc.check_gradient(f, x, wrong_dx).passed
    assert not gc.directional_check(f, x, wrong_dx, rng).passed


def test_missing_batchnorm_mean_term_fails(rng):
    # batch norm's backward without the path through the mean: dx misses -mean(dxhat) / std
    x = rng.standard_normal((8, 3)) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    out, cache, _ = normalization.batchnorm_forward(x, gamma, beta)
    dout = rng.standard_normal(out.shape)
    dx, _, _ = normalization.batchnorm_backward(dout, cache)
    wrong = dx + (dout * gamma).mean(axis=0) / cache.std
    f = lambda v: np.sum(normalization.batchnorm_forward(v, gamma, beta)[0] * dout)  # noqa: E731
    assert gc.check_gradient(f, x, dx).passed
    assert not gc.check_gradient(f, x, wrong).passed


def test_directional_check_passes_a_correct_gradient_and_reports_scalars(rng):
    x = rng.standard_normal((10, 10))
    result = gc.directional_check(cubic, x, cubic_grad(x), rng)
    assert result.passed and result.worst_index == ()
    assert isinstance(result.numerical, float) and isinstance(result.analytic, float)
    assert result.numerical == pytest.approx(result.analytic, rel=1e-8)


def test_floor_fraction_zero_is_purely_entrywise(rng):
    # entries that are exactly zero in both gradients are fine even without a floor
    x = rng.standard_normal(4)
    f = lambda v: float(np.sum(v[:2] ** 2))  # noqa: E731
    analytic = np.concatenate([2 * x[:2], [0.0, 0.0]])
    assert gc.check_gradient(f, x, analytic, floor_fraction=0.0).passed


def test_nan_analytic_gradient_fails(rng):
    x = rng.standard_normal(3)
    result = gc.check_gradient(cubic, x, np.array([np.nan, 0.0, 0.0]))
    assert not result.passed and result.max_rel_error == np.inf


# --------------------------------------------------------------------------- errors

BAD_CALLS = [
    (lambda: gc.numerical_gradient("f", np.ones(2)), TypeError, "numerical_gradient: f must be callable"),
    (lambda: gc.numerical_gradient(lambda v: v, np.ones(2)), TypeError, "numerical_gradient: f must return a scalar"),
    (lambda: gc.numerical_gradient(cubic, np.ones(2), eps=0), ValueError, "numerical_gradient: eps"),
    (lambda: gc.numerical_gradient(cubic, np.ones(2, np.float32) * 1e3), ValueError, "eps = 1e-06 is too small"),
    (lambda: gc.numerical_gradient_array(lambda v: v, np.ones(2), np.ones(3)), ValueError,
     "numerical_gradient_array: dout must have the shape of f(x)"),
    (lambda: gc.relative_error(np.ones(2), np.ones(3)), ValueError, "relative_error: a and b"),
    (lambda: gc.check_gradient(cubic, np.ones(2), np.ones(3)), ValueError, "check_gradient: analytic"),
    (lambda: gc.check_gradient(cubic, np.ones(2), np.ones(2), tol=-1), ValueError, "check_gradient: tol"),
    (lambda: gc.directional_check(cubic, np.ones(2), np.ones(2), 0), TypeError, "directional_check: rng"),
    (lambda: gc.directional_check(cubic, np.ones(2), np.ones(3), np.random.default_rng(0)), ValueError,
     "directional_check: analytic"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)


# --------------------------------------------------------------------------- step size: truncation vs rounding

def _cube(v):
    return v[0] * v[0] * v[0]  # only + and *: correctly rounded, the same on every machine


def test_step_errors_follow_truncation_for_large_steps():
    # for a cubic the centered difference is exactly f'(x) + eps^2 (f''' = 6): truncation eps^2 f'''/6
    x = np.array([0.8])
    eps = np.array([1e-1, 1e-2, 1e-3])
    errors = gc.step_errors(_cube, x, 3 * x ** 2, eps)
    assert errors.shape == (3,) and errors.dtype == np.float64
    truncation, rounding = gc.step_error_model(eps, 0.8 ** 3, 6.0)
    np.testing.assert_allclose(errors, eps ** 2, rtol=1e-6)           # rounding is < 1e-12 of these
    np.testing.assert_allclose(truncation, eps ** 2, rtol=1e-15)
    assert np.all(rounding < 1e-12)


def test_step_errors_follow_rounding_for_small_steps():
    # below the optimum the error grows like u |f| / eps; the model is a typical size (measured 0.4-0.7 of it)
    points = np.linspace(0.5, 1.0, 21)
    eps = np.array([1e-7, 1e-8, 1e-9])
    errors = np.max([gc.step_errors(_cube, np.array([p]), np.array([3 * p * p]), eps) for p in points], axis=0)
    _, rounding = gc.step_error_model(eps, 1.0, 6.0)
    assert np.all(errors > 0.1 * rounding) and np.all(errors < 2 * rounding)
    assert errors[2] > 10 * errors[0] / 2                              # grows as the step shrinks


def test_float32_rounding_is_a_million_times_larger():
    x32 = np.array([0.8], dtype=np.float32)
    err32 = gc.step_errors(_cube, x32, np.array([3 * float(x32[0]) ** 2]), [1e-6])[0]
    _, rounding32 = gc.step_error_model(1e-6, float(x32[0]) ** 3, 6.0, np.float32)
    assert 1e-3 < err32 < 2 * rounding32 < 0.1                         # far above any tolerance near 1e-7


def test_optimal_step_minimizes_the_model():
    for dtype, expected in ((np.float64, 6.9e-6), (np.float32, 5.6e-3)):
        best = gc.optimal_step(1.0, 1.0, dtype)
        assert best == pytest.approx(expected, rel=0.02)
        grid = best * np.logspace(-1, 1, 201)
        truncation, rounding = gc.step_error_model(grid, 1.0, 1.0, dtype)
        total = truncation + rounding
        assert abs(np.log10(grid[np.argmin(total)] / best)) < 0.011    # the grid's resolution
        u = np.finfo(dtype).eps / 2
        assert total.min() == pytest.approx(1.5 * u / best, rel=1e-3)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: gc.step_errors(_cube, np.ones(1), np.ones(2), [1e-6]), ValueError, "step_errors: analytic"),
    (lambda: gc.step_errors(_cube, np.ones(1), np.ones(1), [0.0]), ValueError, "step_errors: eps_values"),
    (lambda: gc.step_errors(_cube, np.ones(1), np.ones(1), 1e-6), ValueError, "step_errors: eps_values must have shape (K,)"),
    (lambda: gc.step_errors(1, np.ones(1), np.ones(1), [1e-6]), TypeError, "step_errors: f must be callable"),
    (lambda: gc.step_error_model([-1.0], 1.0, 1.0), ValueError, "step_error_model: eps"),
    (lambda: gc.step_error_model(1e-6, 0.0, 1.0), ValueError, "step_error_model: f_scale"),
    (lambda: gc.step_error_model(1e-6, 1.0, 1.0, np.int32), TypeError, "step_error_model: dtype"),
    (lambda: gc.optimal_step(1.0, 0.0), ValueError, "optimal_step: third_derivative"),
    (lambda: gc.optimal_step(1.0, 1.0, "banana"), TypeError, "optimal_step: dtype"),
])
def test_step_functions_reject_bad_input(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)
