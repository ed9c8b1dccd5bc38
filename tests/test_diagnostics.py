"""stablegrad.diagnostics: per-layer gradient norms, activation statistics, update ratios."""

import numpy as np
import pytest

from stablegrad import diagnostics as dg
from stablegrad import layers


def _chain(rng, depth, width, scale):
    return [(rng.standard_normal((width, width)) * scale, np.zeros(width)) for _ in range(depth)]


def test_layer_gradient_norms_are_frobenius_norms_of_dW(rng):
    grads = [(rng.standard_normal((3, 4)), rng.standard_normal(4)), (rng.standard_normal((4, 2)), np.ones(2))]
    norms = dg.layer_gradient_norms(grads)
    assert norms.shape == (2,) and norms.dtype == np.float64
    np.testing.assert_allclose(norms, [np.sqrt(np.sum(g[0] ** 2)) for g in grads], rtol=1e-14)
    # bare arrays and dicts are read the same way
    np.testing.assert_allclose(dg.layer_gradient_norms([g[0] for g in grads]), norms)
    np.testing.assert_allclose(dg.layer_gradient_norms([{"dW": g[0], "db": g[1]} for g in grads]), norms)


def test_chain_gradient_norms_matches_stack_backward(rng):
    x = rng.standard_normal((8, 6))
    params = _chain(rng, 5, 6, 0.5)
    out, caches = layers.stack_forward(x, params, "tanh")
    _, grads = layers.stack_backward(np.ones_like(out), caches)  # the default dout is ones
    np.testing.assert_allclose(dg.chain_gradient_norms(x, params, "tanh"), dg.layer_gradient_norms(grads))
    dout = rng.standard_normal(out.shape)
    _, grads = layers.stack_backward(dout, caches)
    np.testing.assert_allclose(dg.chain_gradient_norms(x, params, "tanh", dout), dg.layer_gradient_norms(grads))


def test_chain_gradient_norms_show_vanishing_gradients(rng):
    # width-1 sigmoid chain with w = 1: dW_l = a_{l-1} * delta_l, where the activations stay near 1/2..3/4
    # while delta shrinks by w * sigmoid' <= 1/4 per layer, so layer 1 sees < 4^-19 ~ 4e-12 of layer 20's
    x = np.ones((1, 1))
    params = [(np.array([[1.0]]), np.zeros(1)) for _ in range(20)]
    norms = dg.chain_gradient_norms(x, params, "sigmoid")
    assert norms.shape == (20,)
    assert norms[0] < 1e-10 * norms[-1]
    assert np.all(np.diff(norms) > 0)  # monotone: each layer closer to the output gets more


def test_activation_stats(rng):
    a = np.tanh(rng.standard_normal((50, 4)) * 3)
    stats = dg.activation_stats(a, "tanh")
    assert set(stats) >= {"mean", "std", "min", "max", "fraction_zero", "saturated"}
    assert stats["mean"] == pytest.approx(a.mean()) and stats["std"] == pytest.approx(a.std())
    assert stats["saturated"] == pytest.approx(np.mean(np.abs(a) > 0.97))
    assert all(isinstance(v, float) for v in stats.values())
    assert np.isnan(dg.activation_stats(a)["saturated"])
    assert dg.activation_stats(np.array([0.0, 0.0, 1.0, 2.0]), "relu")["fraction_zero"] == 0.5


def test_saturation_by_layer_accepts_arrays_or_caches(rng):
    x = rng.standard_normal((100, 8))
    params = _chain(rng, 3, 8, 1.5)
    _, caches = layers.stack_forward(x, params, "tanh")
    from_caches = dg.saturation_by_layer(caches, "tanh")
    from_arrays = dg.saturation_by_layer([c.act.a for c in caches], "tanh", 0.97)
    assert from_caches.shape == (3,)
    np.testing.assert_array_equal(from_caches, from_arrays)
    assert np.all((from_caches >= 0) & (from_caches <= 1))


def test_update_to_data_ratio():
    param = np.array([3.0, 4.0])
    assert dg.update_to_data_ratio(param, np.array([0.003, 0.004])) == pytest.approx(1e-3)
    assert dg.update_to_data_ratio(np.zeros(2), np.zeros(2)) == 0.0
    assert dg.update_to_data_ratio(np.zeros(2), np.ones(2)) == np.inf


BAD_CALLS = [
    (lambda: dg.layer_gradient_norms([]), ValueError, "layer_gradient_norms: grads"),
    (lambda: dg.layer_gradient_norms(np.ones(3)), TypeError, "layer_gradient_norms: grads"),
    (lambda: dg.layer_gradient_norms([{"db": np.ones(2)}]), ValueError, "grads[0]"),
    (lambda: dg.chain_gradient_norms(np.ones((2, 3)), [(np.ones((3, 2)), np.ones(2))], "tanh",
                                     dout=np.ones((2, 3))), ValueError, "chain_gradient_norms: dout"),
    (lambda: dg.saturation_by_layer([], "tanh"), ValueError, "saturation_by_layer: activations"),
    (lambda: dg.saturation_by_layer([np.ones(3)], "swish"), ValueError, "kind"),
    (lambda: dg.update_to_data_ratio(np.ones(3), np.ones(2)), ValueError, "update_to_data_ratio: update"),
    (lambda: dg.activation_stats("x"), TypeError, "activation_stats: a"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)
