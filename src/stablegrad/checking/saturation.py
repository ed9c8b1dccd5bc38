"""Checks for exercise 2 (saturation): activations, their derivatives, saturated fractions.

Each ``check_<function>`` compares a learner's function with the reference in
:mod:`stablegrad.activations` on seeded inputs (several shapes and scales,
float32 and float64, huge ``|z|``, exact zeros, values exactly at the
threshold) and names the common mistake a wrong answer matches. The
``*_case`` builders are public so that hidden tests can draw fresh inputs.

Two checks go beyond comparing values:

* :func:`check_sigmoid` also fails when NumPy *warns* while the learner's
  sigmoid runs (``overflow encountered in exp``): the naive
  ``1 / (1 + exp(-z))`` returns the right numbers for ``z = -1e4`` but
  overflows on the way, and the same overflow in a derivative gives ``nan``.
* :func:`check_predicted_saturated_fraction` also compares the learner's closed
  form with a simulation (Gaussian pre-activations pushed through the
  activation and counted).

Every mistake below is a complete, plausible wrong implementation, written with
the names an exercise notebook has (``np``, ``math``, ``activations``), so that
the grading tests can submit each one and check that it loses its cell's points.

Examples
--------
>>> from stablegrad.checking import saturation as checks
>>> checks.check_sigmoid(my_sigmoid)                          # doctest: +SKIP
sigmoid: all 5 checks passed, without a NumPy warning
  ok  z ~ 1 N(0, 1) of shape (6,), float64
  ...
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Callable, Sequence

import numpy as np

from stablegrad import activations
from stablegrad.checking import Case, CheckFailure, Mistake, Out, call_guarded, check_against_reference

__all__ = [
    "NumericalWarningError", "SimulationMismatchError",
    "array_case", "huge_case", "saturation_case", "predicted_case",
    "sigmoid_cases", "sigmoid_grad_cases", "tanh_grad_cases", "relu_grad_cases",
    "leaky_relu_cases", "saturated_fraction_cases", "predicted_saturated_fraction_cases",
    "check_sigmoid", "check_sigmoid_grad", "check_tanh_grad", "check_relu_grad",
    "check_leaky_relu", "check_leaky_relu_grad", "check_saturated_fraction",
    "check_predicted_saturated_fraction",
    "SIGMOID_MISTAKES", "SIGMOID_GRAD_MISTAKES", "TANH_GRAD_MISTAKES", "RELU_GRAD_MISTAKES",
    "LEAKY_RELU_MISTAKES", "LEAKY_RELU_GRAD_MISTAKES", "SATURATED_FRACTION_MISTAKES",
    "PREDICTED_MISTAKES",
]


class NumericalWarningError(CheckFailure):
    """The learner's function made NumPy warn (overflow, invalid value, division by zero)."""


class SimulationMismatchError(CheckFailure):
    """A closed form disagrees with a simulation by more than sampling noise allows."""


# =========================================================================== helpers

def _check(func: Callable, reference: Callable, cases: Sequence[Case], **options) -> None:
    """:func:`check_against_reference`, quiet about NumPy warnings (a mistake may overflow while being matched).

    Mistakes whose output contains ``nan`` or is a boolean array are named by
    the generic comparison, which matches ``nan`` with ``nan`` and booleans exactly.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_against_reference(func, reference, cases, **options)


# =========================================================================== inputs

#: |z| values where a naive sigmoid overflows: exp(-z) is inf below -709.8 in float64, -88.7 in float32.
HUGE = (1e4, 1e3, 710.0, 100.0, 89.0, 30.0, 1.0, 1e-3, 0.0)


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
    kwargs = {} if slope is None else {"slope": slope}
    label = (f"z ~ {scale:g} N(0, 1) of shape {tuple(shape)}, {dtype.name}"
             + (f", {zeros} entries exactly 0" if zeros else "")
             + (f", slope={slope:g}" if slope is not None else ""))
    return Case(label, (z,), kwargs, ("z",))


def huge_case(dtype=np.float64, *, slope: float | None = None) -> Case:
    """``z`` = +-(1e4, 1e3, 710, 100, 89, 30, 1, 1e-3) and 0: where a naive sigmoid overflows."""
    dtype = np.dtype(dtype)
    pos = np.array(HUGE)
    z = np.concatenate([-pos, pos[::-1][1:]]).astype(dtype)
    kwargs = {} if slope is None else {"slope": slope}
    label = (f"huge |z| in {dtype.name}: z = -1e4, -1e3, -710, -100, -89, -30, ..., 0, ..., 1e4"
             + (f", slope={slope:g}" if slope is not None else ""))
    return Case(label, (z,), kwargs, ("z",))


def saturation_case(rng: np.random.Generator, kind: str, scale: float, shape: tuple, *,
                    threshold: float | None = None, shift: float = 0.0, dtype=np.float64) -> Case:
    """Activations ``a = f(z)`` of ``z ~ N(shift, scale^2)`` for ``saturated_fraction(a, kind, threshold)``."""
    dtype = np.dtype(dtype)
    z = shift + scale * rng.standard_normal(shape)
    a = activations.get_activation(kind).fn(z).astype(dtype)
    args = (a, kind) if threshold is None else (a, kind, threshold)
    label = (f"{kind} activations of z ~ N({shift:g}, {scale:g}^2), shape {tuple(shape)}, "
             + (f"threshold {threshold:g}" if threshold is not None else "default threshold")
             + (", float32" if dtype == np.float32 else ""))
    return Case(label, args, {}, ("a", "kind", "threshold")[:len(args)])


def predicted_case(scale: float, kind: str, threshold: float | None = None) -> Case:
    """Arguments ``(scale, kind[, threshold])`` for ``predicted_saturated_fraction``."""
    args = (float(scale), kind) if threshold is None else (float(scale), kind, float(threshold))
    label = (f"scale {scale:g}, kind {kind!r}, "
             + (f"threshold {threshold:g}" if threshold is not None else "default threshold"))
    return Case(label, args, {}, ("scale", "kind", "threshold")[:len(args)])


def sigmoid_cases(seed: int = 0) -> list[Case]:
    """Visible cases for ``sigmoid``: moderate and huge |z|, float64 and float32."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (6,)),
        array_case(rng, (3, 4), scale=10.0),
        array_case(rng, (2, 3, 2), scale=5.0, dtype=np.float32),
        huge_case(np.float64),
        huge_case(np.float32),
    ]


def sigmoid_grad_cases(seed: int = 1) -> list[Case]:
    """Visible cases for ``sigmoid_grad``."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (7,)),
        array_case(rng, (4, 3), scale=6.0),
        array_case(rng, (5,), scale=2.0, dtype=np.float32),
        huge_case(np.float64),
    ]


def tanh_grad_cases(seed: int = 2) -> list[Case]:
    """Visible cases for ``tanh_grad``."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (7,)),
        array_case(rng, (3, 5), scale=3.0),
        array_case(rng, (4,), scale=0.5, dtype=np.float32),
        huge_case(np.float64),
    ]


def relu_grad_cases(seed: int = 3) -> list[Case]:
    """Visible cases for ``relu_grad``, with exact zeros (where relu'(0) = 0 by convention)."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (8,), zeros=2),
        array_case(rng, (3, 4), scale=3.0),
        array_case(rng, (2, 5), dtype=np.float32, zeros=3),
    ]


def leaky_relu_cases(seed: int = 4) -> list[Case]:
    """Visible cases for ``leaky_relu`` and ``leaky_relu_grad``: default and explicit slopes, zeros."""
    rng = np.random.default_rng(seed)
    return [
        array_case(rng, (8,), zeros=2),
        array_case(rng, (3, 4), scale=3.0, slope=0.2),
        array_case(rng, (2, 5), dtype=np.float32, zeros=2, slope=0.05),
    ]


def saturated_fraction_cases(seed: int = 5) -> list[Case]:
    """Visible cases for ``saturated_fraction``: three kinds, two thresholds, values exactly at t."""
    rng = np.random.default_rng(seed)
    at_threshold = np.array([0.97, -0.97, 0.975, -0.99, 0.5, 0.0, 0.96, 1.0])
    return [
        saturation_case(rng, "tanh", 2.0, (40, 10)),
        saturation_case(rng, "tanh", 1.0, (200,), threshold=0.9),
        saturation_case(rng, "sigmoid", 4.0, (30, 20)),
        saturation_case(rng, "sigmoid", 3.0, (100,), threshold=0.9, shift=3.0),
        saturation_case(rng, "relu", 1.0, (25, 8)),
        Case("tanh activations exactly at the threshold 0.97 (which is not saturated: the test is |a| > t)",
             (at_threshold, "tanh"), {}, ("a", "kind")),
    ]


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


# =========================================================================== sigmoid

def _sg_naive(z):
    return 1.0 / (1.0 + np.exp(-z))                          # exp(-z) overflows for z << 0


def _sg_where_both_branches(z):
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-z)),       # np.where evaluates BOTH branches
                    np.exp(z) / (1.0 + np.exp(z)))          # for every entry: still overflows


def _sg_exp_ratio(z):
    e = np.exp(z)
    return e / (1.0 + e)                                    # inf / inf = nan for z >> 0


def _sg_float64(z):
    z = np.asarray(z, dtype=np.float64)                     # float32 in, float64 out
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sg_sign(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, e / (1.0 + e), 1.0 / (1.0 + e))  # branches swapped: sigmoid(-z)


SIGMOID_MISTAKES = [
    Mistake("computing 1 / (1 + exp(-z)) directly, whose exp(-z) overflows for large negative z", _sg_naive),
    Mistake("choosing between two naive formulas with np.where, which evaluates both of them for every "
            "entry, so exp still overflows", _sg_where_both_branches),
    Mistake("computing exp(z) / (1 + exp(z)), which gives inf / inf = nan for large positive z", _sg_exp_ratio),
    Mistake("converting z to float64 (float32 in, float64 out)", _sg_float64),
    Mistake("swapping the two branches (this computes sigmoid(-z) = 1 - sigmoid(z))", _sg_sign),
]


def _numpy_warnings(func: Callable, forbid: Sequence[Callable], case: Case, name: str) -> list[str]:
    """Messages of the RuntimeWarnings NumPy emits while ``func`` runs on ``case``."""
    args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(over="warn", invalid="warn", divide="warn", under="ignore"):
        warnings.simplefilter("always")
        call_guarded(func, forbid, *args, name=name, **kwargs)
    return sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})


def _warning_mistakes(case: Case, mistakes: Sequence[Mistake]) -> list[str]:
    matched = []
    for mistake in mistakes:
        try:
            if _numpy_warnings(mistake.fn, (), case, "mistake"):
                matched.append(mistake.description)
        except Exception:
            continue
    return matched


def check_sigmoid(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's overflow-safe ``sigmoid(z)``.

    Values are compared with :func:`stablegrad.activations.sigmoid` (float32
    outputs required for float32 inputs), then every case is run again with
    NumPy's floating-point warnings recorded: an ``overflow encountered in
    exp`` fails the check even when the returned values are right.
    """
    name = "sigmoid"
    cases = sigmoid_cases() if cases is None else list(cases)
    forbid = [activations.sigmoid]
    _check(func, activations.sigmoid, cases, name=name, spec=Out("sigmoid(z)", like="z"),
           mistakes=SIGMOID_MISTAKES, forbid=forbid, check_dtype=True, quiet=True)
    for case in cases:
        raised = _numpy_warnings(func, forbid, case, name)
        if raised:
            message = (f"{name} made NumPy warn: {'; '.join(raised)}.\n  case: {case.label}\n"
                       f"  The values may look right, but exp(-z) overflows once -z > 709.8 in float64 "
                       f"(88.7 in float32), and the same overflow turns a derivative into nan. Exponentiate "
                       f"only -|z|, which is never positive.")
            matched = _warning_mistakes(case, SIGMOID_MISTAKES)
            if matched:
                message += "\n  This matches a common mistake: " + "; or ".join(matched) + "."
            raise NumericalWarningError(message)
    if not quiet:
        print(f"{name}: all {len(cases)} checks passed, without a NumPy warning")
        for case in cases:
            print(f"  ok  {case.label}")


# =========================================================================== derivatives

def _sgg_returns_s(z):
    return activations.sigmoid(z)                           # s instead of s (1 - s)


def _sgg_one_minus_s(z):
    return 1.0 - activations.sigmoid(z)


def _sgg_tanh_formula(z):
    s = activations.sigmoid(z)
    return 1.0 - s * s                                      # tanh's formula with sigmoid's output


def _sgg_naive(z):
    return np.exp(-z) / (1.0 + np.exp(-z)) ** 2             # inf / inf = nan for z << 0


def _sgg_at_output(z):
    s = activations.sigmoid(activations.sigmoid(z))         # sigmoid applied twice
    return s * (1.0 - s)


SIGMOID_GRAD_MISTAKES = [
    Mistake("returning s = sigmoid(z) instead of s (1 - s)", _sgg_returns_s),
    Mistake("returning 1 - s instead of s (1 - s)", _sgg_one_minus_s),
    Mistake("using tanh's derivative 1 - s^2 with the sigmoid's s", _sgg_tanh_formula),
    Mistake("computing exp(-z) / (1 + exp(-z))^2, which is inf / inf = nan for large negative z", _sgg_naive),
    Mistake("evaluating the derivative at the output a = sigmoid(z) instead of at z", _sgg_at_output),
]


def _tg_not_squared(z):
    return 1.0 - np.tanh(z)                                 # 1 - tanh, not squared


def _tg_z_squared(z):
    return 1.0 - z ** 2                                     # 1 - z^2: tanh forgotten


def _tg_square_of_difference(z):
    return (1.0 - np.tanh(z)) ** 2


def _tg_sigmoid_formula(z):
    t = np.tanh(z)
    return t * (1.0 - t)                                    # the sigmoid's formula


def _tg_at_output(z):
    t = np.tanh(np.tanh(z))                                 # derivative at a = tanh(z)
    return 1.0 - t * t


TANH_GRAD_MISTAKES = [
    Mistake("computing 1 - tanh(z) instead of 1 - tanh(z)^2 (not squared)", _tg_not_squared),
    Mistake("computing 1 - z^2 (tanh forgotten)", _tg_z_squared),
    Mistake("computing (1 - tanh(z))^2 instead of 1 - tanh(z)^2", _tg_square_of_difference),
    Mistake("using the sigmoid's formula t (1 - t)", _tg_sigmoid_formula),
    Mistake("evaluating the derivative at the output a = tanh(z) instead of at z", _tg_at_output),
]


def _rg_returns_x(z):
    return z                                                # relu'(z) is not z


def _rg_returns_relu(z):
    return np.maximum(z, 0)                                 # relu itself


def _rg_one_at_zero(z):
    return (z >= 0).astype(z.dtype)                         # relu'(0) = 1 instead of 0


def _rg_bool(z):
    return z > 0                                            # a boolean array


def _rg_float64(z):
    return np.where(z > 0, 1.0, 0.0)                        # float64 even for float32 z


RELU_GRAD_MISTAKES = [
    Mistake("returning z itself instead of the 0/1 derivative", _rg_returns_x),
    Mistake("returning relu(z) = max(z, 0) instead of its derivative", _rg_returns_relu),
    Mistake("using relu'(0) = 1 (z >= 0) where this course uses 0 (z > 0)", _rg_one_at_zero),
    Mistake("returning the boolean array z > 0 instead of numbers of z's dtype", _rg_bool),
    Mistake("building the result from Python floats with np.where, which gives float64 for float32 z",
            _rg_float64),
]


def check_sigmoid_grad(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's ``sigmoid_grad(z)`` against :func:`stablegrad.activations.sigmoid_grad`."""
    _check(func, activations.sigmoid_grad, sigmoid_grad_cases() if cases is None else cases,
           name="sigmoid_grad", spec=Out("sigmoid'(z)", like="z"),
           mistakes=SIGMOID_GRAD_MISTAKES, forbid=[activations.sigmoid_grad],
           check_dtype=True, quiet=quiet)


def check_tanh_grad(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's ``tanh_grad(z)`` against :func:`stablegrad.activations.tanh_grad`."""
    _check(func, activations.tanh_grad, tanh_grad_cases() if cases is None else cases,
           name="tanh_grad", spec=Out("tanh'(z)", like="z"),
           mistakes=TANH_GRAD_MISTAKES, forbid=[activations.tanh_grad],
           check_dtype=True, quiet=quiet)


def check_relu_grad(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's ``relu_grad(z)``: 1 where z > 0, else 0 (also at exactly 0), in z's dtype."""
    _check(func, activations.relu_grad, relu_grad_cases() if cases is None else cases,
           name="relu_grad", spec=Out("relu'(z)", like="z"),
           mistakes=RELU_GRAD_MISTAKES, forbid=[activations.relu_grad],
           check_dtype=True, quiet=quiet)


# =========================================================================== leaky relu

def _lr_positive_side(z, slope=0.01):
    return np.where(z > 0, slope * z, z)                    # the slope on the wrong side


def _lr_fixed_slope(z, slope=0.01):
    return np.where(z > 0, z, 0.01 * z)                     # ignores the slope argument


def _lr_zero_negative(z, slope=0.01):
    return np.where(z > 0, z, slope)                        # slope instead of slope * z


def _lr_relu(z, slope=0.01):
    return np.maximum(z, 0)                                 # plain relu


LEAKY_RELU_MISTAKES = [
    Mistake("applying the slope on the positive side (slope * z for z > 0)", _lr_positive_side),
    Mistake("ignoring the slope argument (always 0.01)", _lr_fixed_slope),
    Mistake("returning the constant slope for z <= 0 instead of slope * z", _lr_zero_negative),
    Mistake("returning relu(z): nothing leaks for z <= 0", _lr_relu),
]


def _lrg_positive_side(z, slope=0.01):
    return np.where(z > 0, slope, 1.0).astype(z.dtype)     # the slope on the wrong side


def _lrg_one_at_zero(z, slope=0.01):
    return np.where(z >= 0, 1.0, slope).astype(z.dtype)    # 1 at z = 0 instead of slope


def _lrg_fixed_slope(z, slope=0.01):
    return np.where(z > 0, 1.0, 0.01).astype(z.dtype)      # ignores the slope argument


def _lrg_relu_grad(z, slope=0.01):
    return (z > 0).astype(z.dtype)                          # relu's derivative: 0, not slope


def _lrg_function(z, slope=0.01):
    return np.where(z > 0, z, slope * z)                    # leaky_relu itself


LEAKY_RELU_GRAD_MISTAKES = [
    Mistake("applying the slope on the positive side (slope for z > 0, 1 for z <= 0)", _lrg_positive_side),
    Mistake("using 1 at z = 0 (z >= 0) where this course uses slope there (z > 0)", _lrg_one_at_zero),
    Mistake("ignoring the slope argument (always 0.01)", _lrg_fixed_slope),
    Mistake("returning relu's derivative: 0 instead of slope for z <= 0", _lrg_relu_grad),
    Mistake("returning leaky_relu(z) instead of its derivative", _lrg_function),
]


def check_leaky_relu(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's ``leaky_relu(z, slope=0.01)`` against :func:`stablegrad.activations.leaky_relu`."""
    _check(func, activations.leaky_relu, leaky_relu_cases() if cases is None else cases,
           name="leaky_relu", spec=Out("leaky_relu(z)", like="z"),
           mistakes=LEAKY_RELU_MISTAKES, forbid=[activations.leaky_relu],
           check_dtype=True, quiet=quiet)


def check_leaky_relu_grad(func: Callable, cases: Sequence[Case] | None = None, *,
                          quiet: bool = False) -> None:
    """Check a learner's ``leaky_relu_grad(z, slope=0.01)``: 1 where z > 0, else slope (also at 0)."""
    _check(func, activations.leaky_relu_grad,
           leaky_relu_cases(seed=6) if cases is None else cases,
           name="leaky_relu_grad", spec=Out("leaky_relu'(z)", like="z"),
           mistakes=LEAKY_RELU_GRAD_MISTAKES, forbid=[activations.leaky_relu_grad],
           check_dtype=True, quiet=quiet)


# =========================================================================== saturated fraction

def _sf_on_z(a, kind, threshold=0.97):
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "tanh":
            z = np.arctanh(a)                               # back to the pre-activation...
        elif kind == "sigmoid":
            z = np.log(a / (1.0 - a))
        else:
            return float(np.mean(a == 0))
    return float(np.mean(np.abs(z) > threshold))            # ...and the threshold applied to z


def _sf_activation_again(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a == 0))
    b = np.tanh(a) if kind == "tanh" else activations.sigmoid(a)   # treats a as if it were z
    if kind == "tanh":
        return float(np.mean(np.abs(b) > threshold))
    return float(np.mean((b > threshold) | (b < 1.0 - threshold)))


def _sf_greater_equal(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a == 0))
    if kind == "tanh":
        return float(np.mean(np.abs(a) >= threshold))      # >= counts |a| = t as saturated
    return float(np.mean((a >= threshold) | (a <= 1.0 - threshold)))


def _sf_upper_only(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a == 0))
    if kind == "tanh":
        return float(np.mean(a > threshold))                # forgets the negative tail
    return float(np.mean(a > threshold))                    # forgets sigmoid's lower tail


def _sf_tanh_rule(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a == 0))
    return float(np.mean(np.abs(a) > threshold))            # |a| > t for the sigmoid too


def _sf_relu_negative(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a < 0))                        # a relu output is never negative
    if kind == "tanh":
        return float(np.mean(np.abs(a) > threshold))
    return float(np.mean((a > threshold) | (a < 1.0 - threshold)))


def _sf_count(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.sum(a == 0))                        # a count, not a fraction
    if kind == "tanh":
        return float(np.sum(np.abs(a) > threshold))
    return float(np.sum((a > threshold) | (a < 1.0 - threshold)))


SATURATED_FRACTION_MISTAKES = [
    Mistake("computing the fraction on the pre-activation z (recovered as artanh(a) or logit(a)) "
            "instead of on the activation a", _sf_on_z),
    Mistake("applying the activation to a again, as if a were the pre-activation", _sf_activation_again),
    Mistake("counting values exactly at the threshold (>= instead of >)", _sf_greater_equal),
    Mistake("counting only the upper tail (a > t) and forgetting the lower one", _sf_upper_only),
    Mistake("using tanh's rule |a| > t for the sigmoid, whose lower tail is a < 1 - t", _sf_tanh_rule),
    Mistake("counting a < 0 for relu (a relu output is never negative; inactive means a == 0)",
            _sf_relu_negative),
    Mistake("returning the number of saturated entries instead of their fraction", _sf_count),
]


def check_saturated_fraction(func: Callable, cases: Sequence[Case] | None = None, *,
                             quiet: bool = False) -> None:
    """Check a learner's ``saturated_fraction(a, kind, threshold=0.97)`` (a float)."""
    _check(func, activations.saturated_fraction,
           saturated_fraction_cases() if cases is None else cases,
           name="saturated_fraction", spec=Out("the fraction"),
           mistakes=SATURATED_FRACTION_MISTAKES, forbid=[activations.saturated_fraction],
           rtol=1e-12, quiet=quiet)


# =========================================================================== the closed form

def _pf_scale_squared(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1.0 - threshold))
    return 2.0 * (1.0 - 0.5 * (1.0 + math.erf(c / scale ** 2 / math.sqrt(2.0))))   # s^2 where s belongs


def _pf_one_tail(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1.0 - threshold))
    return 1.0 - 0.5 * (1.0 + math.erf(c / scale / math.sqrt(2.0)))                # factor 2 missing


def _pf_threshold_as_cutoff(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = threshold                                            # P(|z| > t): the cutoff on z, not on a
    return 2.0 * (1.0 - 0.5 * (1.0 + math.erf(c / scale / math.sqrt(2.0))))


def _pf_artanh_for_sigmoid(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold)                                # tanh's cutoff for both kinds
    return 2.0 * (1.0 - 0.5 * (1.0 + math.erf(c / scale / math.sqrt(2.0))))


def _pf_times_scale(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1.0 - threshold))
    return 2.0 * (1.0 - 0.5 * (1.0 + math.erf(c * scale / math.sqrt(2.0))))        # c s instead of c / s


def _pf_phi_not_tail(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1.0 - threshold))
    return 2.0 * 0.5 * (1.0 + math.erf(c / scale / math.sqrt(2.0)))                # 2 Phi, not 2 (1 - Phi)


def _pf_relu_zero(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.0                                           # "relu never saturates"
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1.0 - threshold))
    return math.erfc(c / scale / math.sqrt(2.0))


PREDICTED_MISTAKES = [
    Mistake("using scale^2 where the scale s belongs (artanh(t) / s^2)", _pf_scale_squared),
    Mistake("forgetting the factor 2: counting only one tail, 1 - Phi(c / s)", _pf_one_tail),
    Mistake("using the threshold t itself as the cutoff on z (the saturated fraction of z, not of the "
            "activation), instead of artanh(t) or logit(t)", _pf_threshold_as_cutoff),
    Mistake("using tanh's cutoff artanh(t) for the sigmoid, whose cutoff is logit(t) = log(t / (1 - t))",
            _pf_artanh_for_sigmoid),
    Mistake("multiplying the cutoff by the scale instead of dividing (c s instead of c / s)", _pf_times_scale),
    Mistake("returning 2 Phi(c / s) instead of 2 (1 - Phi(c / s))", _pf_phi_not_tail),
    Mistake("returning 0 for relu: half of N(0, s^2) pre-activations are negative, so half of the units "
            "are inactive", _pf_relu_zero),
]

#: Samples per case in the simulation check: the binomial standard deviation is at most 0.5 / sqrt(n) = 0.0011.
SIMULATION_SIZE = 200_000


def _simulate(case: Case, seed: int) -> tuple[float, float]:
    """Saturated fraction of ``SIMULATION_SIZE`` Gaussian pre-activations, and its standard error."""
    scale, kind = case.args[0], case.args[1]
    threshold = case.args[2] if len(case.args) > 2 else 0.97
    z = scale * np.random.default_rng(seed).standard_normal(SIMULATION_SIZE)
    a = activations.get_activation(kind).fn(z)
    p = activations.saturated_fraction(a, kind, threshold)
    return p, math.sqrt(max(p * (1.0 - p), 1.0 / SIMULATION_SIZE) / SIMULATION_SIZE)


def check_predicted_saturated_fraction(func: Callable, cases: Sequence[Case] | None = None, *,
                                       quiet: bool = False, seed: int = 0) -> None:
    """Check a learner's closed form ``predicted_saturated_fraction(scale, kind, threshold=0.97)``.

    First against :func:`stablegrad.activations.predicted_saturated_fraction`
    (relative tolerance 1e-6, absolute 1e-12, so that ``1 - Phi`` and
    ``erfc`` agree in the far tail), then against a simulation of
    :data:`SIMULATION_SIZE` Gaussian pre-activations per case: the closed form
    must lie within 5 binomial standard deviations of the simulated fraction.
    """
    name = "predicted_saturated_fraction"
    cases = predicted_saturated_fraction_cases() if cases is None else list(cases)
    forbid = [activations.predicted_saturated_fraction]
    _check(func, activations.predicted_saturated_fraction, cases, name=name,
           spec=Out("the predicted fraction"), mistakes=PREDICTED_MISTAKES, forbid=forbid,
           rtol=1e-6, atol=1e-12, quiet=True)
    lines = []
    for k, case in enumerate(cases):
        got = float(call_guarded(func, forbid, *copy.deepcopy(case.args), name=name, **case.kwargs))
        simulated, sd = _simulate(case, seed + k)
        if not abs(got - simulated) <= 5 * sd:
            raise SimulationMismatchError(
                f"{name}: your closed form gives {got:.6g}, but a simulation of {SIMULATION_SIZE} "
                f"pre-activations measures {simulated:.6g} (standard error {sd:.2g}).\n  case: {case.label}")
        lines.append(f"  ok  {case.label}: {got:.4g} (simulated {simulated:.4g})")
    if not quiet:
        print(f"{name}: all {len(cases)} checks passed, against the reference and against simulation")
        print("\n".join(lines))
