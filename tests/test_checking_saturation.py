"""stablegrad.checking.saturation: the exercise 2 checks pass right answers and fail wrong ones, naming the cause.

Every declaration's learner-style source passes; every catalogued mistake fails with its cause in the
message; wrong answers written independently of the catalogue fail too; and the holes found by grading
wrong answers for real (issue 11) stay closed: a sigmoid with z clipped to +-30, a relu saturated
fraction with np.isclose(a, 0), NumPy overflow warnings, and the closed form against a simulation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stablegrad.checking import errors, saturation as sat
from stablegrad.checking.engine import run

MISTAKES = [pytest.param(decl, m, id=f"{decl.name}:{m.cause[:50]}") for decl in sat.DECLARATIONS
            for m in decl.mistakes]


def compiled(decl, source: str):
    """A learner's answer written as source in the notebook's namespace."""
    return decl.compile(source)


# --------------------------------------------------------------------------- right answers pass

@pytest.mark.parametrize("decl", sat.DECLARATIONS, ids=lambda d: d.name)
def test_the_learner_style_source_passes_and_the_check_returns_nothing(decl, capsys):
    check = getattr(sat, f"check_{decl.name}")
    assert check(decl.compile(decl.source)) is None   # a number would be read by nbgrader as partial credit
    out = capsys.readouterr().out
    assert f"{decl.name}: all" in out and "  ok  " in out


RIGHT_ANSWERS = [
    (sat.SIGMOID, "def sigmoid(z):\n    return np.exp(-np.logaddexp(0, -z))\n"),
    (sat.SIGMOID, "def sigmoid(z):\n    out = np.empty_like(z)\n    pos = z >= 0\n    out[pos] = 1 / (1 + np.exp(-z[pos]))"
                  "\n    e = np.exp(z[~pos])\n    out[~pos] = e / (1 + e)\n    return out\n"),
    (sat.SIGMOID_GRAD, "def sigmoid_grad(z):\n    s = activations.sigmoid(z)\n    return s - s * s\n"),
    (sat.TANH_GRAD, "def tanh_grad(z):\n    return 1.0 / np.cosh(z) ** 2\n"),     # warns (cosh overflows): allowed here
    (sat.RELU_GRAD, "def relu_grad(z):\n    return np.heaviside(z, 0).astype(z.dtype)\n"),
    (sat.LEAKY_RELU, "def leaky_relu(z, slope=0.01):\n    return np.maximum(z, slope * z)\n"),
    (sat.SATURATED_FRACTION, "def saturated_fraction(a, kind, threshold=0.97):\n"
                             "    if kind == 'relu':\n        return np.count_nonzero(a == 0) / a.size\n"
                             "    lower = -threshold if kind == 'tanh' else 1 - threshold\n"
                             "    return float(((a > threshold) | (a < lower)).sum() / a.size)\n"),
    (sat.PREDICTED_SATURATED_FRACTION,   # 1 - Phi instead of erfc: the text allows it
     "def predicted_saturated_fraction(scale, kind, threshold=0.97):\n    if kind == 'relu':\n        return 0.5\n"
     "    c = math.atanh(threshold) if kind == 'tanh' else math.log(threshold / (1 - threshold))\n"
     "    return 2 * (1 - 0.5 * (1 + math.erf(c / scale / math.sqrt(2))))\n"),
]


@pytest.mark.parametrize("decl, source", RIGHT_ANSWERS, ids=lambda x: getattr(x, "name", ""))
def test_right_answers_written_differently_pass(decl, source):
    assert run(decl, compiled(decl, source)).finding is None


def test_sigmoid_grad_is_graded_on_its_own_when_it_calls_the_learners_sigmoid():
    """One mistake costs one function: a wrong part-1 sigmoid does not fail sigmoid_grad."""
    scope = {"np": np}
    exec("def sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))\n\n"
         "def sigmoid_grad(z):\n    s = sigmoid(z)\n    return s * (1.0 - s)\n", scope)
    sat.check_sigmoid_grad(scope["sigmoid_grad"], quiet=True)
    with pytest.raises(errors.WrongValueError):
        sat.check_sigmoid(scope["sigmoid"], quiet=True)


# --------------------------------------------------------------------------- every mistake fails, named

@pytest.mark.parametrize("decl, mistake", MISTAKES)
def test_each_mistake_fails_with_its_cause_in_the_message(decl, mistake):
    with pytest.raises(errors.CheckFailure) as info:
        decl.check(decl.compile(decl.mistake_source(mistake)), quiet=True)
    message = str(info.value)
    assert "This matches a common mistake:" in message, message
    assert mistake.cause in message.split("This matches a common mistake:")[1], message
    assert "  case: " in message


@pytest.mark.parametrize("decl", sat.DECLARATIONS, ids=lambda d: d.name)
def test_delegating_and_unwritten_answers_fail(decl):
    with pytest.raises(errors.DelegationError):
        decl.check(decl.reference, quiet=True)

    def not_written(*args, **kwargs):
        raise NotImplementedError()
    with pytest.raises(errors.NotImplementedYetError):
        decl.check(not_written, quiet=True)


def _through_layers(name: str, kind: str) -> str:
    return (f"from stablegrad import layers\n\ndef {name}(z):\n    _, cache = layers.activation_forward(z, {kind!r})\n"
            f"    return layers.activation_backward(np.ones_like(z), cache)\n")


DELEGATIONS = [
    (sat.SIGMOID, "def sigmoid(z):\n    return activations.get_activation('sigmoid').fn(z)\n"),
    (sat.SIGMOID, "def sigmoid(z):\n    return activations.ACTIVATIONS['sigmoid'].forward(z)\n"),
    (sat.SIGMOID_GRAD, _through_layers("sigmoid_grad", "sigmoid")),
    (sat.TANH_GRAD, _through_layers("tanh_grad", "tanh")),
    (sat.RELU_GRAD, _through_layers("relu_grad", "relu")),
    (sat.LEAKY_RELU_GRAD, _through_layers("leaky_relu_grad", "leaky_relu")),
]


@pytest.mark.parametrize("decl, source", DELEGATIONS, ids=lambda x: getattr(x, "name", ""))
def test_delegating_through_the_registry_or_the_layers_fails(decl, source):
    """layers.activation_backward takes f'(z) from the registry's grad_from_output, not from the reference."""
    with pytest.raises(errors.DelegationError):
        decl.check(compiled(decl, source), quiet=True)


# --------------------------------------------------------------------------- wrong answers not in the catalogue

WRONG_ANSWERS = [
    (sat.SIGMOID, "sigmoid through tanh: cancels to 0 in the negative tail",
     "def sigmoid(z):\n    return 0.5 * (1.0 + np.tanh(0.5 * z))\n"),
    (sat.SIGMOID, "output clipped to [1e-7, 1 - 1e-7], as in many loss functions",
     "def sigmoid(z):\n    e = np.exp(-np.abs(z))\n"
     "    return np.clip(np.where(z >= 0, 1 / (1 + e), e / (1 + e)), 1e-7, 1 - 1e-7)\n"),
    (sat.SIGMOID, "z clipped to +-500 (no overflow in float64, but wrong far in the tail)",
     "def sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))\n"),
    (sat.SIGMOID, "float64 constants promote float32 z",
     "def sigmoid(z):\n    e = np.exp(-np.abs(z))\n    one = np.float64(1.0)\n"
     "    return np.where(z >= 0, one / (one + e), e / (one + e))\n"),
    (sat.SIGMOID, "the result written into z", "def sigmoid(z):\n    e = np.exp(-np.abs(z))\n"
     "    z[...] = np.where(z >= 0, 1 / (1 + e), e / (1 + e))\n    return z\n"),
    (sat.SIGMOID_GRAD, "z clipped before the reference sigmoid",
     "def sigmoid_grad(z):\n    s = activations.sigmoid(np.clip(z, -30, 30))\n    return s * (1 - s)\n"),
    (sat.TANH_GRAD, "float64 on the way for float32 z",
     "def tanh_grad(z):\n    return 1.0 - np.tanh(z.astype(np.float64)) ** 2\n"),
    (sat.TANH_GRAD, "sech written as 1 / cosh, not squared", "def tanh_grad(z):\n    return 1.0 / np.cosh(z)\n"),
    (sat.RELU_GRAD, "np.heaviside with 1 at zero", "def relu_grad(z):\n    return np.heaviside(z, 1.0).astype(z.dtype)\n"),
    (sat.RELU_GRAD, "np.sign: -1 for negative z", "def relu_grad(z):\n    return np.sign(z)\n"),
    (sat.LEAKY_RELU, "the negative side's sign flipped",
     "def leaky_relu(z, slope=0.01):\n    return np.where(z > 0, z, -slope * z)\n"),
    (sat.LEAKY_RELU_GRAD, "slope added everywhere",
     "def leaky_relu_grad(z, slope=0.01):\n    return ((z > 0) + slope).astype(z.dtype)\n"),
    (sat.SATURATED_FRACTION, "relu inactive below 1e-12",
     "def saturated_fraction(a, kind, threshold=0.97):\n    if kind == 'relu':\n        return float(np.mean(a < 1e-12))\n"
     "    if kind == 'tanh':\n        return float(np.mean(np.abs(a) > threshold))\n"
     "    return float(np.mean((a > threshold) | (a < 1 - threshold)))\n"),
    (sat.SATURATED_FRACTION, "relu inactive at or below float eps",
     "def saturated_fraction(a, kind, threshold=0.97):\n    if kind == 'relu':\n"
     "        return float(np.mean(a <= np.finfo(a.dtype).eps))\n"
     "    if kind == 'tanh':\n        return float(np.mean(np.abs(a) > threshold))\n"
     "    return float(np.mean((a > threshold) | (a < 1 - threshold)))\n"),
    (sat.PREDICTED_SATURATED_FRACTION, "sqrt(2) forgotten in erf",
     "def predicted_saturated_fraction(scale, kind, threshold=0.97):\n    if kind == 'relu':\n        return 0.5\n"
     "    c = math.atanh(threshold) if kind == 'tanh' else math.log(threshold / (1 - threshold))\n"
     "    return 1 - math.erf(c / scale)\n"),
]


@pytest.mark.parametrize("decl, why, source", WRONG_ANSWERS, ids=[w[1] for w in WRONG_ANSWERS])
def test_independent_wrong_answers_fail_the_visible_check(decl, why, source):
    with pytest.raises(errors.CheckFailure):
        decl.check(compiled(decl, source), quiet=True)


# --------------------------------------------------------------------------- the holes of issue 11

CLIPPED_SIGMOID = "def sigmoid(z):\n    z = np.clip(z, -30, 30)\n    return 1.0 / (1.0 + np.exp(-z))\n"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_sigmoid_clipped_to_30_fails_on_the_tail_case_of_each_dtype(dtype):
    """sigmoid(-40) = 4e-18 next to sigmoid(40) = 1: each entry counts on its own (Tolerance floor 0)."""
    assert sat.SIGMOID.tolerance.floor == 0
    with pytest.raises(errors.WrongValueError, match="yours 9.3576.e-14"):
        sat.check_sigmoid(compiled(sat.SIGMOID, CLIPPED_SIGMOID), [sat.tail_case(dtype)], quiet=True)


def test_the_sigmoid_cases_reach_the_tail_in_both_dtypes():
    visible = {c.label for c in sat.sigmoid_cases()}
    assert {sat.tail_case(np.float64).label, sat.tail_case(np.float32).label} <= visible
    assert {-40.0, -100.0, -700.0} <= set(sat.tail_case(np.float64).args[0])
    assert sat.tail_case(np.float32).args[0].dtype == np.float32


ISCLOSE_FRACTION = ("def saturated_fraction(a, kind, threshold=0.97):\n    if kind == 'relu':\n"
                    "        return float(np.mean(np.isclose(a, 0)))\n"
                    "    if kind == 'tanh':\n        return float(np.mean(np.abs(a) > threshold))\n"
                    "    return float(np.mean((a > threshold) | (a < 1 - threshold)))\n")


def test_np_isclose_for_relu_fails_visibly_and_on_hidden_like_cases():
    wrong = compiled(sat.SATURATED_FRACTION, ISCLOSE_FRACTION)
    with pytest.raises(errors.WrongValueError, match="tiny but positive"):
        sat.check_saturated_fraction(wrong, quiet=True)
    rng = np.random.default_rng(0)
    for scale, dtype in [(1e-8, np.float64), (1e-300, np.float64), (1e-20, np.float32)]:
        with pytest.raises(errors.WrongValueError):
            sat.check_saturated_fraction(wrong, [sat.saturation_case(rng, "relu", scale, (40,), dtype=dtype)],
                                         quiet=True)


def test_a_numpy_overflow_fails_the_sigmoid_even_with_right_values_and_the_check_leaks_no_warning():
    naive = compiled(sat.SIGMOID, "def sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-z))\n")
    assert sat.NumericalWarningError is errors.NumericalWarningError
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the check itself shows the learner no RuntimeWarning
        with pytest.raises(errors.NumericalWarningError) as info:
            sat.check_sigmoid(naive, quiet=True)
        with pytest.raises(errors.CheckFailure):
            sat.check_sigmoid_grad(compiled(sat.SIGMOID_GRAD, sat.SIGMOID_GRAD.mistake_source(
                sat.SIGMOID_GRAD.mistakes[3])), quiet=True)
    assert "overflow encountered in exp" in str(info.value) and "709.8" in str(info.value)


def test_the_closed_form_meets_a_simulation_at_settings_that_are_not_cases():
    assert sat.SimulationMismatchError is errors.StatisticalTestError
    cases = {c.args for c in sat.predicted_saturated_fraction_cases()}
    assert not cases & set(sat.SIMULATED)

    def off(scale, kind, threshold=0.97):           # 0.02 off everywhere (no case is run)
        return _closed(scale, kind, threshold) + 0.02

    with pytest.raises(errors.StatisticalTestError, match="standard errors apart"):
        sat.check_predicted_saturated_fraction(off, [], quiet=True)
    sat.check_predicted_saturated_fraction(lambda s, k, t=0.97: _closed(s, k, t), [], quiet=True)


def _closed(scale, kind, threshold):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1 - threshold))
    return math.erfc(c / scale / math.sqrt(2))


# --------------------------------------------------------------------------- cases as plain data

def _hidden_cases() -> list:
    """``(declaration, case)`` for every case the solution notebook's hidden-test cells build."""
    import nbformat

    from grading import REPO_ROOT
    nb = nbformat.read(REPO_ROOT / "solutions/ex02_saturation/ex02_saturation.ipynb", as_version=4)
    decls = {d.name: d for d in sat.DECLARATIONS}
    found = []
    for cell in nb.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            building, call = hidden.split("_checks.check_")
            scope = {"np": np}
            exec(building, scope)  # noqa: S102 - the course's own notebook
            found += [(decls[call.split("(")[0]], case) for case in scope["_cases"]]
    return found


def test_every_visible_and_hidden_case_and_its_expected_output_round_trip_as_plain_data():
    import json

    from stablegrad.checking.comparison import Tolerance, compare
    from stablegrad.checking.encoding import decode, encode

    def same_after_a_round_trip(x):
        return compare(decode(json.loads(json.dumps(encode(x)))), x, tol=Tolerance(rtol=0.0, floor=0.0),
                       check_dtype=True) is None

    hidden = _hidden_cases()
    assert len(hidden) >= 40 and {d.name for d, _ in hidden} == {d.name for d in sat.DECLARATIONS}
    for decl, case in [(d, c) for d in sat.DECLARATIONS for c in d.visible()] + hidden:
        assert same_after_a_round_trip((case.args, case.kwargs)), case.label
        assert same_after_a_round_trip(decl.reference(*case.args, **case.kwargs)), case.label
