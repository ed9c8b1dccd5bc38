"""stablegrad.residual: residual blocks and stacks against finite differences, and what depth does to them."""

import json
import math

import numpy as np
import pytest

from stablegrad import residual as R
from stablegrad.checking.encoding import decode, encode
from stablegrad.gradcheck import check_gradient
from stablegrad.optim import SGD, Adam

# float64 centered differences (eps = 1e-6): a correct backward pass measures ~1e-9 (measured worst case over
# this file's blocks: 6e-9), an error of 0.1% ~5e-4; 1e-7 separates them (as in test_layers.py).
TOL = 1e-7
CONFIGS = [(norm, alpha, act) for norm in R.NORMS for alpha in (1.0, 0.37) for act in ("tanh", "relu")]


def assert_grad(f, x, analytic, what, dout):
    result = check_gradient(f, x, analytic, tol=TOL, dout=dout)
    assert result.passed, f"{what}: max relative error {result.max_rel_error:.2e} at {result.worst_index}"


def _block(rng, d, h, norm, alpha, activation, dtype=np.float64):
    """A block with every parameter away from its initial value (non-zero biases, gamma of both signs)."""
    block = R.init_residual_block(d, h, rng, norm=norm, alpha=alpha, activation=activation)
    extra = {} if norm == "none" else {"gamma": rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d),
                                       "beta": rng.standard_normal(d)}
    block = block._replace(b1=0.3 * rng.standard_normal(h), b2=0.3 * rng.standard_normal(d), **extra)
    return block.with_params({k: v.astype(dtype) for k, v in block.params.items()})


def _away_from_kinks(rng, block, n=4, margin=1e-3):
    """An input whose relu pre-activations all stay >= margin (>> eps = 1e-6) away from 0."""
    for _ in range(100):
        x = 1.5 * rng.standard_normal((n, block.W1.shape[0]))
        if np.abs(R.residual_forward(x, block)[1].act.z).min() > margin:
            return x
    raise RuntimeError("could not draw an input away from the relu kinks")


# =========================================================================== one block

@pytest.mark.parametrize("norm, alpha, activation", CONFIGS)
def test_residual_backward_matches_finite_differences(rng, norm, alpha, activation):
    block = _block(rng, 5, 7, norm, alpha, activation)
    x = _away_from_kinks(rng, block)
    y, cache = R.residual_forward(x, block)
    dout = rng.standard_normal(y.shape)
    dx, grads = R.residual_backward(dout, cache)
    assert list(grads) == list(block.params)
    assert_grad(lambda v: R.residual_forward(v, block)[0], x, dx, "dx", dout)
    for key, value in block.params.items():
        assert grads[key].shape == value.shape
        assert_grad(lambda v, key=key: R.residual_forward(x, block._replace(**{key: v}))[0], value, grads[key],
                    f"d{key}", dout)


def test_the_gradient_check_catches_a_wrong_branch_scale(rng):
    # test the tester: a backward that scales the branch by alpha * 1.001 must fail the check above
    block = _block(rng, 5, 7, "pre", 0.37, "tanh")
    x = rng.standard_normal((4, 5))
    y, cache = R.residual_forward(x, block)
    dout = rng.standard_normal(y.shape)
    wrong = cache._replace(block=cache.block._replace(alpha=0.37 * 1.001))
    dx, _ = R.residual_backward(dout, wrong)
    result = check_gradient(lambda v: R.residual_forward(v, block)[0], x, dx, tol=TOL, dout=dout)
    assert not result.passed and result.max_rel_error > 1e-5


@pytest.mark.parametrize("norm", ["none", "pre"])   # post-norm: dy/dx = J_LN (I + alpha dF/dx), not affine in alpha
def test_jacobian_is_identity_plus_alpha_times_the_branch_jacobian(rng, norm):
    # dy/dx = I + alpha dF/dx: the gradient minus the identity path's dout is linear in alpha
    x = rng.standard_normal((3, 4))
    base = _block(rng, 4, 6, norm, 1.0, "tanh")
    dout = rng.standard_normal((3, 4))
    dxs = {a: R.residual_backward(dout, R.residual_forward(x, base._replace(alpha=a))[1])[0] for a in (0.0, 0.5, 1.0)}
    np.testing.assert_array_equal(dxs[0.0], dout)                                  # alpha = 0: the identity
    np.testing.assert_allclose(dxs[1.0] - dout, 2.0 * (dxs[0.5] - dout), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", R.NORMS)
def test_zero_init_last_makes_the_block_the_identity(rng, norm):
    block = R.init_residual_block(6, 9, rng, norm=norm, zero_init_last=True)
    assert not block.W2.any()
    x = 3.0 * rng.standard_normal((5, 6)) + 1.0
    y, cache = R.residual_forward(x, block)
    if norm == "post":   # LN(x + 0): the block normalizes, nothing else
        np.testing.assert_allclose(y, (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5),
                                   rtol=1e-12)
        return
    np.testing.assert_array_equal(y, x)                      # exactly: F = h @ 0 + 0
    dout = rng.standard_normal(y.shape)
    dx, grads = R.residual_backward(dout, cache)
    np.testing.assert_array_equal(dx, dout)                  # and the gradient passes through unchanged
    assert not grads["W1"].any() and grads["W2"].any()       # W1 waits for W2, which learns at once


@pytest.mark.parametrize("norm", R.NORMS)
def test_float32_in_float32_out(rng, norm):
    blocks = R.init_residual_stack(6, 3, rng, norm=norm, dtype=np.float32, alpha=0.5)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y, cache = R.residual_forward(x, blocks[0])
    dx, grads = R.residual_backward(np.ones_like(y), cache)
    assert y.dtype == dx.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    out, caches = R.residual_stack_forward(x, blocks)
    dx, grads = R.residual_stack_backward(np.ones_like(out), caches)
    assert out.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for block in grads for g in block.values())
    # alpha given as a float64 scalar is a Python float after the check: it does not promote the output
    y, _ = R.residual_forward(x, blocks[0]._replace(alpha=np.float64(0.5)))
    assert y.dtype == np.float32


def test_nothing_is_modified_in_place(rng):
    blocks = [_block(rng, 5, 7, norm, 0.5, "relu") for norm in R.NORMS]
    x = rng.standard_normal((4, 5))
    before = [x.copy()] + [v.copy() for b in blocks for v in b.params.values()]
    out, caches = R.residual_stack_forward(x, blocks)
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    R.residual_stack_backward(dout, caches)
    for a, b in zip(before, [x] + [v for b in blocks for v in b.params.values()]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dout, dout_before)


# =========================================================================== stacks

def test_stack_backward_matches_finite_differences(rng):
    blocks = [_block(rng, 4, 5, norm, alpha, "tanh") for norm, alpha in (("pre", 0.5), ("none", 1.0), ("post", 0.8))]
    x = rng.standard_normal((3, 4))
    out, caches = R.residual_stack_forward(x, blocks)
    dout = rng.standard_normal(out.shape)
    dx, grads, deltas = R.residual_stack_backward(dout, caches, return_deltas=True)
    assert len(grads) == 3 and len(deltas) == 4
    np.testing.assert_array_equal(deltas[0], dx)
    np.testing.assert_array_equal(deltas[-1], dout)
    assert_grad(lambda v: R.residual_stack_forward(v, blocks)[0], x, dx, "dx", dout)
    for l, block in enumerate(blocks):
        for key, value in block.params.items():
            def f(v, l=l, key=key):
                return R.residual_stack_forward(x, blocks[:l] + [block._replace(**{key: v})] + blocks[l + 1:])[0]
            assert_grad(f, value, grads[l][key], f"block {l + 1} d{key}", dout)
    # deltas[l] is dL/dx_l: block l + 1's own backward pass, fed deltas[l + 1], gives it back
    for l, cache in enumerate(caches):
        np.testing.assert_array_equal(R.residual_backward(deltas[l + 1], cache)[0], deltas[l])


def test_stack_equals_composed_blocks_and_caches_hold_the_stream(rng):
    blocks = R.init_residual_stack(5, 4, rng, norm="pre", alpha=0.5)
    x = rng.standard_normal((3, 5))
    out, caches = R.residual_stack_forward(x, blocks)
    h = x
    for block, cache in zip(blocks, caches):
        np.testing.assert_array_equal(cache.x, h)
        h, _ = R.residual_forward(h, block)
    np.testing.assert_array_equal(out, h)
    v = R.stream_variances(caches, out)
    assert v.shape == (5,) and v[0] == pytest.approx(np.mean(x ** 2)) and v[-1] == pytest.approx(np.mean(out ** 2))


@pytest.mark.parametrize("final_norm", [False, True])
def test_residual_net_gradients_match_finite_differences(rng, final_norm):
    net = R.init_residual_net(3, 4, 2, 3, rng, norm="pre", alpha=0.7, activation="tanh", final_norm=final_norm)
    assert ("gamma_out" in net.params) is final_norm
    net = net.with_params({k: v + 0.1 * rng.standard_normal(v.shape) for k, v in net.params.items()})
    x, labels = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    value, grads, caches = R.residual_loss_and_grads(net, x, labels, "cross_entropy")
    assert list(grads) == list(net.params) and len(caches) == 2 and math.isfinite(value)
    for key, p in net.params.items():
        def f(v, key=key):
            return R.residual_loss_and_grads(net.with_params({**net.params, key: v}), x, labels, "cross_entropy")[0]
        result = check_gradient(f, p, grads[key], tol=TOL)
        assert result.passed, f"{key}: {result.max_rel_error:.2e}"
    norms = R.block_gradient_norms(grads)
    expected = [math.sqrt(sum(np.sum(grads[f"block{l}.{k}"] ** 2) for k in ("W1", "b1", "W2", "b2", "gamma", "beta")))
                for l in (1, 2)]
    np.testing.assert_allclose(norms, expected, rtol=1e-12)
    np.testing.assert_allclose(R.block_gradient_norms(grads, key="W2"),
                               [np.linalg.norm(grads[f"block{l}.W2"]) for l in (1, 2)], rtol=1e-12)


# =========================================================================== variance through depth

def test_residual_variance_solves_its_recursions():
    np.testing.assert_allclose(R.residual_variance(3, 1.0), [2.0, 4.0, 8.0])
    np.testing.assert_allclose(R.residual_variance(3, 2.0, alpha=0.5, var0=2.0), [3.0, 4.5, 6.75])
    np.testing.assert_allclose(R.residual_variance(3, 1.0, alpha=0.5, var0=2.0, norm="pre"), [2.25, 2.5, 2.75])
    np.testing.assert_array_equal(R.residual_variance(3, 5.0, norm="post"), np.ones(3))
    # alpha = 1/sqrt(L): (1 + 1/L)^L, bounded by e at every depth
    for depth in (10, 50, 1000):
        assert R.residual_variance(depth, 1.0, alpha=1 / math.sqrt(depth))[-1] < math.e


@pytest.mark.parametrize("alpha, norm", [(1 / math.sqrt(50), "none"), (0.5, "none"), (1.0, "pre")])
def test_variance_recursion_matches_monte_carlo_at_depth_50(alpha, norm):
    # E[|x_l|^2 | x_{l-1}] = |x_{l-1}|^2 (1 + alpha^2 g) exactly for relu branches (g = 1 with this init):
    # W2 has mean 0 and is independent of x, and relu(z) for z ~ N(0, |u|^2 Var(W1)) has E = |u|^2 Var(W1) / 2.
    # So the mean square of x_50, averaged over M independent networks (fresh weights and inputs), is an
    # unbiased estimate of V_50 with a standard error estimated from the M values themselves. By the central
    # limit theorem |estimate - V_50| < 4 SE fails with probability 6e-5; the M values are log-normal-like
    # with a log sd of 0.14 (alpha = 1/sqrt(50)), 0.9 (alpha = 0.5) or 0.05 (pre-LN), which M = 60 averages
    # well (a log sd near 2, as for alpha = 1 without a norm, would not: the mean is then carried by rare
    # networks, so that case is left out).
    rng = np.random.default_rng(2024)
    values = []
    for _ in range(60):
        blocks = R.init_residual_stack(32, 50, rng, alpha=alpha, norm=norm)
        out, _ = R.residual_stack_forward(rng.standard_normal((8, 32)), blocks)
        values.append(np.mean(out ** 2))
    values = np.array(values)
    predicted = R.residual_variance(50, 1.0, alpha=alpha, norm=norm)[-1]
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - predicted) < 4 * se, (values.mean(), predicted, se)
    if norm == "none" and alpha == 0.5:
        assert predicted > 1e4        # exponential: (1 + 1/4)^50 = 7e4 ...
    if norm == "pre":
        assert predicted == pytest.approx(51.0)   # ... against linear growth, 1 + 50 c, with pre-LN


def test_post_norm_and_zero_init_keep_the_stream_at_unit_variance(rng):
    x = rng.standard_normal((16, 32))
    _, caches = R.residual_stack_forward(x, R.init_residual_stack(32, 50, rng, norm="post"))
    np.testing.assert_allclose(R.stream_variances(caches)[1:], 1.0, rtol=1e-4)   # LN output: var / (var + eps)
    out, caches = R.residual_stack_forward(x, R.init_residual_stack(32, 50, rng, zero_init_last=True))
    np.testing.assert_array_equal(out, x)


# =========================================================================== gradients through depth

def _log_profiles(norm, seeds, depth=50, width=32):
    """log(||grad of block l|| / ||grad of block L||) per seed, for a Gaussian upstream gradient."""
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        blocks = R.init_residual_stack(width, depth, rng, norm=norm)
        norms = R.residual_gradient_norms(blocks, rng.standard_normal((32, width)), rng.standard_normal((32, width)))
        rows.append(np.log(norms / norms[-1]))
    return np.array(rows)


def test_pre_ln_gradients_follow_the_stream_variance_and_post_ln_gradients_wander():
    # Pre-LN: the block after x_{l-1} multiplies |dL/dx|^2 by about 1 + c / V_{l-1} = V_l / V_{l-1} (LN's
    # backward divides by the stream's std), so |dL/dx_l|^2 ~ V_L / V_l: block l's gradient is
    # sqrt(V_L / V_l) times block L's, with V_l = 1 + l (alpha = 1, c = 1): a factor 5 from block 1 to 50,
    # the same in every seed. Measured over 40 seeds: each block's log ratio scatters around the prediction
    # with sd 0.16-0.21 (its own weights' noise, ~1/sqrt(D)) and a bias of at most +0.11 (block 1: Jensen's
    # inequality in 1 / std); the worst of 50 blocks in a seed was 0.21-0.70 away. The band stated: every
    # block within a factor e (log 1.0, five sds) of the prediction, the median over seeds within 0.3.
    # Post-LN: each block multiplies |dL/dx|^2 by (1 + c_b) / (1 + c_f), a backward and a forward gain that
    # are equal on average but fluctuate independently (by ~1/sqrt(D)), so log |dL/dx| takes a random walk
    # whose spread grows like sqrt(L - l): measured sd of log(first / last) 0.99 over 40 seeds (0.21 pre-LN).
    seeds = range(12)
    pre = _log_profiles("pre", seeds)
    variances = R.residual_variance(50, 1.0, norm="pre")
    predicted = 0.5 * np.log(variances[-1] / variances)
    assert np.all(np.abs(pre - predicted) < 1.0), np.abs(pre - predicted).max()
    assert np.all(np.abs(np.median(pre, axis=0) - predicted) < 0.3)
    assert np.exp(pre[:, 0]).min() > 3.0            # block 1 gets 3x-8x block 50's gradient in every seed
    post = _log_profiles("post", seeds)
    # sd of 12 values whose true sd is 1.0 falls below 0.5 with probability 0.6% (chi-squared, 11 dof);
    # pre-LN's (true sd 0.19) exceeds 0.4 with probability 1e-6
    assert post[:, 0].std(ddof=1) > 0.5 and pre[:, 0].std(ddof=1) < 0.4
    assert post[:, 0].std(ddof=1) > 2.5 * pre[:, 0].std(ddof=1)
    # the walk: the spread is larger 49 blocks from the top than 10 blocks from it
    assert post[:, 0].std(ddof=1) > post[:, 39].std(ddof=1)


def test_scaled_branches_and_zero_init_give_flat_gradients(rng):
    x, dout = rng.standard_normal((32, 32)), rng.standard_normal((32, 32))
    # alpha = 1/sqrt(L): V_L / V_1 = (1 + 1/50)^49 = 2.6 at most: gradient norms within a factor 1.7 of each other
    norms = R.residual_gradient_norms(R.init_residual_stack(32, 50, rng, alpha=1 / math.sqrt(50)), x, dout)
    assert norms.max() / norms.min() < 3.0
    # zero-initialized last layers: every block sees dout itself, so every W2 gradient is h^T dout, of one size
    norms = R.residual_gradient_norms(R.init_residual_stack(32, 50, rng, zero_init_last=True), x, dout, key="W2")
    assert norms.max() / norms.min() < 1.5


# =========================================================================== training

def test_train_residual_learns_and_records(rng):
    from stablegrad.datasets import synthetic_classification
    X, y = synthetic_classification(96, 4, 3, rng, separation=2.0)
    net = R.init_residual_net(4, 8, 6, 3, rng, norm="pre", alpha=0.5)
    before = {k: v.copy() for k, v in net.params.items()}
    history = R.train_residual(net, X, y, loss="softmax_cross_entropy", optimizer=Adam(lr=0.01), epochs=8,
                               rng=rng, batch_size=32, warmup_steps=6)
    assert history.diverged_at is None and history.loss.shape == (8,)
    assert history.step_loss.shape == (24,) and history.step_block_grad_norm.shape == (24, 6)
    np.testing.assert_allclose(history.step_lr[:7], 0.01 * np.minimum(np.arange(1, 8) / 6, 1.0))
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert R.residual_loss_and_grads(history.net, X, y, "softmax_cross_entropy")[0] < history.loss[0]
    for key, value in net.params.items():   # the net passed in is untouched: the trained one is new
        np.testing.assert_array_equal(value, before[key])


def test_train_residual_stops_at_a_non_finite_loss(rng):
    X = rng.standard_normal((40, 3))
    net = R.init_residual_net(3, 8, 20, 1, rng, alpha=1.0)          # (1 + 1)^20: outputs of size 1e3
    history = R.train_residual(net, X, X[:, 0], loss="mse", optimizer=SGD(lr=10.0), epochs=20, rng=rng)
    assert history.diverged_at is not None and not np.isfinite(history.step_loss[-1])
    assert len(history.step_loss) == history.diverged_at + 1
    assert np.all(np.isfinite(history.step_loss[:-1]))
    assert all(np.all(np.isfinite(v)) for v in history.net.params.values())  # the last net with a finite loss


# =========================================================================== encoding

def test_blocks_caches_and_nets_cross_the_grading_boundary_bit_for_bit(rng):
    block = _block(rng, 4, 5, "pre", 0.5, "relu", dtype=np.float32)
    y, cache = R.residual_forward(rng.standard_normal((3, 4)).astype(np.float32), block)
    net = R.init_residual_net(2, 4, 2, 1, rng, norm="pre", final_norm=True)
    for value in (block, cache, (np.ones_like(y), cache), net, R.init_residual_block(4, 3, rng)):
        back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
        assert type(back) is type(value) and encode(back) == encode(value)
    back = decode(json.loads(json.dumps(encode(cache))))
    np.testing.assert_array_equal(R.residual_backward(np.ones_like(y), back)[0],
                                  R.residual_backward(np.ones_like(y), cache)[0])


# =========================================================================== errors

X5 = np.ones((2, 5))
BLOCK = R.init_residual_block(5, 8, np.random.default_rng(0))
PRE = R.init_residual_block(5, 8, np.random.default_rng(0), norm="pre")
_, CACHE = R.residual_forward(X5, BLOCK)

BAD_CALLS = [
    (lambda: R.residual_forward(np.ones(5), BLOCK), ValueError, "residual_forward: x must have shape (N, D)"),
    (lambda: R.residual_forward(np.ones((2, 4)), BLOCK), ValueError,
     "residual_forward: block.W1 must have shape (D, H) with D = x.shape[1] = 4; got shape (5, 8)"),
    (lambda: R.residual_forward(X5, BLOCK._replace(W2=np.ones((8, 4)))), ValueError,
     "residual_forward: block.W2 must have shape (H, D) = (8, 5)"),
    (lambda: R.residual_forward(X5, BLOCK._replace(b1=np.ones(5))), ValueError,
     "residual_forward: block.b1 must have shape (H,) = (8,)"),
    (lambda: R.residual_forward(X5, PRE._replace(gamma=None)), ValueError,
     "residual_forward: block.gamma must be an array of shape (D,) = (5,) with norm='pre'; got None"),
    (lambda: R.residual_forward(X5, BLOCK._replace(gamma=np.ones(5))), ValueError,
     "residual_forward: block.gamma and block.beta must be None with norm='none'"),
    (lambda: R.residual_forward(X5, BLOCK._replace(norm="middle")), ValueError,
     "residual_forward: block.norm must be one of 'none', 'post', 'pre'; got 'middle'"),
    (lambda: R.residual_forward(X5, BLOCK._replace(activation="swish")), ValueError,
     "residual_forward: block.activation must be one of"),
    (lambda: R.residual_forward(X5, BLOCK._replace(alpha=float("nan"))), ValueError,
     "residual_forward: block.alpha must be a finite real number"),
    (lambda: R.residual_forward(X5, (BLOCK.W1, BLOCK.b1)), TypeError,
     "residual_forward: block must be a ResidualBlock"),
    (lambda: R.residual_forward(X5.astype(str), BLOCK), TypeError, "residual_forward: x"),
    (lambda: R.residual_backward(np.ones((2, 4)), CACHE), ValueError,
     "residual_backward: dout must have shape (N, D) = (2, 5) like the forward output; got shape (2, 4)"),
    (lambda: R.residual_backward(np.ones((2, 5)), CACHE.dense1), TypeError,
     "residual_backward: cache must be the ResidualCache"),
    (lambda: R.residual_stack_forward(X5, []), ValueError, "residual_stack_forward: blocks must contain"),
    (lambda: R.residual_stack_forward(X5, BLOCK), TypeError, "residual_stack_forward: blocks must be a list"),
    (lambda: R.residual_stack_forward(X5, [BLOCK, BLOCK._replace(W1=np.ones((4, 8)))]), ValueError,
     "residual_stack_forward: blocks[1].W1 must have shape (D, H)"),
    (lambda: R.residual_stack_backward(np.ones((2, 5)), [CACHE, "x"]), TypeError,
     "residual_stack_backward: caches[1] must be a ResidualCache"),
    (lambda: R.init_residual_stack(5, 0, np.random.default_rng(0)), ValueError,
     "init_residual_stack: depth must be >= 1"),
    (lambda: R.init_residual_stack(5, 3, np.random.default_rng(0), norm="batch"), ValueError,
     "init_residual_stack: norm must be one of"),
    (lambda: R.init_residual_stack(5, 3, 0), TypeError, "init_residual_stack: rng must be a numpy.random.Generator"),
    (lambda: R.init_residual_stack(5, 3, np.random.default_rng(0), alpha=-1.0), ValueError,
     "init_residual_stack: alpha must be finite and >= 0"),
    (lambda: R.residual_variance(50, -1.0), ValueError, "residual_variance: branch_gain must be finite and >= 0"),
    (lambda: R.block_gradient_norms([{"W1": np.ones(2)}], key="W3"), ValueError, "block_gradient_norms: key"),
    (lambda: R.train_residual(R.init_residual_net(2, 4, 1, 1, np.random.default_rng(0)), np.ones((3, 2)),
                              np.ones(3), loss="bce", optimizer="adam", epochs=1, rng=np.random.default_rng(0)),
     ValueError, "train_residual: a ResidualNet outputs logits; use loss='bce_with_logits'"),
    (lambda: R.residual_loss_and_grads(R.init_residual_net(2, 4, 1, 1, np.random.default_rng(0))._replace(
        gamma_out=np.ones(4)), np.ones((3, 2)), np.ones(3), "mse"), ValueError,
     "residual_loss_and_grads: net.gamma_out and net.beta_out must both be arrays (a final norm) or both None"),
    (lambda: R.residual_loss_and_grads(R.init_residual_net(2, 4, 1, 1, np.random.default_rng(0)), np.ones((3, 3)),
                                       np.ones(3), "mse"), ValueError,
     "residual_loss_and_grads: x must have shape (N, D_in) with D_in = 2"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)
