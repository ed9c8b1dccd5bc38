"""stablegrad.normalization: batch norm (staged and compact), layer norm and RMS norm."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablegrad import normalization as nz
from stablegrad.gradcheck import check_gradient

# Finite-difference tolerance (float64, eps = 1e-6): a correct backward pass measures ~1e-9 (rounding
# ~1e-16 |f| / eps, truncation ~eps^2 |f'''|, both relative to the gradient's scale); an error of 0.1%
# measures ~5e-4. The array-valued check (dout=...) subtracts outputs before summing them, which keeps
# rounding relative to the outputs that each entry moves.
TOL = 1e-7
SHAPES = [(2, 3), (5, 4), (16, 7)]
# With N = 2 batch norm maps each feature to about (-1, +1) whatever x is: its input gradient is only
# of order eps / var, far below what finite differences on O(1) outputs can resolve. Gradient checks
# of batch norm therefore start at N = 3; N = 2 is covered by the staged/compact agreement test.
BN_SHAPES = [(3, 3), (5, 4), (16, 7)]
SCALES = [0.1, 1.0, 10.0]


def assert_grad(forward, x, dout, analytic, what):
    result = check_gradient(forward, x, analytic, tol=TOL, dout=dout)
    assert result.passed, f"{what}: max relative error {result.max_rel_error:.2e} at {result.worst_index}"


def _problem(rng, shape, scale):
    x = rng.standard_normal(shape) * scale + rng.standard_normal(shape[1]) * scale
    gamma = rng.uniform(0.5, 2.0, shape[1]) * rng.choice([-1, 1], shape[1])
    beta = rng.standard_normal(shape[1])
    dout = rng.standard_normal(shape)
    return x, gamma, beta, dout


# --------------------------------------------------------------------------- batch norm, gradients

@pytest.mark.parametrize("backward", [nz.batchnorm_backward, nz.batchnorm_backward_compact],
                         ids=["staged", "compact"])
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("scale", SCALES)
def test_batchnorm_backward_matches_finite_differences(rng, backward, shape, scale):
    x, gamma, beta, dout = _problem(rng, shape, scale)
    _, cache, _ = nz.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    assert_grad(lambda v: nz.batchnorm_forward(v, gamma, beta)[0], x, dout, dx, "dx")
    assert_grad(lambda v: nz.batchnorm_forward(x, v, beta)[0], gamma, dout, dgamma, "dgamma")
    assert_grad(lambda v: nz.batchnorm_forward(x, gamma, v)[0], beta, dout, dbeta, "dbeta")


@pytest.mark.parametrize("backward", [nz.batchnorm_backward, nz.batchnorm_backward_compact],
                         ids=["staged", "compact"])
def test_batchnorm_eval_backward_matches_finite_differences(rng, backward):
    x, gamma, beta, dout = _problem(rng, (6, 4), 1.0)
    running = nz.RunningStats(rng.standard_normal(4), rng.uniform(0.5, 2.0, 4))
    _, cache, _ = nz.batchnorm_forward(x, gamma, beta, running, train=False)
    dx, dgamma, _ = backward(dout, cache)
    assert_grad(lambda v: nz.batchnorm_forward(v, gamma, beta, running, train=False)[0], x, dout, dx, "dx")
    assert_grad(lambda v: nz.batchnorm_forward(x, v, beta, running, train=False)[0], gamma, dout, dgamma, "dgamma")


@pytest.mark.parametrize("shape", SHAPES + [(64, 32)])
@pytest.mark.parametrize("scale", SCALES)
def test_staged_and_compact_agree(rng, shape, scale):
    x, gamma, beta, dout = _problem(rng, shape, scale)
    _, cache, _ = nz.batchnorm_forward(x, gamma, beta)
    staged = nz.batchnorm_backward(dout, cache)
    compact = nz.batchnorm_backward_compact(dout, cache)
    # Same algebra, rounded differently. "Relative" means relative to the size of the terms that are
    # summed: dx is a difference of terms of size |gamma| |dout| / std (it can cancel to almost 0, e.g.
    # with N = 2), dgamma and dbeta are sums of N terms of size |dout| (times |xhat| <= sqrt(N)).
    dx_terms = np.max(np.abs(gamma) / cache.std) * np.max(np.abs(dout)) * shape[0]
    sums = np.max(np.abs(dout)) * shape[0] ** 1.5
    for a, b, name, size in zip(staged, compact, ("dx", "dgamma", "dbeta"), (dx_terms, sums, sums)):
        assert np.max(np.abs(a - b)) <= 1e-12 * size, name


@pytest.mark.parametrize("backward", [nz.batchnorm_backward, nz.batchnorm_backward_compact],
                         ids=["staged", "compact"])
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_dx_invariants(rng, backward, shape):
    # dx is gamma/std * dout with its mean and its component along xhat removed, per feature. So
    # sum_i dx_i = 0, and since sum_i xhat_i^2 = N var / (var + eps) (not exactly N),
    # sum_i dx_i xhat_i = (gamma / std) * sum_i dout_i xhat_i * eps / (var + eps): zero up to eps / var.
    x, gamma, beta, dout = _problem(rng, shape, 1.0)
    _, cache, _ = nz.batchnorm_forward(x, gamma, beta)
    dx, dgamma, _ = backward(dout, cache)
    scale = np.abs(gamma) / cache.std * np.abs(dout).sum(axis=0) * shape[0]  # size of the summed terms
    assert np.all(np.abs(dx.sum(axis=0)) <= 1e-12 * scale)
    expected = gamma / cache.std * dgamma * cache.eps / (cache.var + cache.eps)
    assert np.all(np.abs((dx * cache.xhat).sum(axis=0) - expected) <= 1e-12 * scale)
    assert np.all(np.abs(expected) <= scale * cache.eps / cache.var)


# --------------------------------------------------------------------------- batch norm, forward

@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 64), d=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       loc=st.floats(-100, 100), log_scale=st.floats(-2, 3))
def test_train_mode_output_is_standardized(n, d, seed, loc, log_scale):
    x = loc + 10.0 ** log_scale * np.random.default_rng(seed).standard_normal((n, d))
    out, cache, _ = nz.batchnorm_forward(x, np.ones(d), np.zeros(d))
    # per feature the mean is 0 and the (biased) variance is var / (var + eps), i.e. 1 up to eps / var
    var = x.var(axis=0)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(out.var(axis=0), var / (var + 1e-5), rtol=1e-8, atol=1e-12)
    assert np.all(out.var(axis=0) <= 1.0 + 1e-12)


def test_running_statistics_update_and_caller_arrays_untouched(rng):
    x, gamma, beta, _ = _problem(rng, (10, 3), 2.0)
    running = nz.RunningStats(rng.standard_normal(3), rng.uniform(0.5, 2, 3))
    copies = [a.copy() for a in (x, gamma, beta, running.mean, running.var)]
    _, _, new = nz.batchnorm_forward(x, gamma, beta, running, momentum=0.8)
    assert isinstance(new, nz.RunningStats)
    np.testing.assert_allclose(new.mean, 0.8 * running.mean + 0.2 * x.mean(axis=0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(new.var, 0.8 * running.var + 0.2 * x.var(axis=0), rtol=1e-13)  # biased (1/N)
    assert not np.shares_memory(new.mean, running.mean) and not np.shares_memory(new.var, running.var)
    for before, after in zip(copies, (x, gamma, beta, running.mean, running.var)):
        np.testing.assert_array_equal(before, after)


def test_default_running_statistics_are_zeros_and_ones(rng):
    x, gamma, beta, _ = _problem(rng, (4, 2), 1.0)
    _, _, new = nz.batchnorm_forward(x, gamma, beta, momentum=0.9)
    np.testing.assert_allclose(new.mean, 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(new.var, 0.9 + 0.1 * x.var(axis=0))


def test_eval_mode_uses_running_stats_and_leaves_them_alone(rng):
    x, gamma, beta, _ = _problem(rng, (7, 3), 1.0)
    running = nz.RunningStats(rng.standard_normal(3), rng.uniform(0.5, 2, 3))
    copies = (running.mean.copy(), running.var.copy())
    out, cache, returned = nz.batchnorm_forward(x, gamma, beta, running, train=False)
    np.testing.assert_allclose(out, gamma * (x - running.mean) / np.sqrt(running.var + 1e-5) + beta, rtol=1e-14)
    assert returned is running
    np.testing.assert_array_equal(running.mean, copies[0])
    np.testing.assert_array_equal(running.var, copies[1])
    assert not cache.train
    # a single sample is fine in evaluation mode
    out1, _, _ = nz.batchnorm_forward(x[:1], gamma, beta, running, train=False)
    np.testing.assert_allclose(out1, out[:1])


def test_float32_is_preserved(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    out, cache, running = nz.batchnorm_forward(x, g, b)
    assert out.dtype == np.float32 and running.mean.dtype == np.float32
    assert all(a.dtype == np.float32 for a in nz.batchnorm_backward(np.ones_like(out), cache))
    assert all(a.dtype == np.float32 for a in nz.batchnorm_backward_compact(np.ones_like(out), cache))
    out, cache = nz.layernorm_forward(x, g, b)
    assert out.dtype == np.float32 and nz.layernorm_backward(out, cache)[0].dtype == np.float32
    out, cache = nz.rmsnorm_forward(x, g)
    assert out.dtype == np.float32 and nz.rmsnorm_backward(out, cache)[0].dtype == np.float32


# --------------------------------------------------------------------------- layer norm and RMS norm

@pytest.mark.parametrize("shape", SHAPES + [(1, 5)])
@pytest.mark.parametrize("scale", SCALES)
def test_layernorm_backward_matches_finite_differences(rng, shape, scale):
    x, gamma, beta, dout = _problem(rng, shape, scale)
    x = x + rng.standard_normal((shape[0], 1)) * scale  # per-sample offsets, which layer norm removes
    _, cache = nz.layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = nz.layernorm_backward(dout, cache)
    assert_grad(lambda v: nz.layernorm_forward(v, gamma, beta)[0], x, dout, dx, "dx")
    assert_grad(lambda v: nz.layernorm_forward(x, v, beta)[0], gamma, dout, dgamma, "dgamma")
    assert_grad(lambda v: nz.layernorm_forward(x, gamma, v)[0], beta, dout, dbeta, "dbeta")


@pytest.mark.parametrize("shape", SHAPES + [(1, 5)])
@pytest.mark.parametrize("scale", SCALES)
def test_rmsnorm_backward_matches_finite_differences(rng, shape, scale):
    x, gamma, _, dout = _problem(rng, shape, scale)
    _, cache = nz.rmsnorm_forward(x, gamma)
    dx, dgamma = nz.rmsnorm_backward(dout, cache)
    assert_grad(lambda v: nz.rmsnorm_forward(v, gamma)[0], x, dout, dx, "dx")
    assert_grad(lambda v: nz.rmsnorm_forward(x, v)[0], gamma, dout, dgamma, "dgamma")


def test_layernorm_and_rmsnorm_normalize_each_sample(rng):
    x = rng.standard_normal((6, 50)) * 3 + 2
    out, _ = nz.layernorm_forward(x, np.ones(50), np.zeros(50))
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=1), 1.0, rtol=1e-5)  # var / (var + eps), var ~ 9
    out, _ = nz.rmsnorm_forward(x, np.ones(50))
    np.testing.assert_allclose(np.sqrt((out ** 2).mean(axis=1)), 1.0, rtol=1e-8)
    # layer norm does not depend on the rest of the batch
    out_all, _ = nz.layernorm_forward(x, np.ones(50), np.zeros(50))
    out_one, _ = nz.layernorm_forward(x[2:3], np.ones(50), np.zeros(50))
    np.testing.assert_allclose(out_one, out_all[2:3], rtol=1e-14)


# --------------------------------------------------------------------------- errors

X, G, B = np.ones((4, 3)), np.ones(3), np.zeros(3)
_, BN_CACHE, _ = nz.batchnorm_forward(np.arange(12.0).reshape(4, 3), G, B)
_, LN_CACHE = nz.layernorm_forward(X, G, B)

BAD_CALLS = [
    (lambda: nz.batchnorm_forward(np.ones((1, 5)), np.ones(5), np.zeros(5)), ValueError,
     "batchnorm_forward: x must have shape (N, D) with N >= 2 in training mode; got (1, 5)"),
    (lambda: nz.batchnorm_forward(np.ones(5), np.ones(5), np.zeros(5)), ValueError,
     "batchnorm_forward: x must have shape (N, D)"),
    (lambda: nz.batchnorm_forward(X, np.ones(4), B), ValueError,
     "batchnorm_forward: gamma must have shape (D,) with D = x.shape[1] = 3; got shape (4,)"),
    (lambda: nz.batchnorm_forward(X, G, np.zeros((3, 1))), ValueError, "batchnorm_forward: beta"),
    (lambda: nz.batchnorm_forward(X, G, B, running=(np.zeros(2), np.ones(2))), ValueError,
     "batchnorm_forward: running.mean must have shape (D,)"),
    (lambda: nz.batchnorm_forward(X, G, B, running=np.zeros(3)), TypeError, "batchnorm_forward: running"),
    (lambda: nz.batchnorm_forward(X, G, B, running=(np.zeros(3), -np.ones(3))), ValueError, "running.var"),
    (lambda: nz.batchnorm_forward(X, G, B, train="yes"), TypeError, "batchnorm_forward: train"),
    (lambda: nz.batchnorm_forward(X, G, B, momentum=1.5), ValueError, "batchnorm_forward: momentum"),
    (lambda: nz.batchnorm_forward(X, G, B, eps=0.0), ValueError, "batchnorm_forward: eps"),
    (lambda: nz.batchnorm_backward(np.ones((4, 2)), BN_CACHE), ValueError, "batchnorm_backward: dout"),
    (lambda: nz.batchnorm_backward(np.ones((4, 3)), LN_CACHE), TypeError, "batchnorm_backward: cache"),
    (lambda: nz.batchnorm_backward_compact(np.ones((3, 3)), BN_CACHE), ValueError, "batchnorm_backward_compact: dout"),
    (lambda: nz.layernorm_forward(X, np.ones(2), B), ValueError, "layernorm_forward: gamma"),
    (lambda: nz.layernorm_backward(np.ones((4, 3)), BN_CACHE), TypeError, "layernorm_backward: cache"),
    (lambda: nz.rmsnorm_forward(X, np.ones(2)), ValueError, "rmsnorm_forward: gamma"),
    (lambda: nz.rmsnorm_forward(X, G, eps=-1.0), ValueError, "rmsnorm_forward: eps"),
    (lambda: nz.rmsnorm_backward(np.ones((4, 3)), LN_CACHE), TypeError, "rmsnorm_backward: cache"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_matches_the_textbook_expressions_bit_for_bit(rng, dtype):
    # the forward pass and the compact backward reuse their temporaries; the numbers must not change
    x = (5 * rng.standard_normal((64, 7)) + 3).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, 7).astype(dtype), rng.standard_normal(7).astype(dtype)
    dout = rng.standard_normal((64, 7)).astype(dtype)
    out, cache, _ = nz.batchnorm_forward(x, gamma, beta)
    mean = x.mean(axis=0)
    std = np.sqrt(((x - mean) ** 2).mean(axis=0) + 1e-5)
    xhat = (x - mean) / std
    np.testing.assert_array_equal(out, gamma * xhat + beta)
    dx, dgamma, dbeta = nz.batchnorm_backward_compact(dout, cache)
    n = x.shape[0]
    np.testing.assert_array_equal(dx, (gamma / (n * std)) * (n * dout - dout.sum(axis=0) - xhat * (dout * xhat).sum(axis=0)))


def test_batchnorm_mixed_dtypes_promote_as_numpy_does(rng):
    x = rng.standard_normal((8, 3)).astype(np.float32)
    out, cache, _ = nz.batchnorm_forward(x, np.ones(3), np.zeros(3, np.float32))   # float64 gamma
    assert out.dtype == np.float64 and cache.xhat.dtype == np.float32
    assert nz.batchnorm_backward_compact(np.ones((8, 3), np.float32), cache)[0].dtype == np.float64
