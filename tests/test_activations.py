"""stablegrad.activations: values, derivatives, overflow safety, saturation."""

import math
import warnings

import numpy as np
import pytest

from stablegrad import activations as act
from stablegrad.gradcheck import check_gradient

# Tolerance for every finite-difference check in this file. In float64 with eps = 1e-6 the
# centered difference is off by ~eps^2 |f'''| / 6 ~ 1e-13 (truncation) plus ~1e-16 |f| / eps ~ 1e-10
# (rounding) relative to the gradient's scale; a correct derivative measures ~1e-9 at worst, and an
# error of 0.1% measures ~5e-4. 1e-7 sits between the two with two orders of margin either side.
TOL = 1e-7
NAMES = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
SHAPES = [(7,), (4, 5), (3, 2, 6)]
SCALES = [0.1, 1.0, 5.0]


def _away_from_kink(z, margin=1e-2):
    """Push entries away from 0, where relu and leaky relu are not differentiable."""
    return np.where(z >= 0, z + margin, z - margin)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", SCALES)
def test_derivative_matches_finite_differences(rng, name, shape, scale):
    a = act.get_activation(name)
    z = _away_from_kink(rng.standard_normal(shape) * scale)
    dout = rng.standard_normal(shape)
    result = check_gradient(lambda zz: np.sum(a.fn(zz) * dout), z, a.grad(z) * dout, tol=TOL)
    assert result.passed, f"{name}: max relative error {result.max_rel_error:.2e} at {result.worst_index}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_shape_preserved(rng, name, dtype):
    a = act.get_activation(name)
    z = rng.standard_normal((3, 4)).astype(dtype)
    before = z.copy()
    for fn in (a.fn, a.grad):
        out = fn(z)
        assert out.dtype == dtype and out.shape == z.shape
    np.testing.assert_array_equal(z, before)  # never modified in place


def test_integer_input_is_promoted_to_float64():
    assert act.relu(np.array([-2, 3])).dtype == np.float64
    np.testing.assert_array_equal(act.relu([-2, 3]), [0.0, 3.0])


def test_identity_returns_a_copy(rng):
    z = rng.standard_normal(5)
    out = act.identity(z)
    assert out is not z and not np.shares_memory(out, z)
    np.testing.assert_array_equal(out, z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_overflow_safe(dtype):
    z = np.concatenate([-np.logspace(4, -3, 200), [0.0], np.logspace(-3, 4, 200)]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow / invalid warning fails the test
        s = act.sigmoid(z)
        ds = act.sigmoid_grad(z)
    assert s.dtype == dtype and not np.any(np.isnan(s)) and not np.any(np.isnan(ds))
    assert np.all((s >= 0) & (s <= 1))
    assert s[0] == 0.0 and s[-1] == 1.0 and act.sigmoid(dtype(0.0)) == 0.5
    assert np.all(np.diff(s) >= 0)  # monotone, no glitch where the two branches meet


def test_sigmoid_symmetry_and_known_values(rng):
    z = rng.standard_normal(50) * 10
    np.testing.assert_allclose(act.sigmoid(-z), 1 - act.sigmoid(z), rtol=0, atol=1e-15)
    np.testing.assert_allclose(act.sigmoid(np.array([-1.0, 1.0])), [1 / (1 + math.e), 1 / (1 + math.exp(-1))],
                               rtol=1e-15)


def test_derivative_bounds():
    z = np.linspace(-20, 20, 4001)
    assert act.sigmoid_grad(z).max() == pytest.approx(0.25, abs=0) and act.sigmoid_grad(0.0) == 0.25
    assert act.tanh_grad(z).max() == 1.0 and act.tanh_grad(z).min() >= 0


def test_values_at_the_kink():
    # documented choices: relu'(0) = 0 and leaky_relu'(0) = slope
    assert act.relu_grad(np.array([0.0]))[0] == 0.0
    assert act.leaky_relu_grad(np.array([0.0]), slope=0.2)[0] == pytest.approx(0.2)
    np.testing.assert_array_equal(act.leaky_relu(np.array([-2.0, 0.0, 3.0]), slope=0.5), [-1.0, 0.0, 3.0])
    np.testing.assert_array_equal(act.leaky_relu_grad(np.array([-2.0, 3.0])), [0.01, 1.0])


def test_registry():
    assert set(act.ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "identity"}
    for name, a in act.ACTIVATIONS.items():
        assert isinstance(a, act.Activation) and a.name == name
        assert act.get_activation(name) is a
        assert act.get_activation(a) is a


# --------------------------------------------------------------------------- saturation

def test_saturated_fraction_by_kind():
    a = np.array([-0.99, -0.5, 0.0, 0.5, 0.98, 0.97])
    assert act.saturated_fraction(a, "tanh") == pytest.approx(2 / 6)  # strict: 0.97 itself is not saturated
    s = np.array([0.01, 0.02, 0.5, 0.99, 0.9, 0.04])
    assert act.saturated_fraction(s, "sigmoid") == pytest.approx(3 / 6)
    r = np.array([0.0, 0.0, 1.0, 2.0])
    assert act.saturated_fraction(r, "relu") == 0.5
    assert act.saturated_fraction(np.array([-0.01, 0.0, 1.0, 2.0]), "leaky_relu") == 0.5
    assert isinstance(act.saturated_fraction(a, "tanh"), float)


def test_predicted_saturated_fraction_known_values():
    # tanh, t = 0.97: 2 (1 - Phi(artanh(0.97) / s)), artanh(0.97) = 2.0923
    assert round(act.predicted_saturated_fraction(1.0, "tanh"), 3) == 0.036
    assert round(act.predicted_saturated_fraction(2.0, "tanh"), 3) == 0.295
    assert act.predicted_saturated_fraction(3.0, "relu") == 0.5
    # sigmoid saturates later: logit(0.97) = 3.476 > artanh(0.97)
    assert act.predicted_saturated_fraction(2.0, "sigmoid") < act.predicted_saturated_fraction(2.0, "tanh")
    many = act.predicted_saturated_fraction(np.array([1.0, 2.0]), "tanh")
    assert many.shape == (2,)
    np.testing.assert_allclose(many, [act.predicted_saturated_fraction(1.0, "tanh"),
                                      act.predicted_saturated_fraction(2.0, "tanh")])


@pytest.mark.parametrize("kind", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0, 5.0])
def test_predicted_saturated_fraction_agrees_with_simulation(rng, kind, scale):
    n = 200_000
    z = rng.standard_normal(n) * scale
    simulated = act.saturated_fraction(act.get_activation(kind).fn(z), kind)
    p = act.predicted_saturated_fraction(scale, kind)
    # the simulated fraction is a binomial proportion with std sqrt(p (1 - p) / n) <= 1.2e-3;
    # 6 standard deviations (plus a floor for p ~ 0) fail a correct formula with prob ~ 2e-9
    tol = 6 * math.sqrt(p * (1 - p) / n) + 1e-5
    assert abs(simulated - p) <= tol, f"{kind} at scale {scale}: simulated {simulated:.4f}, predicted {p:.4f}"


# --------------------------------------------------------------------------- errors

BAD_CALLS = [
    (lambda: act.sigmoid("abc"), TypeError, "sigmoid: z"),
    (lambda: act.tanh(np.array([1 + 2j])), TypeError, "tanh: z"),
    (lambda: act.relu(np.array([])), ValueError, "relu: z must not be empty"),
    (lambda: act.leaky_relu(np.ones(2), slope=-0.1), ValueError, "leaky_relu: slope"),
    (lambda: act.leaky_relu_grad(np.ones(2), slope="a"), TypeError, "leaky_relu_grad: slope"),
    (lambda: act.get_activation("swish"), ValueError, "'relu'"),
    (lambda: act.get_activation(3), TypeError, "get_activation: name"),
    (lambda: act.saturated_fraction(np.ones(3), "swish"), ValueError, "saturated_fraction: kind"),
    (lambda: act.saturated_fraction(np.ones(3), "tanh", threshold=1.5), ValueError, "threshold"),
    (lambda: act.saturated_fraction(np.ones(3), "sigmoid", threshold=0.3), ValueError, "threshold"),
    (lambda: act.predicted_saturated_fraction(0.0, "tanh"), ValueError, "predicted_saturated_fraction: scale"),
    (lambda: act.predicted_saturated_fraction(np.array([1.0, -1.0]), "tanh"), ValueError, "scale"),
    (lambda: act.predicted_saturated_fraction(1.0, "gelu"), ValueError, "kind"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc, match=None) as info:
        call()
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_table_kernels_match_the_public_functions_bit_for_bit(rng, name, dtype):
    a = act.ACTIVATIONS[name]
    z = (rng.standard_normal(500) * 8).astype(dtype)
    z[:3] = 0.0
    out = a.forward(z)
    np.testing.assert_array_equal(out, a.fn(z))
    da = rng.standard_normal(500).astype(dtype)
    # what a backward pass computes from its cache: the derivative at z, taken from the output a
    np.testing.assert_array_equal(da * a.grad_from_output(out), da * a.grad(z))


@pytest.mark.parametrize("name", ["tanh", "relu", "leaky_relu", "identity"])
def test_second_moment_factor_matches_a_simulation(name):
    # c_f = E[f(z)^2] / Var(z) = E[f'(z)^2] for z ~ N(0, v); tanh at a small v (its linear regime)
    a = act.ACTIVATIONS[name]
    v = 1e-4 if name == "tanh" else 4.0
    z = np.random.default_rng(0).normal(0.0, math.sqrt(v), 400_000)
    assert np.mean(a.fn(z) ** 2) / v == pytest.approx(a.second_moment, rel=0.01)    # 400k draws: ~0.3% spread
    assert np.mean(a.grad(z) ** 2) == pytest.approx(a.second_moment, rel=0.01)
    assert act.ACTIVATIONS["sigmoid"].second_moment is None  # mean 1/2: the zero-mean argument does not apply
