"""stablegrad.layers: dense, activation and stack layers against finite differences."""

import numpy as np
import pytest

from stablegrad import layers
from stablegrad.gradcheck import check_gradient

# Finite-difference tolerance (float64, eps = 1e-6): a correct backward pass measures ~1e-9 or less
# (rounding ~1e-16 |f| / eps and truncation ~eps^2 |f'''| relative to the gradient's scale), an error
# of 0.1% measures ~5e-4; 1e-7 separates them with two orders of magnitude on each side.
TOL = 1e-7
SHAPES = [(1, 3, 2), (4, 5, 3), (16, 10, 8)]  # (N, D, M)
SCALES = [0.1, 1.0, 10.0]
ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]


def assert_grad(f, x, analytic, what, dout=None, eps=1e-6):
    result = check_gradient(f, x, analytic, eps=eps, tol=TOL, dout=dout)
    assert result.passed, f"{what}: max relative error {result.max_rel_error:.2e} at {result.worst_index}"


def _dense_problem(rng, shape, scale):
    n, d, m = shape
    x = rng.standard_normal((n, d)) * scale
    W = rng.standard_normal((d, m)) / np.sqrt(d)
    b = rng.standard_normal(m)
    return x, W, b


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", SCALES)
def test_dense_backward_matches_finite_differences(rng, shape, scale):
    x, W, b = _dense_problem(rng, shape, scale)
    out, cache = layers.dense_forward(x, W, b)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = layers.dense_backward(dout, cache)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    assert_grad(lambda v: np.sum(layers.dense_forward(v, W, b)[0] * dout), x, dx, "dx")
    assert_grad(lambda v: np.sum(layers.dense_forward(x, v, b)[0] * dout), W, dW, "dW")
    assert_grad(lambda v: np.sum(layers.dense_forward(x, W, v)[0] * dout), b, db, "db")


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("scale", SCALES)
def test_activation_backward_matches_finite_differences(rng, name, scale):
    z = rng.standard_normal((6, 4)) * scale
    z = np.where(z >= 0, z + 1e-2, z - 1e-2)  # relu kinks: stay 1e-2 >> eps away from 0
    a, cache = layers.activation_forward(z, name)
    da = rng.standard_normal(a.shape)
    dz = layers.activation_backward(da, cache)
    assert_grad(lambda v: np.sum(layers.activation_forward(v, name)[0] * da), z, dz, name)


def _stack_problem(rng, widths, scale, activation, n=5, margin=1e-3):
    """A stack whose pre-activations all stay >= margin away from 0 (relu kinks), redrawn until they do."""
    for _ in range(100):
        x = rng.standard_normal((n, widths[0])) * scale
        params = [(rng.standard_normal((a, b)) / np.sqrt(a), 0.1 * rng.standard_normal(b))
                  for a, b in zip(widths[:-1], widths[1:])]
        _, caches = layers.stack_forward(x, params, activation)
        if activation not in ("relu", "leaky_relu") or min(np.abs(c.act.z).min() for c in caches) > margin:
            return x, params
    raise RuntimeError("could not draw a stack away from relu kinks")


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("widths", [(3, 4), (5, 4, 3, 2), (6, 8, 8, 8, 4)])
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_stack_backward_matches_finite_differences(rng, activation, widths, scale):
    x, params = _stack_problem(rng, widths, scale, activation)
    out, caches = layers.stack_forward(x, params, activation)
    dout = rng.standard_normal(out.shape)
    dx, grads = layers.stack_backward(dout, caches)
    assert len(grads) == len(params)

    def loss(x_, params_):
        return layers.stack_forward(x_, params_, activation)[0]

    # Deep sigmoid stacks have gradients ~1e-3 of their outputs (sigmoid' <= 1/4 per layer), and rounding
    # noise is relative to the outputs: ~1e-16 / (eps * 1e-3). So here we (a) use the array-valued check,
    # which subtracts outputs before summing them, and (b) take eps = 1e-5, which lowers that noise to
    # ~1e-8 while the truncation error (eps^2 / 6 times the third derivative) stays ~1e-10 relative.
    # Measured worst case over this parametrization: 1.4e-8.
    eps = 1e-5
    assert_grad(lambda v: loss(v, params), x, dx, "dx", dout, eps)
    for l, ((W, b), (dW, db)) in enumerate(zip(params, grads)):
        def with_W(v, l=l, b=b):
            return loss(x, params[:l] + [(v, b)] + params[l + 1:])

        def with_b(v, l=l, W=W):
            return loss(x, params[:l] + [(W, v)] + params[l + 1:])

        assert_grad(with_W, W, dW, f"dW of layer {l}", dout, eps)
        assert_grad(with_b, b, db, f"db of layer {l}", dout, eps)


def test_stack_equals_composed_layers(rng):
    x, params = _stack_problem(rng, (4, 5, 3), 1.0, "tanh")
    out, caches = layers.stack_forward(x, params, "tanh")
    a = x
    for (W, b), cache in zip(params, caches):
        z, _ = layers.dense_forward(a, W, b)
        a, _ = layers.activation_forward(z, "tanh")
        assert isinstance(cache, layers.LayerCache)
        np.testing.assert_array_equal(cache.act.a, a)
    np.testing.assert_array_equal(out, a)


def test_nothing_is_modified_in_place(rng):
    x, params = _stack_problem(rng, (4, 5, 3), 1.0, "relu")
    copies = [x.copy()] + [p.copy() for layer in params for p in layer]
    out, caches = layers.stack_forward(x, params, "relu")
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    layers.stack_backward(dout, caches)
    for before, after in zip(copies, [x] + [p for layer in params for p in layer]):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(dout, dout_copy)


def test_float32_is_preserved(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    W = rng.standard_normal((4, 2)).astype(np.float32)
    b = np.zeros(2, np.float32)
    out, cache = layers.dense_forward(x, W, b)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layers.dense_backward(np.ones_like(out), cache))
    out, caches = layers.stack_forward(x, [(W, b)], "sigmoid")
    assert out.dtype == np.float32 and layers.stack_backward(np.ones_like(out), caches)[0].dtype == np.float32


# --------------------------------------------------------------------------- errors

X, W, B = np.ones((2, 5)), np.ones((5, 3)), np.ones(3)
_, DENSE_CACHE = layers.dense_forward(X, W, B)
_, STACK_CACHES = layers.stack_forward(X, [(W, B)])

BAD_CALLS = [
    (lambda: layers.dense_forward(np.ones(5), W, B), ValueError, "dense_forward: x must have shape (N, D)"),
    (lambda: layers.dense_forward(X, np.ones((4, 3)), B), ValueError,
     "dense_forward: W must have shape (D, M) with D = x.shape[1] = 5; got shape (4, 3)"),
    (lambda: layers.dense_forward(X, W, np.ones(4)), ValueError, "dense_forward: b must have shape (M,)"),
    (lambda: layers.dense_forward(X.astype(str), W, B), TypeError, "dense_forward: x"),
    (lambda: layers.dense_backward(np.ones((2, 4)), DENSE_CACHE), ValueError, "dense_backward: dout"),
    (lambda: layers.dense_backward(np.ones((2, 3)), "cache"), TypeError, "dense_backward: cache"),
    (lambda: layers.activation_forward(X, "swish"), ValueError, "'tanh'"),
    (lambda: layers.activation_backward(np.ones((3, 5)), layers.activation_forward(X, "tanh")[1]),
     ValueError, "activation_backward: da"),
    (lambda: layers.stack_forward(X, []), ValueError, "stack_forward: params"),
    (lambda: layers.stack_forward(X, W), TypeError, "stack_forward: params"),
    (lambda: layers.stack_forward(X, [W]), TypeError, "stack_forward: params[0]"),
    (lambda: layers.stack_forward(X, [(W, B), (np.ones((4, 2)), np.ones(2))]), ValueError,
     "stack_forward: params[1] W must have shape (D, M) with D = the output width of params[0] = 3"),
    (lambda: layers.stack_forward(X, [(W, B)], activation="swish"), ValueError, "stack_forward: activation"),
    (lambda: layers.stack_backward(np.ones((2, 2)), STACK_CACHES), ValueError, "stack_backward: dout"),
    (lambda: layers.stack_backward(np.ones((2, 3)), []), TypeError, "stack_backward: caches"),
    (lambda: layers.stack_backward(np.ones((2, 3)), [DENSE_CACHE]), TypeError, "stack_backward: caches[0]"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)


def test_dense_forward_keeps_numpy_dtype_promotion(rng):
    # the bias is added into the product in place only when that keeps the result's dtype
    x = rng.standard_normal((3, 4)).astype(np.float32)
    W = rng.standard_normal((4, 2)).astype(np.float32)
    out, _ = layers.dense_forward(x, W, np.zeros(2))          # float64 bias: float64 result, as x @ W + b
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x @ W + np.zeros(2))
