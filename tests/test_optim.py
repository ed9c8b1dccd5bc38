"""Optimizers: hand-computed steps, no mutation, containers, dtypes, state handling, validation."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from stablegrad.optim import OPTIMIZERS, SGD, Adam, AdamW, Momentum, RMSprop, get_optimizer

P = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.5, 1.0, -2.0])
G2 = np.array([-1.0, 0.25, 3.0])


def test_sgd_step_by_hand():
    new = SGD(lr=0.1).step(P, G1)
    np.testing.assert_allclose(new, [0.95, -2.1, 0.7], rtol=1e-15)


def test_momentum_two_steps_by_hand():
    opt = Momentum(lr=0.1, beta=0.9)
    p1 = opt.step(P, G1)                       # v1 = g1
    np.testing.assert_allclose(p1, P - 0.1 * G1, rtol=1e-15)
    p2 = opt.step(p1, G2)                      # v2 = 0.9 g1 + g2
    np.testing.assert_allclose(p2, p1 - 0.1 * (0.9 * G1 + G2), rtol=1e-15)


def test_nesterov_two_steps_by_hand():
    opt = Momentum(lr=0.1, beta=0.9, nesterov=True)
    p1 = opt.step(P, G1)                       # v1 = g1; step g1 + 0.9 v1
    np.testing.assert_allclose(p1, P - 0.1 * (G1 + 0.9 * G1), rtol=1e-15)
    p2 = opt.step(p1, G2)
    v2 = 0.9 * G1 + G2
    np.testing.assert_allclose(p2, p1 - 0.1 * (G2 + 0.9 * v2), rtol=1e-15)


def test_rmsprop_two_steps_by_hand():
    opt = RMSprop(lr=0.01, rho=0.9, eps=1e-7)
    p1 = opt.step(P, G1)
    s1 = 0.1 * G1 ** 2
    np.testing.assert_allclose(p1, P - 0.01 * G1 / (np.sqrt(s1) + 1e-7), rtol=1e-14)
    # first step is lr * g / (sqrt(0.1) |g|): about 3.16 lr whatever the size of g
    np.testing.assert_allclose(np.abs(p1 - P), 0.01 / np.sqrt(0.1), rtol=1e-6)
    p2 = opt.step(p1, G2)
    s2 = 0.9 * s1 + 0.1 * G2 ** 2
    np.testing.assert_allclose(p2, p1 - 0.01 * G2 / (np.sqrt(s2) + 1e-7), rtol=1e-14)


def test_adam_two_steps_by_hand():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.001
    opt = Adam(lr=lr)
    p1 = opt.step(P, G1)
    # bias correction makes the first step lr * g / (|g| + eps)
    np.testing.assert_allclose(p1, P - lr * G1 / (np.abs(G1) + eps), rtol=1e-12)
    p2 = opt.step(p1, G2)
    m = b1 * (1 - b1) * G1 + (1 - b1) * G2
    v = b2 * (1 - b2) * G1 ** 2 + (1 - b2) * G2 ** 2
    m_hat, v_hat = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
    np.testing.assert_allclose(p2, p1 - lr * m_hat / (np.sqrt(v_hat) + eps), rtol=1e-12)
    assert opt.t == 2


def test_adamw_decay_is_decoupled_from_the_adaptive_scaling():
    lr, wd = 0.01, 0.1
    p1 = AdamW(lr=lr, weight_decay=wd).step(P, G1)
    np.testing.assert_allclose(p1, P - lr * (G1 / (np.abs(G1) + 1e-8) + wd * P), rtol=1e-12)
    # with zero gradient only the decay acts: every weight shrinks by the same factor 1 - lr * wd
    p0 = AdamW(lr=lr, weight_decay=wd).step(P, np.zeros(3))
    np.testing.assert_allclose(p0, (1 - lr * wd) * P, rtol=1e-15)
    # weight_decay = 0 is exactly Adam
    np.testing.assert_array_equal(AdamW(lr=lr, weight_decay=0.0).step(P, G1), Adam(lr=lr).step(P, G1))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_params_and_grads_are_never_mutated_and_results_are_new(name, rng):
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    grads = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    saved_p = {k: v.copy() for k, v in params.items()}
    saved_g = {k: v.copy() for k, v in grads.items()}
    opt = get_optimizer(name, lr=0.1)
    new = params
    for _ in range(3):
        new = opt.step(new, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], saved_p[k])
        np.testing.assert_array_equal(grads[k], saved_g[k])
        assert not np.shares_memory(new[k], params[k]) and not np.shares_memory(new[k], grads[k])
        assert not np.array_equal(new[k], params[k])
    # the state the optimizer exposes is a copy too
    for per_param in opt.state.values():
        for arr in per_param.values():
            arr[...] = 1e9
    assert not any(np.any(a == 1e9) for s in opt.state.values() for a in s.values())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_containers_round_trip(name, rng):
    a, b = rng.normal(size=(2, 2)), rng.normal(size=3)
    ga, gb = rng.normal(size=(2, 2)), rng.normal(size=3)
    as_dict = get_optimizer(name).step({"a": a, "b": b}, {"a": ga, "b": gb})
    as_list = get_optimizer(name).step([a, b], [ga, gb])
    as_tuple = get_optimizer(name).step((a, b), (ga, gb))
    single = get_optimizer(name).step(a, ga)
    assert list(as_dict) == ["a", "b"] and isinstance(as_list, list) and isinstance(as_tuple, tuple)
    np.testing.assert_array_equal(as_dict["a"], as_list[0])
    np.testing.assert_array_equal(as_list[1], as_tuple[1])
    np.testing.assert_array_equal(single, as_dict["a"])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_parameters_stay_float32(name, rng):
    p = rng.normal(size=(4, 3)).astype(np.float32)
    g = rng.normal(size=(4, 3))  # float64 gradient is cast to the parameter's dtype
    new = get_optimizer(name).step(p, g)
    assert new.dtype == np.float32


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_minimizes_a_quadratic(name):
    target = np.array([3.0, -1.0, 0.5])
    lr = {"sgd": 0.1, "momentum": 0.05, "rmsprop": 0.01, "adam": 0.05, "adamw": 0.05}[name]
    kwargs = {"weight_decay": 0.0} if name == "adamw" else {}
    opt = get_optimizer(name, lr=lr, **kwargs)
    p = np.zeros(3)
    for _ in range(2000):
        p = opt.step(p, 2 * (p - target))  # gradient of ||p - target||^2
    np.testing.assert_allclose(p, target, atol=0.02)


def test_clone_and_reset_give_fresh_state_with_the_same_settings():
    opt = Adam(lr=0.005, beta1=0.8)
    first = opt.step(P, G1)
    opt.step(first, G2)
    twin = opt.clone()
    assert type(twin) is Adam and twin.hyperparameters == opt.hyperparameters and twin.t == 0
    np.testing.assert_array_equal(twin.step(P, G1), first)  # same as a first step
    opt.reset()
    assert opt.t == 0 and opt.state == {}
    np.testing.assert_array_equal(opt.step(P, G1), first)
    assert repr(twin) == "Adam(lr=0.005, beta1=0.8, beta2=0.999, eps=1e-08)"


def test_get_optimizer():
    assert isinstance(get_optimizer("RMSprop"), RMSprop)
    assert get_optimizer("adam", lr=0.008).lr == 0.008
    opt = Momentum(lr=0.3)
    opt.step(P, G1)
    fresh = get_optimizer(opt)
    assert fresh is not opt and fresh.lr == 0.3 and fresh.t == 0
    with pytest.raises(ValueError, match="name must be one of"):
        get_optimizer("lbfgs")
    with pytest.raises(TypeError, match="name must be a string"):
        get_optimizer(0.1)
    with pytest.raises(TypeError, match="hyperparameters cannot be given"):
        get_optimizer(opt, lr=0.1)


@given(g=hnp.arrays(np.float64, 5, elements=st.floats(1e-6, 1e6) | st.floats(-1e6, -1e-6)),
       lr=st.floats(1e-4, 1e-1))
@settings(max_examples=50, deadline=None)
def test_adam_first_step_is_about_lr_per_coordinate_whatever_the_gradient_scale(g, lr):
    p = np.zeros(5)
    step = Adam(lr=lr).step(p, g) - p
    np.testing.assert_allclose(np.abs(step), lr, rtol=1e-2)
    assert np.all(np.sign(step) == -np.sign(g))


@pytest.mark.parametrize("call, exc, words", [
    (lambda: SGD(lr=0.0), ValueError, "SGD: lr must be finite and > 0"),
    (lambda: SGD(lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: Momentum(beta=1.0), ValueError, r"beta must be in \[0, 1\)"),
    (lambda: Momentum(nesterov=1), TypeError, "nesterov"),
    (lambda: RMSprop(rho=-0.1), ValueError, "rho"),
    (lambda: RMSprop(eps=0.0), ValueError, "eps"),
    (lambda: Adam(beta2=1.5), ValueError, "beta2"),
    (lambda: AdamW(weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda: SGD().step({"W": P}, [G1]), TypeError, "grads must be a dict"),
    (lambda: SGD().step({"W": P}, {"V": G1}), ValueError, r"missing \['W'\], unexpected \['V'\]"),
    (lambda: SGD().step([P, P], [G1]), ValueError, "one array per parameter"),
    (lambda: SGD().step([P], G1), TypeError, "grads must be a list"),
    (lambda: SGD().step({"W": P}, {"W": G1[:2]}), ValueError, r"grads\['W'\] must have the shape of params\['W'\]"),
    (lambda: SGD().step(P, "g"), TypeError, "grads"),
    (lambda: SGD().step(P.astype(complex), G1), TypeError, "params"),
])
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_layout_changes_are_refused_and_a_failed_step_changes_nothing():
    opt = Adam()
    opt.step({"W": P}, {"W": G1})
    with pytest.raises(ValueError, match="keep the layout of the first step"):
        opt.step({"V": P}, {"V": G1})
    with pytest.raises(ValueError, match="changed shape"):
        opt.step({"W": P[:2]}, {"W": G1[:2]})
    assert opt.t == 1
    opt2 = Adam()
    with pytest.raises(ValueError):
        opt2.step([P, P], [G1, G1[:2]])  # the second pair is bad: the first must not be stepped either
    assert opt2.t == 0 and opt2.state == {}
