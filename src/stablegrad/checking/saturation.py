"""Checks for exercise 2, saturation: activations, their derivatives, saturated fractions, on the engine.

Each graded function has a learner-style source, its common mistakes as edits of it, a declaration and a
one-line ``check_<function>``; the case builders (``array_case``, ``huge_case``, ``tail_case``,
``saturation_case``...) are public so that hidden tests draw fresh inputs. Beyond the reference, entry by entry:

* ``sigmoid`` fails when NumPy warns while it runs: the naive ``1 / (1 + exp(-z))`` returns the right numbers
  for ``z = -1e4`` but overflows on the way (and the same overflow in a derivative gives ``nan``). Its tolerance
  is per entry with no floor, so the tiny negative tail (``sigmoid(-40) = 4e-18``) must be right too: a clipped
  ``z`` or a cancelling ``1 - s`` fails.
* ``predicted_saturated_fraction`` also meets a simulation (Gaussian pre-activations pushed through the
  activation and counted) at settings that are not among its cases.

>>> from stablegrad.checking import saturation as checks
>>> checks.check_sigmoid(my_sigmoid)                          # doctest: +SKIP
sigmoid: all 7 checks passed
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from stablegrad import activations
from stablegrad.checking.comparison import Out, Tolerance
from stablegrad.checking.engine import Case, Graded, Mistake, Problem, Property
from stablegrad.checking.errors import NumericalWarningError, StatisticalTestError

__all__ = [
    "NumericalWarningError", "StatisticalTestError", "SimulationMismatchError", "array_case", "huge_case",
    "tail_case", "values_case", "saturation_case", "activations_case", "predicted_case", "sigmoid_cases",
    "sigmoid_grad_cases", "tanh_grad_cases", "relu_grad_cases", "leaky_relu_cases", "saturated_fraction_cases",
    "predicted_saturated_fraction_cases", "check_sigmoid", "check_sigmoid_grad", "check_tanh_grad",
    "check_relu_grad", "check_leaky_relu", "check_leaky_relu_grad", "check_saturated_fraction",
    "check_predicted_saturated_fraction", "SIGMOID", "SIGMOID_GRAD", "TANH_GRAD", "RELU_GRAD", "LEAKY_RELU",
    "LEAKY_RELU_GRAD", "SATURATED_FRACTION", "PREDICTED_SATURATED_FRACTION", "DECLARATIONS", "SIMULATION_SIZE",
]

SimulationMismatchError = StatisticalTestError   # its name before the engine had statistical tests

NAMESPACE = {"np": np, "math": math, "activations": activations}   # the notebook's import cell


# =========================================================================== inputs

#: |z| values where a naive sigmoid overflows: exp(-z) is inf below -709.8 in float64, -88.7 in float32.
HUGE = (1e4, 1e3, 710.0, 100.0, 89.0, 30.0, 1.0, 1e-3, 0.0)
#: |z| far in the tails, where the sigmoid is tiny but a normal number: no overflow yet, every digit counts.
TAILS = {np.dtype(np.float64): (700.0, 100.0, 40.0), np.dtype(np.float32): (85.0, 60.0, 40.0)}


def _slope(slope: float | None) -> tuple[dict, str]:
    return ({}, "") if slope is None else ({"slope": slope}, f", slope={slope:g}")


def array_case(rng: np.random.Generator, shape: tuple, *, scale: float = 1.0, dtype=np.float64,
               zeros: int = 0, slope: float | None = None) -> Case:
    """A ``z`` of the given shape: ``scale`` times standard normal, with ``zeros`` entries set to exactly 0.

    ``slope`` (for the leaky relu functions) is passed as a keyword when given.
    """
    dtype = np.dtype(dtype)
    z = (scale * rng.standard_normal(shape)).astype(dtype)
    if zeros:
        flat = z.reshape(-1)
        flat[rng.choice(flat.size, size=min(zeros, flat.size), replace=False)] = 0
    kwargs, more = _slope(slope)
    label = (f"z ~ {scale:g} N(0, 1) of shape {tuple(shape)}, {dtype.name}"
             + (f", {zeros} entries exactly 0" if zeros else "") + more)
    return Case(label, (z,), kwargs, ("z",))


def values_case(values: Sequence[float], dtype=np.float64, *, slope: float | None = None) -> Case:
    """``z`` holding exactly these values."""
    dtype = np.dtype(dtype)
    kwargs, more = _slope(slope)
    shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if len(values) > 8 else "")
    return Case(f"z = {shown} in {dtype.name}{more}", (np.array(values, dtype=dtype),), kwargs, ("z",))


def huge_case(dtype=np.float64, *, slope: float | None = None) -> Case:
    """``z`` = +-(1e4, 1e3, 710, 100, 89, 30, 1, 1e-3) and 0: where a naive sigmoid overflows."""
    pos = np.array(HUGE)
    return values_case(np.concatenate([-pos, pos[::-1][1:]]), dtype, slope=slope)


def tail_case(dtype=np.float64) -> Case:
    """``z`` = -700, -100, -40 (float64) or -85, -60, -40 (float32), their negatives, and 0.

    The sigmoid there is tiny (4e-18 at -40, 1e-304 at -700) but not 0, and no
    exponential overflows yet: each entry must be right to its own relative tolerance.
    """
    pos = TAILS[np.dtype(dtype)]
    return values_case([-p for p in pos] + [0.0] + list(pos[::-1]), dtype)


def saturation_case(rng: np.random.Generator, kind: str, scale: float, shape: tuple, *,
                    threshold: float | None = None, shift: float = 0.0, dtype=np.float64) -> Case:
    """Activations ``a = f(z)`` of ``z ~ N(shift, scale^2)`` for ``saturated_fraction(a, kind, threshold)``."""
    dtype = np.dtype(dtype)
    z = shift + scale * rng.standard_normal(shape)
    a = activations.get_activation(kind).fn(z).astype(dtype)
    return _fraction_case(a, kind, threshold, f"{kind} activations of z ~ N({shift:g}, {scale:g}^2), "
                                              f"shape {tuple(shape)}")


def activations_case(values: Sequence[float], kind: str, threshold: float | None = None, *,
                     dtype=np.float64, why: str = "") -> Case:
    """Activations ``a`` holding exactly these values, for ``saturated_fraction(a, kind, threshold)``."""
    shown = ", ".join(f"{v:g}" for v in values)
    return _fraction_case(np.array(values, dtype=dtype), kind, threshold,
                          f"{kind} activations {shown}" + (f" ({why})" if why else ""))


def _fraction_case(a: np.ndarray, kind: str, threshold: float | None, label: str) -> Case:
    args = (a, kind) if threshold is None else (a, kind, threshold)
    label += (f", threshold {threshold:g}" if threshold is not None else ", default threshold")
    label += ", float32" if a.dtype == np.float32 else ""
    return Case(label, args, {}, ("a", "kind", "threshold")[:len(args)])


def predicted_case(scale: float, kind: str, threshold: float | None = None) -> Case:
    """Arguments ``(scale, kind[, threshold])`` for ``predicted_saturated_fraction``."""
    args = (float(scale), kind) if threshold is None else (float(scale), kind, float(threshold))
    label = (f"scale {scale:g}, kind {kind!r}, "
             + (f"threshold {threshold:g}" if threshold is not None else "default threshold"))
    return Case(label, args, {}, ("scale", "kind", "threshold")[:len(args)])


# =========================================================================== declarations

def _elementwise(name: str, reference: Callable, source: str, visible: Callable, shown: str,
                 mistakes: Sequence[Mistake], registry: tuple[str, str], **options) -> Graded:
    """An activation or derivative: z of any shape in, a new array of its shape and dtype out.

    ``registry = (kind, field)`` names the registry's copy of the same computation
    (``ACTIVATIONS["sigmoid"].grad_from_output``, which ``layers.activation_backward``
    uses), forbidden along with the reference.
    """
    copy = getattr(activations.ACTIVATIONS[registry[0]], registry[1], None)
    return Graded(name=name, reference=reference, source=source, visible=visible, namespace=NAMESPACE,
                  outputs=Out(shown, like="z"), check_dtype=True, new_arrays=True, mistakes=mistakes,
                  forbid=[reference] + ([copy] if callable(copy) else []), **options)


# --------------------------------------------------------------------------- sigmoid

def sigmoid_cases(seed: int = 0) -> list[Case]:
    """Visible cases for ``sigmoid``: moderate, far-tail and huge |z|, float64 and float32."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (6,)),
        array_case(rng, (3, 4), scale=10.0),
        array_case(rng, (2, 3, 2), scale=5.0, dtype=np.float32),
        tail_case(np.float64),             # the text: tiny values must keep their digits
        tail_case(np.float32),
        huge_case(np.float64),             # the text: no warning for |z| up to 1e4
        huge_case(np.float32),
    ]


SIGMOID_SOURCE = """
def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
"""

SIGMOID = _elementwise(
    "sigmoid", activations.sigmoid, SIGMOID_SOURCE, sigmoid_cases, "sigmoid(z)",
    # far in the negative tail sigmoid(z) is tiny (4e-18 at z = -40) and must be right on its own scale
    tolerance=Tolerance(floor=0.0), quiet_numpy=False,
    registry=("sigmoid", "forward"),
    mistakes=[
        Mistake("1 / (1 + exp(-z)) is computed as written, and exp(-z) overflows once -z > 709.8 in "
                "float64 (88.7 in float32)",
                source="def sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-z))\n"),
        Mistake("np.where evaluates both of its formulas for every entry, and one of them overflows",
                edit=("1.0 / (1.0 + e), e / (1.0 + e)",
                      "1.0 / (1.0 + np.exp(-z)), np.exp(z) / (1.0 + np.exp(z))")),
        Mistake("exp(z) / (1 + exp(z)) is inf / inf = nan for large positive z",
                source="def sigmoid(z):\n    e = np.exp(z)\n    return e / (1.0 + e)\n"),
        Mistake("z is converted to float64 (float32 in, float64 out)",
                edit=("    e = np.exp(", "    z = np.asarray(z, dtype=np.float64)\n    e = np.exp(")),
        Mistake("the two branches are swapped (this is sigmoid(-z) = 1 - sigmoid(z))",
                edit=("1.0 / (1.0 + e), e / (1.0 + e)", "e / (1.0 + e), 1.0 / (1.0 + e)")),
        Mistake("z is clipped before the formula, so every entry beyond the clip gets the clip's value "
                "(sigmoid(-40) is 4e-18, sigmoid(-30) is 9e-14)",
                edit=("    e = np.exp(", "    z = np.clip(z, -30, 30)\n    e = np.exp(")),
        Mistake("the negative side is 1 minus a number close to 1, which cancels to 0 far in the tail "
                "(sigmoid(-40) is 4e-18, not 0)",
                edit=("e / (1.0 + e))", "1.0 - 1.0 / (1.0 + e))")),
    ])


check_sigmoid = SIGMOID.checker(
    "Check a learner's overflow-safe ``sigmoid(z)``: each entry to its own tolerance, no NumPy warning.")


# --------------------------------------------------------------------------- sigmoid_grad and tanh_grad

def sigmoid_grad_cases(seed: int = 1) -> list[Case]:
    """Visible cases for ``sigmoid_grad``: moderate and huge |z|, float32."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (7,)),
        array_case(rng, (4, 3), scale=6.0),
        array_case(rng, (5,), scale=2.0, dtype=np.float32),
        huge_case(np.float64),             # the text: finite for |z| up to 1e4
        huge_case(np.float32),
    ]


SIGMOID_GRAD_SOURCE = """
def sigmoid_grad(z):
    s = activations.sigmoid(z)
    return s * (1.0 - s)
"""

SIGMOID_GRAD = _elementwise(
    "sigmoid_grad", activations.sigmoid_grad, SIGMOID_GRAD_SOURCE, sigmoid_grad_cases, "sigmoid'(z)",
    # the text asks for activations.sigmoid; an answer that uses its own part-1 sigmoid is graded on its own
    substitute={"sigmoid": activations.sigmoid},
    registry=("sigmoid", "grad_from_output"),
    mistakes=[
        Mistake("the sigmoid itself, s, is returned instead of its derivative",
                edit=("return s * (1.0 - s)", "return s")),
        Mistake("only the factor 1 - s is returned", edit=("return s * (1.0 - s)", "return 1.0 - s")),
        Mistake("tanh's derivative 1 - s^2 is used with the sigmoid's s", edit=("s * (1.0 - s)", "1.0 - s * s")),
        Mistake("exp(-z) / (1 + exp(-z))^2 is inf / inf = nan for large negative z",
                source="def sigmoid_grad(z):\n    return np.exp(-z) / (1.0 + np.exp(-z)) ** 2\n"),
        Mistake("the derivative is evaluated at the output a = sigmoid(z) instead of at z",
                edit=("activations.sigmoid(z)", "activations.sigmoid(activations.sigmoid(z))")),
    ])


check_sigmoid_grad = SIGMOID_GRAD.checker(
    "Check a learner's ``sigmoid_grad(z)`` against :func:`stablegrad.activations.sigmoid_grad`.")


def tanh_grad_cases(seed: int = 2) -> list[Case]:
    """Visible cases for ``tanh_grad``."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (7,)),
        array_case(rng, (3, 5), scale=3.0),
        array_case(rng, (4,), scale=0.5, dtype=np.float32),
        huge_case(np.float64),
        huge_case(np.float32),
    ]


TANH_GRAD_SOURCE = """
def tanh_grad(z):
    t = np.tanh(z)
    return 1.0 - t * t
"""

TANH_GRAD = _elementwise(
    "tanh_grad", activations.tanh_grad, TANH_GRAD_SOURCE, tanh_grad_cases, "tanh'(z)",
    registry=("tanh", "grad_from_output"),
    mistakes=[
        Mistake("tanh(z) is not squared (1 - tanh(z))", edit=("1.0 - t * t", "1.0 - t")),
        Mistake("the formula is applied to z itself, without tanh (1 - z^2)", edit=("t = np.tanh(z)", "t = z")),
        Mistake("the difference is squared, (1 - tanh(z))^2, instead of tanh(z)",
                edit=("1.0 - t * t", "(1.0 - t) ** 2")),
        Mistake("the sigmoid's formula t (1 - t) is used for tanh", edit=("1.0 - t * t", "t * (1.0 - t)")),
        Mistake("the derivative is evaluated at the output a = tanh(z) instead of at z",
                edit=("np.tanh(z)", "np.tanh(np.tanh(z))")),
    ])


check_tanh_grad = TANH_GRAD.checker(
    "Check a learner's ``tanh_grad(z)`` against :func:`stablegrad.activations.tanh_grad`.")


# --------------------------------------------------------------------------- relu and leaky relu

def relu_grad_cases(seed: int = 3) -> list[Case]:
    """Visible cases for ``relu_grad``, with exact zeros (where relu'(0) = 0 by convention)."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (8,), zeros=2),
        array_case(rng, (3, 4), scale=3.0),
        array_case(rng, (2, 5), dtype=np.float32, zeros=3),
    ]


RELU_GRAD_SOURCE = """
def relu_grad(z):
    return (z > 0).astype(z.dtype)
"""

RELU_GRAD = _elementwise(
    "relu_grad", activations.relu_grad, RELU_GRAD_SOURCE, relu_grad_cases, "relu'(z)",
    registry=("relu", "grad_from_output"),
    mistakes=[
        Mistake("z itself is returned, not the 0/1 derivative", edit=("(z > 0).astype(z.dtype)", "z")),
        Mistake("relu(z) = max(z, 0) is returned, not its derivative",
                edit=("(z > 0).astype(z.dtype)", "np.maximum(z, 0)")),
        Mistake("relu'(0) is taken to be 1 (z >= 0), where this course uses 0", edit=("z > 0", "z >= 0")),
        Mistake("a boolean array comes back instead of numbers of z's dtype",
                edit=("(z > 0).astype(z.dtype)", "z > 0")),
        Mistake("the result is built from Python floats with np.where, which gives float64 for float32 z",
                edit=("(z > 0).astype(z.dtype)", "np.where(z > 0, 1.0, 0.0)")),
    ])


check_relu_grad = RELU_GRAD.checker(
    "Check a learner's ``relu_grad(z)``: 1 where z > 0, else 0 (also at exactly 0), in z's dtype.")


def leaky_relu_cases(seed: int = 4) -> list[Case]:
    """Visible cases for ``leaky_relu`` and ``leaky_relu_grad``: default and explicit slopes, zeros."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (8,), zeros=2),
        array_case(rng, (3, 4), scale=3.0, slope=0.2),
        array_case(rng, (2, 5), dtype=np.float32, zeros=2, slope=0.05),
    ]


LEAKY_RELU_SOURCE = """
def leaky_relu(z, slope=0.01):
    return np.where(z > 0, z, slope * z)
"""

LEAKY_RELU = _elementwise(
    "leaky_relu", activations.leaky_relu, LEAKY_RELU_SOURCE, leaky_relu_cases, "leaky_relu(z)",
    registry=("leaky_relu", "forward"),
    mistakes=[
        Mistake("the slope is applied on the positive side", edit=("z, slope * z)", "slope * z, z)")),
        Mistake("the slope argument is ignored (always 0.01)", edit=("slope * z)", "0.01 * z)")),
        Mistake("z <= 0 gives the constant slope, not slope * z", edit=("slope * z)", "slope)")),
        Mistake("nothing leaks for z <= 0 (this is relu)",
                edit=("np.where(z > 0, z, slope * z)", "np.maximum(z, 0)")),
        Mistake("the caller's z is changed in place",
                edit=("    return np.where(z > 0, z, slope * z)", "    z[z <= 0] *= slope\n    return z")),
    ])


check_leaky_relu = LEAKY_RELU.checker(
    "Check a learner's ``leaky_relu(z, slope=0.01)`` against :func:`stablegrad.activations.leaky_relu`.")


LEAKY_RELU_GRAD_SOURCE = """
def leaky_relu_grad(z, slope=0.01):
    return np.where(z > 0, 1.0, slope).astype(z.dtype)
"""

LEAKY_RELU_GRAD = _elementwise(
    "leaky_relu_grad", activations.leaky_relu_grad, LEAKY_RELU_GRAD_SOURCE, lambda: leaky_relu_cases(seed=6),
    "leaky_relu'(z)",
    registry=("leaky_relu", "grad_from_output"),
    mistakes=[
        Mistake("the slope is applied on the positive side (slope for z > 0, 1 for z <= 0)",
                edit=("1.0, slope)", "slope, 1.0)")),
        Mistake("the derivative at z = 0 is taken to be 1 (z >= 0), where this course uses slope",
                edit=("z > 0", "z >= 0")),
        Mistake("the slope argument is ignored (always 0.01)", edit=("1.0, slope)", "1.0, 0.01)")),
        Mistake("relu's derivative is returned: 0, not slope, for z <= 0",
                edit=("np.where(z > 0, 1.0, slope)", "(z > 0)")),
        Mistake("leaky_relu(z) itself is returned, not its derivative",
                edit=("np.where(z > 0, 1.0, slope).astype(z.dtype)", "np.where(z > 0, z, slope * z)")),
    ])


check_leaky_relu_grad = LEAKY_RELU_GRAD.checker(
    "Check a learner's ``leaky_relu_grad(z, slope=0.01)``: 1 where z > 0, else slope (also at 0).")


# --------------------------------------------------------------------------- saturated_fraction

def saturated_fraction_cases(seed: int = 5) -> list[Case]:
    """Visible cases: three kinds, two thresholds, values exactly at t, tiny positive relu outputs."""
    rng = np.random.default_rng(seed)
    return [
        saturation_case(rng, "tanh", 2.0, (40, 10)),
        saturation_case(rng, "tanh", 1.0, (200,), threshold=0.9),
        saturation_case(rng, "sigmoid", 4.0, (30, 20)),
        saturation_case(rng, "sigmoid", 3.0, (100,), threshold=0.9, shift=3.0),
        saturation_case(rng, "relu", 1.0, (25, 8)),
        activations_case([0.97, -0.97, 0.975, -0.99, 0.5, 0.0, 0.96, 1.0], "tanh",
                         why="exactly at the threshold is not saturated: the test is |a| > t"),
        activations_case([0.97, 0.5, 0.999, 0.02, 0.96], "sigmoid",
                         why="exactly at the threshold is not saturated: the test is a > t"),
        activations_case([0.0, 1e-9, 0.0, 1e-300, 2.5, 1e-12, 0.0, 0.3], "relu",
                         why="tiny but positive outputs are active units: only a == 0 is inactive"),
    ]


SATURATED_FRACTION_SOURCE = """
def saturated_fraction(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a == 0))
    if kind == "tanh":
        return float(np.mean(np.abs(a) > threshold))
    return float(np.mean((a > threshold) | (a < 1.0 - threshold)))
"""

_TANH_RULE, _SIGMOID_RULE = "np.abs(a) > threshold", "(a > threshold) | (a < 1.0 - threshold)"

SATURATED_FRACTION = Graded(
    name="saturated_fraction", reference=activations.saturated_fraction, source=SATURATED_FRACTION_SOURCE,
    visible=saturated_fraction_cases, namespace=NAMESPACE, outputs=Out("the fraction"),
    tolerance=Tolerance(rtol=1e-12, per_entry=False),   # one number, a count over a size: only rounding may differ
    mistakes=[
        Mistake("the threshold is applied to the pre-activation z (recovered as artanh(a) or logit(a)) "
                "instead of to the activation a",
                edit=((_TANH_RULE, "np.abs(np.arctanh(a)) > threshold"),
                      (_SIGMOID_RULE, "np.abs(np.log(a / (1.0 - a))) > threshold"))),
        Mistake("the activation is applied to a again, as if a were the pre-activation",
                edit=((_TANH_RULE, "np.abs(np.tanh(a)) > threshold"),
                      ("np.mean((a > threshold)", "np.mean((activations.sigmoid(a) > threshold)"),
                      ("(a < 1.0 - threshold)", "(activations.sigmoid(a) < 1.0 - threshold)"))),
        Mistake("values exactly at the threshold are counted (>= instead of >)",
                edit=((_TANH_RULE, "np.abs(a) >= threshold"),
                      (_SIGMOID_RULE, "(a >= threshold) | (a <= 1.0 - threshold)"))),
        Mistake("only the upper tail a > t is counted, not the lower one",
                edit=((_TANH_RULE, "a > threshold"), (_SIGMOID_RULE, "a > threshold"))),
        Mistake("tanh's rule |a| > t is used for the sigmoid, whose lower tail is a < 1 - t",
                edit=(_SIGMOID_RULE, _TANH_RULE)),
        Mistake("relu units are counted as inactive when a < 0, which a relu output never is",
                edit=("a == 0", "a < 0")),
        Mistake("a tolerance around 0 counts tiny positive relu outputs (such as 1e-9) as inactive",
                edit=("a == 0", "np.isclose(a, 0)")),
        Mistake("the number of saturated entries is returned instead of their fraction",
                edit=(("float(np.mean(a == 0))", "float(np.sum(a == 0))"),
                      ("float(np.mean(np.abs", "float(np.sum(np.abs"),
                      ("float(np.mean((a", "float(np.sum((a"))),
    ])


check_saturated_fraction = SATURATED_FRACTION.checker(
    "Check a learner's ``saturated_fraction(a, kind, threshold=0.97)`` (a float).")


# --------------------------------------------------------------------------- predicted_saturated_fraction

def predicted_saturated_fraction_cases() -> list[Case]:
    """Visible cases for ``predicted_saturated_fraction``."""
    return [
        predicted_case(1.0, "tanh"),
        predicted_case(2.0, "tanh"),
        predicted_case(0.5, "tanh", 0.9),
        predicted_case(3.0, "sigmoid"),
        predicted_case(1.5, "sigmoid", 0.95),
        predicted_case(2.0, "relu"),
    ]


#: Samples per setting in the simulation: the binomial standard error is at most 0.5 / sqrt(n) = 0.0011.
SIMULATION_SIZE = 200_000
#: (scale, kind, threshold) where the closed form meets a simulation; none is a visible case.
SIMULATED = ((1.3, "tanh", 0.97), (0.6, "tanh", 0.8), (2.5, "sigmoid", 0.97), (6.0, "sigmoid", 0.95),
             (0.7, "relu", 0.97))


def _simulated_fraction(scale: float, kind: str, threshold: float, rng: np.random.Generator):
    """Saturated fraction of ``SIMULATION_SIZE`` pre-activations ``z ~ N(0, scale^2)``, and its standard error."""
    z = scale * rng.standard_normal(SIMULATION_SIZE)
    p = activations.saturated_fraction(activations.get_activation(kind).fn(z), kind, threshold)
    return p, math.sqrt(max(p * (1.0 - p), 1.0 / SIMULATION_SIZE) / SIMULATION_SIZE)


def _agrees_with_simulation(call) -> Problem | None:
    """The closed form lies within 5 standard errors of a simulated fraction at every setting of SIMULATED."""
    rng = np.random.default_rng(0)
    for scale, kind, threshold in SIMULATED:
        simulated, se = _simulated_fraction(scale, kind, threshold, rng)
        got = call(scale, kind, threshold, names=("scale", "kind", "threshold"))
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (float, int, np.floating, np.integer)):
            return Problem("type", "the predicted fraction", f"is a {type(got).__name__}; expected a float")
        if not abs(float(got) - simulated) <= 5.0 * se:
            # the number is the evidence: only a mistake giving the same number is named
            return Problem("statistics", f"the fraction at scale {scale:g}, kind {kind!r}, threshold {threshold:g}",
                           f"is {float(got):.6g}, far from a simulation of {SIMULATION_SIZE} pre-activations "
                           f"z ~ N(0, {scale:g}^2), which measures {simulated:.6g} (standard error {se:.2g}; "
                           f"{abs(float(got) - simulated) / se:.0f} standard errors apart)",
                           evidence=f"{float(got):.6g}")   # equal to 6 digits: rounding aside
    return None


PREDICTED_SATURATED_FRACTION_SOURCE = """
def predicted_saturated_fraction(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    if kind == "tanh":
        cutoff = math.atanh(threshold)
    else:
        cutoff = math.log(threshold / (1.0 - threshold))
    return math.erfc(cutoff / scale / math.sqrt(2.0))
"""

_TANH_CUTOFF, _SIGMOID_CUTOFF = "cutoff = math.atanh(threshold)", "cutoff = math.log(threshold / (1.0 - threshold))"

PREDICTED_SATURATED_FRACTION = Graded(
    name="predicted_saturated_fraction", reference=activations.predicted_saturated_fraction,
    source=PREDICTED_SATURATED_FRACTION_SOURCE, visible=predicted_saturated_fraction_cases,
    namespace=NAMESPACE, outputs=Out("the predicted fraction"),
    # 1 - Phi and erfc agree to 1e-16 in absolute terms, not relatively far in the tail (3e-12 at s = 0.3)
    tolerance=Tolerance(rtol=1e-6, atol=1e-12, per_entry=False),   # one number
    properties=[Property(f"agrees with a simulation of {SIMULATION_SIZE} Gaussian pre-activations at "
                         f"{len(SIMULATED)} other settings", _agrees_with_simulation)],
    mistakes=[
        Mistake("the cutoff is divided by the variance s^2 where the standard deviation s belongs",
                edit=("cutoff / scale /", "cutoff / scale ** 2 /")),
        Mistake("only one tail of the Gaussian is counted (the factor 2 is missing)",
                edit=("return math.erfc(", "return 0.5 * math.erfc(")),
        Mistake("the threshold t on the activation is used as the cutoff on z",
                edit=((_TANH_CUTOFF, "cutoff = threshold"), (_SIGMOID_CUTOFF, "cutoff = threshold"))),
        Mistake("tanh's cutoff artanh(t) is used for the sigmoid too, whose cutoff is logit(t)",
                edit=(_SIGMOID_CUTOFF, _TANH_CUTOFF)),
        Mistake("the cutoff is multiplied by the scale instead of divided by it",
                edit=("cutoff / scale /", "cutoff * scale /")),
        Mistake("Phi(c / s), the probability below the cutoff, is used where the tail 1 - Phi(c / s) belongs",
                edit=("return math.erfc(", "return 2.0 - math.erfc(")),
        Mistake("relu is taken never to saturate, although half of N(0, s^2) pre-activations are negative",
                edit=("return 0.5", "return 0.0")),
    ])


check_predicted_saturated_fraction = PREDICTED_SATURATED_FRACTION.checker(
    "Check a learner's closed form ``predicted_saturated_fraction(scale, kind, threshold=0.97)``. Against "
    ":func:`stablegrad.activations.predicted_saturated_fraction` on the cases, then against a simulation at the "
    "settings of :data:`SIMULATED`.")


DECLARATIONS = [SIGMOID, SIGMOID_GRAD, TANH_GRAD, RELU_GRAD, LEAKY_RELU, LEAKY_RELU_GRAD, SATURATED_FRACTION,
                PREDICTED_SATURATED_FRACTION]
