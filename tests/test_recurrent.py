"""stablegrad.recurrent: the vanilla RNN's forward pass and BPTT against finite differences."""

import numpy as np
import pytest

from stablegrad import recurrent
from stablegrad.gradcheck import check_gradient

# Finite-difference tolerance (float64, eps = 1e-6, array-valued check): a correct backward pass measures
# ~1e-9 or less (rounding ~1e-16 |h| / eps, truncation ~eps^2 |h'''|, both relative to the gradient's scale);
# a backward off by 0.1% measures ~1e-3 (see test_gradcheck_catches_a_backward_off_by_a_tenth_of_a_percent).
TOL = 1e-7
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 4), (3, 10, 2, 5)]  # (N, T, D, H)
ACTS = ["tanh", "identity", "sigmoid"]


def _problem(rng, shape, scale=1.0):
    n, t, d, h = shape
    x = rng.standard_normal((n, t, d))
    h0 = 0.5 * rng.standard_normal((n, h))
    W = scale * rng.standard_normal((h, h)) / np.sqrt(h)
    U = rng.standard_normal((d, h)) / np.sqrt(d)
    b = 0.1 * rng.standard_normal(h)
    return x, h0, W, U, b


def _assert_grad(f, x, analytic, dout, what):
    result = check_gradient(f, x, analytic, eps=1e-6, tol=TOL, dout=dout)
    assert result.passed, f"{what}: max relative error {result.max_rel_error:.2e} at {result.worst_index}"


# A loss that reads only h_T (as in chapter 5) sends a gradient to h_0 that shrinks like (scale f')^T. Once it
# is below ~1e-4 of the outputs, finite-difference rounding (~1e-10 of the outputs) alone is ~1e-6 of it: that
# is the vanishing gradient under study, not a bug, so that case runs where the gradient stays resolvable
# (measured: sigmoid or scale 0.5 with T >= 7 gave 1e-6 to 1e-4; the cases below stay under 1e-8).
CASES = ([(a, s, sc, False) for a in ACTS for s in SHAPES for sc in (0.5, 1.5)]
         + [(a, s, 1.5, True) for a in ("tanh", "identity") for s in SHAPES])


@pytest.mark.parametrize("activation,shape,scale,last_only", CASES,
                         ids=[f"{a}-{s}-{sc}-{'last' if lo else 'all'}" for a, s, sc, lo in CASES])
def test_rnn_backward_matches_finite_differences(rng, activation, shape, scale, last_only):
    x, h0, W, U, b = _problem(rng, shape, scale)
    h, cache = recurrent.rnn_forward(x, h0, W, U, b, activation)
    dh = rng.standard_normal(h.shape)
    if last_only:
        dh[:, :-1] = 0.0
    grads = recurrent.rnn_backward(dh, cache)
    args = {"x": x, "h0": h0, "W": W, "U": U, "b": b}
    for name, analytic in (("x", grads.dx), ("h0", grads.dh0), ("W", grads.dW), ("U", grads.dU),
                           ("b", grads.db)):
        assert analytic.shape == args[name].shape

        def f(v, name=name):
            return recurrent.rnn_forward(**{**args, name: v}, activation=activation)[0]

        _assert_grad(f, args[name], analytic, dh, f"d{name} ({activation}, {shape})")


@pytest.mark.parametrize("shape", SHAPES)
def test_state_gradients_are_the_total_gradients(rng, shape):
    """dstates[:, t] is dL/dh_t through every later step: rerun the tail of the sequence from a perturbed h_t."""
    x, h0, W, U, b = _problem(rng, shape)
    h, cache = recurrent.rnn_forward(x, h0, W, U, b, "tanh")
    dh = rng.standard_normal(h.shape)
    grads = recurrent.rnn_backward(dh, cache)
    steps = x.shape[1]
    np.testing.assert_array_equal(grads.dstates[:, 0], grads.dh0)
    for t in range(steps + 1):
        def tail_loss(ht, t=t):
            # L = sum_s dh_s . h_s; the states up to t are fixed, h_t is the variable, then the rest follows
            out = np.sum(dh[:, t - 1] * ht) if t >= 1 else 0.0
            if t < steps:
                rest, _ = recurrent.rnn_forward(x[:, t:], ht, W, U, b, "tanh")
                out += np.sum(dh[:, t:] * rest)
            return out

        result = check_gradient(tail_loss, cache.states[:, t].copy(), grads.dstates[:, t], eps=1e-6, tol=TOL)
        assert result.passed, f"dstates[:, {t}]: max relative error {result.max_rel_error:.2e}"


def test_linear_state_gradient_is_a_matrix_power(rng):
    # with the identity and a loss on h_T only: g_t = g_T (W^T)^(T - t), exactly the chapter's formula
    x, h0, W, U, b = _problem(rng, (2, 30, 3, 6), scale=1.1)
    h, cache = recurrent.rnn_forward(x, h0, W, U, b, "identity")
    dh = np.zeros_like(h)
    dh[:, -1] = rng.standard_normal((2, 6))
    grads = recurrent.rnn_backward(dh, cache)
    for m in range(31):
        expected = dh[:, -1] @ np.linalg.matrix_power(W.T, m)
        np.testing.assert_allclose(grads.dstates[:, 30 - m], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ACTS)
def test_grad_terms_sum_to_the_gradients(rng, activation):
    x, h0, W, U, b = _problem(rng, (3, 9, 2, 4))
    h, cache = recurrent.rnn_forward(x, h0, W, U, b, activation)
    grads = recurrent.rnn_backward(rng.standard_normal(h.shape), cache)
    terms = recurrent.rnn_grad_terms(grads, cache)
    assert terms.dW.shape == (9, 4, 4) and terms.dU.shape == (9, 2, 4) and terms.db.shape == (9, 4)
    np.testing.assert_allclose(terms.dW.sum(axis=0), grads.dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(terms.dU.sum(axis=0), grads.dU, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(terms.db.sum(axis=0), grads.db, rtol=1e-12, atol=1e-12)
    # the last step's weight term is h_(T-1)^T delta_T
    np.testing.assert_allclose(terms.dW[-1], cache.states[:, -2].T @ grads.dz[:, -1], rtol=1e-12)


def test_forward_is_the_recurrence(rng):
    x, h0, W, U, b = _problem(rng, (2, 4, 3, 5))
    h, cache = recurrent.rnn_forward(x, h0, W, U, b)
    state = h0
    for t in range(4):
        state = np.tanh(state @ W + x[:, t] @ U + b)
        np.testing.assert_allclose(h[:, t], state, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(cache.states[:, 0], h0)
    np.testing.assert_array_equal(cache.states[:, 1:], h)
    assert isinstance(cache, recurrent.RNNCache) and cache.activation.name == "tanh"


def test_gradcheck_catches_a_backward_off_by_a_tenth_of_a_percent(rng):
    x, h0, W, U, b = _problem(rng, (2, 6, 3, 4))
    h, cache = recurrent.rnn_forward(x, h0, W, U, b)
    dh = rng.standard_normal(h.shape)
    grads = recurrent.rnn_backward(dh, cache)
    result = check_gradient(lambda v: recurrent.rnn_forward(x, h0, v, U, b)[0], W, grads.dW * 1.001,
                            eps=1e-6, tol=TOL, dout=dh)
    assert not result.passed and result.max_rel_error > 1e-4


def test_nothing_is_modified_in_place(rng):
    x, h0, W, U, b = _problem(rng, (2, 5, 3, 4))
    copies = [a.copy() for a in (x, h0, W, U, b)]
    h, cache = recurrent.rnn_forward(x, h0, W, U, b)
    dh = rng.standard_normal(h.shape)
    dh_copy, states_copy = dh.copy(), cache.states.copy()
    grads = recurrent.rnn_backward(dh, cache)
    recurrent.rnn_grad_terms(grads, cache)
    for before, after in zip(copies, (x, h0, W, U, b)):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(dh, dh_copy)
    np.testing.assert_array_equal(cache.states, states_copy)
    h[:] = 0.0                                   # the returned states are not a view of the cache
    np.testing.assert_array_equal(cache.states, states_copy)


def test_float32_is_preserved(rng):
    x, h0, W, U, b = (a.astype(np.float32) for a in _problem(rng, (2, 5, 3, 4)))
    h, cache = recurrent.rnn_forward(x, h0, W, U, b)
    assert h.dtype == np.float32
    grads = recurrent.rnn_backward(np.ones_like(h), cache)
    assert all(g.dtype == np.float32 for g in grads)


# --------------------------------------------------------------------------- errors

X, H0, W, U, B = np.ones((2, 3, 4)), np.zeros((2, 5)), np.eye(5), np.ones((4, 5)), np.zeros(5)
OUT, CACHE = recurrent.rnn_forward(X, H0, W, U, B)
GRADS = recurrent.rnn_backward(np.ones_like(OUT), CACHE)

BAD_CALLS = [
    (lambda: recurrent.rnn_forward(np.ones((2, 4)), H0, W, U, B), ValueError,
     "rnn_forward: x must have shape (N, T, D); got shape (2, 4)"),
    (lambda: recurrent.rnn_forward(X, H0, np.ones((5, 4)), U, B), ValueError,
     "rnn_forward: W must be square, of shape (H, H); got shape (5, 4)"),
    (lambda: recurrent.rnn_forward(X, H0, W, np.ones((5, 5)), B), ValueError,
     "rnn_forward: U must have shape (D, H) = (4, 5)"),
    (lambda: recurrent.rnn_forward(X, H0, W, U, np.ones(4)), ValueError,
     "rnn_forward: b must have shape (H,) = (5,); got shape (4,)"),
    (lambda: recurrent.rnn_forward(X, np.zeros((3, 5)), W, U, B), ValueError,
     "rnn_forward: h0 must have shape (N, H) = (2, 5)"),
    (lambda: recurrent.rnn_forward(X, np.zeros(5), W, U, B), ValueError,
     "rnn_forward: h0 must have shape (N, H); got shape (5,)"),
    (lambda: recurrent.rnn_forward(X.astype(str), H0, W, U, B), TypeError, "rnn_forward: x"),
    (lambda: recurrent.rnn_forward(X, H0, W, U, B, activation="swish"), ValueError,
     "rnn_forward: activation must be one of"),
    (lambda: recurrent.rnn_forward(X, H0, W, U, B, activation=3), TypeError, "rnn_forward: activation"),
    (lambda: recurrent.rnn_backward(np.ones((2, 3, 4)), CACHE), ValueError,
     "rnn_backward: dh must have shape (N, T, H) = (2, 3, 5)"),
    (lambda: recurrent.rnn_backward(np.ones((2, 3, 5)), (1, 2)), TypeError,
     "rnn_backward: cache must be the RNNCache"),
    (lambda: recurrent.rnn_grad_terms(GRADS._replace(dz=np.ones((1, 3, 5))), CACHE), ValueError,
     "rnn_grad_terms: grads.dz must have shape (N, T, H) = (2, 3, 5)"),
    (lambda: recurrent.rnn_grad_terms((1, 2), CACHE), TypeError, "rnn_grad_terms: grads must be the RNNGrads"),
    (lambda: recurrent.rnn_grad_terms(GRADS, "cache"), TypeError, "rnn_grad_terms: cache must be the RNNCache"),
]


@pytest.mark.parametrize("call,kind,message", BAD_CALLS, ids=[m.split(":")[0] + str(i) for i, (_, _, m)
                                                               in enumerate(BAD_CALLS)])
def test_bad_input_raises_a_clear_error(call, kind, message):
    with pytest.raises(kind) as exc:
        call()
    assert message in str(exc.value)
