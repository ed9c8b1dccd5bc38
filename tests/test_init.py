"""stablegrad.init: initializers draw what they promise, and the variance predictions hold."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablegrad import init

NAMED = ["xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "uniform", "normal"]
NORMAL = {"xavier_normal", "he_normal", "normal"}

# ---------------------------------------------------------------------------------------------------
# How far may the sample variance of n iid weights be from the predicted variance sigma^2?
#
# The sample variance s^2 of n iid draws has standard deviation
#     sigma^2 * sqrt(2 / (n - 1))                 for a normal distribution (kurtosis mu4/sigma^4 = 3),
#     sigma^2 * sqrt((mu4/sigma^4 - 1) / n)       in general, = sigma^2 * sqrt(0.8 / n) for a uniform
#                                                 (kurtosis 9/5), to leading order in 1/n.
# We accept |s^2 - sigma^2| <= K * sd. Weight matrices below have n = fan_in * fan_out >= 32 * 32 = 1024
# draws, where s^2 is close to normal: a normal two-sided tail beyond K = 6.5 has probability 8e-11.
# The normal case is exactly a scaled chi-square with n - 1 degrees of freedom, whose upper tail is
# heavier (skewness sqrt(8/n) ~ 0.09); by the Wilson-Hilferty approximation its tail beyond 6.5 sd at
# n = 1024 is still ~1e-9, and the uniform case (bounded, skewness of w^2 about 0.64/sqrt(n)) is lighter.
# With at most 50 examples x 6 initializers per run, a correct implementation fails a run with
# probability below 300 * 1e-9 < 1e-6, while a wrong constant (e.g. 1/fan_in instead of 2/fan_in,
# at least 10 sd away for these sizes) fails every time.
# ---------------------------------------------------------------------------------------------------
K = 6.5


def variance_sd(sigma2, n, normal):
    return sigma2 * (math.sqrt(2.0 / (n - 1)) if normal else math.sqrt(0.8 / n))


@pytest.mark.parametrize("name", NAMED)
def test_shape_dtype_and_determinism(name):
    fn = init.INITIALIZERS[name]
    W = fn(7, 3, np.random.default_rng(0))
    assert W.shape == (7, 3) and W.dtype == np.float64
    np.testing.assert_array_equal(W, fn(7, 3, np.random.default_rng(0)))  # same seed, same weights
    assert not np.array_equal(W, fn(7, 3, np.random.default_rng(1)))


@pytest.mark.parametrize("name", NAMED)
def test_no_global_random_state_is_used(name):
    state = np.random.get_state()
    init.INITIALIZERS[name](5, 5, np.random.default_rng(0))
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


@settings(max_examples=50, deadline=None)
@given(fan_in=st.integers(32, 256), fan_out=st.integers(32, 256), seed=st.integers(0, 2**32 - 1),
       name=st.sampled_from(NAMED))
def test_sample_variance_matches_prediction(fan_in, fan_out, seed, name):
    W = init.INITIALIZERS[name](fan_in, fan_out, np.random.default_rng(seed))
    n = W.size
    sigma2 = init.init_variance(name, fan_in, fan_out)
    s2 = W.var(ddof=1)
    sd = variance_sd(sigma2, n, name in NORMAL)
    assert abs(s2 - sigma2) <= K * sd, (
        f"{name}({fan_in}, {fan_out}): sample variance {s2:.5g}, predicted {sigma2:.5g} "
        f"({(s2 - sigma2) / sd:+.1f} standard deviations)")
    # and the mean is 0 (sd sigma / sqrt(n), same K)
    assert abs(W.mean()) <= K * math.sqrt(sigma2 / n)


@settings(max_examples=50, deadline=None)
@given(fan_in=st.integers(1, 64), fan_out=st.integers(1, 64), seed=st.integers(0, 2**32 - 1),
       gain=st.floats(0.1, 5.0))
def test_uniform_bounds(fan_in, fan_out, seed, gain):
    rng = np.random.default_rng(seed)
    assert np.max(np.abs(init.xavier_uniform(fan_in, fan_out, rng, gain=gain))) <= gain * math.sqrt(
        6 / (fan_in + fan_out))
    assert np.max(np.abs(init.he_uniform(fan_in, fan_out, rng))) <= math.sqrt(6 / fan_in)
    W = init.uniform(fan_in, fan_out, rng, low=4.0, high=5.0)
    assert W.min() >= 4.0 and W.max() < 5.0


def test_gain_scales_the_standard_deviation():
    a = init.xavier_normal(50, 40, np.random.default_rng(3))
    b = init.xavier_normal(50, 40, np.random.default_rng(3), gain=2.0)
    np.testing.assert_allclose(b, 2.0 * a, rtol=1e-15)


def test_aliases_and_registry():
    assert init.glorot_normal is init.xavier_normal and init.glorot_uniform is init.xavier_uniform
    assert init.kaiming_normal is init.he_normal and init.kaiming_uniform is init.he_uniform
    assert set(init.INITIALIZERS) == set(NAMED)
    assert init.get_initializer("he_normal") is init.he_normal
    assert init.get_initializer("glorot_uniform") is init.xavier_uniform
    custom = lambda fi, fo, rng: np.zeros((fi, fo))  # noqa: E731
    assert init.get_initializer(custom) is custom


def test_init_variance_values():
    assert init.init_variance("xavier_normal", 100, 300) == pytest.approx(2 / 400)
    assert init.init_variance("xavier_uniform", 100, 300) == pytest.approx(2 / 400)
    assert init.init_variance("he_uniform", 100, 300) == pytest.approx(2 / 100)
    assert init.init_variance("kaiming_normal", 100, 300) == pytest.approx(2 / 100)
    assert init.init_variance("uniform", 3, 4) == pytest.approx(1 / 3)
    assert init.init_variance("normal", 3, 4) == 1.0


def test_forward_variance_formulas():
    assert init.forward_variance(100, 0.02, 3.0) == pytest.approx(100 * 0.02 * 3.0)
    assert init.forward_variance(100, 0.02, 3.0, "relu") == pytest.approx(100 * 0.02 * 3.0 / 2)
    assert init.forward_variance(100, 0.01, 1.0, "tanh") == pytest.approx(1.0)
    v = init.forward_variance_through_depth(64, 0.05, 2.0, "relu", 6)
    assert v.shape == (6,)
    np.testing.assert_allclose(v, 2.0 * (64 * 0.05 / 2) ** np.arange(1, 7), rtol=1e-14)
    # He keeps a relu stack flat
    np.testing.assert_allclose(init.forward_variance_through_depth(64, 2 / 64, 1.0, "relu", 50), 1.0, rtol=1e-12)


def test_forward_variance_agrees_with_simulation(rng):
    # relu then a He layer: Var(z') = n * (2/n) * Var(z)/2 = Var(z). With 256 x 4000 samples of z',
    # each an average of n products, the sample variance is within a few percent.
    n, batch, var_z = 256, 4000, 2.5
    z = rng.standard_normal((batch, n)) * math.sqrt(var_z)
    W = init.he_normal(n, 256, rng)
    z_next = np.maximum(z, 0) @ W
    predicted = init.forward_variance(n, init.init_variance("he_normal", n, 256), var_z, "relu")
    # E[relu(z)] != 0 adds a mean to x, but the weights have mean 0, so Var(z') = n Var(w) E[x^2] still;
    # the sample variance over 1e6 correlated entries lands within ~5% (it depends on W's realization)
    assert z_next.var() == pytest.approx(predicted, rel=0.05)


BAD_CALLS = [
    (lambda: init.he_normal(0, 3, np.random.default_rng(0)), ValueError, "he_normal: fan_in must be >= 1"),
    (lambda: init.xavier_normal(3, 2.5, np.random.default_rng(0)), TypeError, "xavier_normal: fan_out"),
    (lambda: init.xavier_uniform(3, 3, 42), TypeError, "xavier_uniform: rng must be a numpy.random.Generator"),
    (lambda: init.xavier_normal(3, 3, np.random.default_rng(0), gain=0), ValueError, "xavier_normal: gain"),
    (lambda: init.uniform(3, 3, np.random.default_rng(0), low=1.0, high=1.0), ValueError, "uniform: low must be < high"),
    (lambda: init.uniform(3, 3, np.random.default_rng(0), low="a"), TypeError, "uniform: low"),
    (lambda: init.normal(3, 3, np.random.default_rng(0), std=-1), ValueError, "normal: std"),
    (lambda: init.get_initializer("lecun"), ValueError, "'he_normal'"),
    (lambda: init.get_initializer(3), TypeError, "get_initializer: name_or_callable"),
    (lambda: init.init_variance("lecun", 3, 3), ValueError, "init_variance: name"),
    (lambda: init.forward_variance(10, 0.1, 1.0, "sigmoid"), ValueError, "forward_variance: activation"),
    (lambda: init.forward_variance(10, -0.1, 1.0), ValueError, "forward_variance: var_w"),
    (lambda: init.forward_variance_through_depth(10, 0.1, 1.0, "relu", 0), ValueError,
     "forward_variance_through_depth: depth"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)


# --------------------------------------------------------------------------- chapter 3 additions

def test_backward_stable_variance():
    assert init.backward_stable_variance(300, 100) == pytest.approx(1 / 100)       # n_out, not n_in
    assert init.backward_stable_variance(300, 100, "tanh") == pytest.approx(1 / 100)
    assert init.backward_stable_variance(300, 100, "relu") == pytest.approx(2 / 100)
    assert init.backward_stable_variance(7, 50, "leaky_relu") == pytest.approx(2 / (50 * (1 + 1e-4)))
    with pytest.raises(ValueError, match="backward_stable_variance: activation"):
        init.backward_stable_variance(3, 3, "sigmoid")
    with pytest.raises(TypeError, match="backward_stable_variance: n_in"):
        init.backward_stable_variance(3.0, 3)


def _mc_moments(activation, var, rng, n=2_000_000):
    from stablegrad.activations import get_activation
    act = get_activation(activation)
    z = rng.standard_normal(n) * math.sqrt(var)
    return np.mean(act.fn(z) ** 2), np.mean(act.grad(z) ** 2)


@pytest.mark.parametrize("activation", ["identity", "relu", "leaky_relu", "tanh"])
@pytest.mark.parametrize("var", [1e-3, 0.7, 4.0, 256.0])
def test_gaussian_moments_against_monte_carlo(activation, var):
    # 2e6 samples: the relative standard error of a mean of squares is at most sqrt(Var(h)/n)/E[h];
    # for sech^4 at var=256 (the worst case, a rare spike near 0) it is about 0.4%, so 3% is > 7 sd.
    f2, g2 = init.gaussian_moments(activation, var)
    mc_f2, mc_g2 = _mc_moments(activation, var, np.random.default_rng(0))
    assert f2 == pytest.approx(mc_f2, rel=0.03)
    assert g2 == pytest.approx(mc_g2, rel=0.03)


def test_gaussian_moments_limits():
    # tanh is linear near 0 (tanh z = z - z^3/3: E[tanh^2] = v - 2 v^2 + ...), saturated for large v
    f2, g2 = init.gaussian_moments("tanh", 1e-80)
    assert f2 == pytest.approx(1e-80, rel=1e-12) and g2 == pytest.approx(1.0, rel=1e-12)
    f2, g2 = init.gaussian_moments("tanh", 1e-4)
    assert f2 == pytest.approx(1e-4 - 2e-8, rel=1e-6)
    # large v: E[sech^2] -> 2 phi(0)/s and E[sech^4] -> (4/3) phi(0)/s (the integrals of sech^2, sech^4)
    s = 1000.0
    f2, g2 = init.gaussian_moments("tanh", s ** 2)
    phi0 = 1 / math.sqrt(2 * math.pi)
    assert 1 - f2 == pytest.approx(2 * phi0 / s, rel=1e-4)
    assert g2 == pytest.approx(4 / 3 * phi0 / s, rel=1e-4)
    assert init.gaussian_moments("relu", 3.0) == (1.5, 0.5)
    assert init.gaussian_moments("tanh", 0.0) == (0.0, 1.0)


def test_predicted_variances_closed_forms():
    n, var_w, L = 64, 0.05, 12
    p = init.predicted_variances(n, var_w, 2.0, "relu", L, var_dout=3.0)
    gain = n * var_w / 2
    np.testing.assert_allclose(p.forward, n * var_w * 2.0 * gain ** np.arange(L), rtol=1e-12)
    np.testing.assert_allclose(p.backward, 3.0 * 0.5 * gain ** (L - 1 - np.arange(L)), rtol=1e-12)
    lin = init.predicted_variances(n, var_w, 2.0, "identity", L)
    np.testing.assert_allclose(lin.forward, 2.0 * (n * var_w) ** np.arange(1, L + 1), rtol=1e-12)
    # He keeps relu flat in both directions; tanh's linear-regime prediction equals identity's
    he = init.predicted_variances(256, 2 / 256, 1.0, "relu", 50)
    np.testing.assert_allclose(he.forward, 2.0, rtol=1e-12)
    np.testing.assert_allclose(he.backward, 0.5, rtol=1e-12)
    t = init.predicted_variances(n, var_w, 2.0, "tanh", L, linear=True)
    np.testing.assert_allclose(t.forward, lin.forward, rtol=1e-12)
    # with the Gaussian moments, tanh + Xavier decays, while tiny weights stay linear
    x = init.predicted_variances(256, 1 / 256, 1.0, "tanh", 50)
    assert x.forward[-1] < 0.02 and np.all(np.diff(x.forward) < 0)
    tiny = init.predicted_variances(256, 1e-4, 1.0, "tanh", 50)
    # (the first layer, at v = 0.0256, loses 2v = 5% to tanh's curvature; from layer 4 on v < 1e-6 and tanh is linear)
    np.testing.assert_allclose(tiny.forward[4:] / tiny.forward[3:-1], 0.0256, rtol=1e-6)
    # extremes do not raise: 128^50 ~ 1e105 and 0.0128^50 ~ 1e-95 are representable
    big = init.predicted_variances(256, 1.0, 1.0, "relu", 50)
    assert np.all(np.isfinite(big.forward)) and big.forward[-1] > 1e100


def _stack_by_hand(x, weights, f, fprime, dout):
    zs, a = [], x
    for W in weights:
        zs.append(a @ W)
        a = f(zs[-1])
    fwd = np.array([z.var() for z in zs])
    d, bwd = dout, []
    for W, z in zip(weights[::-1], zs[::-1]):
        delta = d * fprime(z)
        bwd.append(delta.var())
        d = delta @ W.T
    return fwd, np.array(bwd[::-1])


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity", "sigmoid"])
def test_measure_variances_matches_a_hand_written_stack(activation):
    from stablegrad.activations import get_activation
    act = get_activation(activation)
    x = np.random.default_rng(1).standard_normal((7, 5))
    m = init.measure_variances(x, "xavier_normal", 4, activation, np.random.default_rng(2))
    rng = np.random.default_rng(2)
    weights = [init.xavier_normal(5, 5, rng) for _ in range(4)]
    dout = rng.standard_normal((7, 5))
    fwd, bwd = _stack_by_hand(x, weights, act.fn, act.grad, dout)
    np.testing.assert_allclose(m.forward, fwd, rtol=1e-12)
    np.testing.assert_allclose(m.backward, bwd, rtol=1e-12)
    a = init.activation_variances(x, init.xavier_normal, 4, activation, np.random.default_rng(2))
    np.testing.assert_allclose(a, fwd, rtol=1e-12)
    # an explicit dout replaces the random one
    ones = init.measure_variances(x, "he_normal", 3, activation, np.random.default_rng(5), dout=np.ones((7, 5)))
    rng = np.random.default_rng(5)
    weights = [init.he_normal(5, 5, rng) for _ in range(3)]
    np.testing.assert_allclose(ones.backward, _stack_by_hand(x, weights, act.fn, act.grad, np.ones((7, 5)))[1],
                               rtol=1e-12)


def test_measured_variances_follow_the_prediction():
    # 20 relu layers of width 256 under He: the prediction is flat (2 forward, 1/2 backward). A single
    # net wanders multiplicatively around it (about 14% per layer for one input; the batch shares the
    # weights), so after 20 layers allow a factor 3; a wrong factor (no 2: 2^-20) is far outside.
    x = np.random.default_rng(0).standard_normal((64, 256))
    m = init.measure_variances(x, "he_normal", 20, "relu", np.random.default_rng(1))
    p = init.predicted_variances(256, 2 / 256, 1.0, "relu", 20)
    assert np.all(np.abs(np.log(m.forward / p.forward)) < np.log(3))
    assert np.all(np.abs(np.log(m.backward / p.backward)) < np.log(3))


def test_measure_variances_uses_only_the_given_rng():
    state = np.random.get_state()
    x = np.ones((3, 4))
    a = init.measure_variances(x, "he_normal", 3, "relu", np.random.default_rng(0))
    b = init.measure_variances(x, "he_normal", 3, "relu", np.random.default_rng(0))
    np.testing.assert_array_equal(a.forward, b.forward)
    np.testing.assert_array_equal(a.backward, b.backward)
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2:] == after[2:]


MORE_BAD_CALLS = [
    (lambda: init.gaussian_moments("sigmoid", 1.0), ValueError, "gaussian_moments: activation"),
    (lambda: init.gaussian_moments("tanh", -1.0), ValueError, "gaussian_moments: var"),
    (lambda: init.predicted_variances(10, 0.1, 1.0, "relu", 0), ValueError, "predicted_variances: depth"),
    (lambda: init.predicted_variances(10, 0.1, 1.0, "relu", 3, linear=1), TypeError, "predicted_variances: linear"),
    (lambda: init.activation_variances(np.ones(3), "he_normal", 2, "relu", np.random.default_rng(0)),
     ValueError, "activation_variances: x must have shape (N, n)"),
    (lambda: init.activation_variances(np.ones((2, 3)), "lecun", 2, "relu", np.random.default_rng(0)),
     ValueError, "'he_normal'"),
    (lambda: init.activation_variances(np.ones((2, 3)), "he_normal", 2, "relu", 0), TypeError,
     "activation_variances: rng"),
    (lambda: init.measure_variances(np.ones((2, 3)), "he_normal", 2, "relu", np.random.default_rng(0),
                                    dout=np.ones((3, 3))), ValueError, "measure_variances: dout"),
]


@pytest.mark.parametrize("call, exc, message", MORE_BAD_CALLS)
def test_more_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)
