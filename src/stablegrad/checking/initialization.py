"""Checks for exercise 3 (initialization: deriving the variance).

Two kinds of functions are graded here.

**Random initializers** (``xavier_normal``, ``xavier_uniform``, ``he_normal``,
``he_uniform``) cannot be compared with the reference array by array: a
correct implementation may draw its numbers differently (``rng.normal`` or
``rng.standard_normal() * std``, ``rng.uniform`` or ``(2 * rng.random() - 1) * a``).
:func:`check_initializer` checks instead

* the output: a float64 ``ndarray`` of shape ``(fan_in, fan_out)``;
* the generator: NumPy's global random state is left alone, the ``rng`` argument
  is advanced, two generators in the same state give the same array and two in
  different states give different arrays;
* the distribution, on samples of 10^5 draws or more: the mean, the second
  moment (the variance the derivation asks for) and the shape (a normal puts
  4.55% of its draws beyond 2 standard deviations, a uniform none beyond its bound
  and some within a hair of it).

**Why a correct initializer fails with probability below 10^-8.** Every
statistical test below has a false-alarm probability of at most
``ALPHA = 1e-10``, by an exact or a rigorous bound (no normal approximation):

* normal mean: ``mean(w) ~ N(0, s^2 / n)`` exactly, and ``P(|Z| > 6.5) < 1e-10``;
* normal second moment: ``n mean(w^2) / s^2`` is chi-square with ``n`` degrees of
  freedom; by Laurent and Massart (2000, Lemma 1)
  ``P(X - n >= 2 sqrt(n x) + 2 x) <= e^-x`` and ``P(n - X >= 2 sqrt(n x)) <= e^-x``,
  with ``x = log(2 / ALPHA)``;
* uniform mean and second moment, and every fraction of draws: the terms are
  bounded (``|w| <= a``, ``w^2 <= a^2``, indicators in [0, 1]), so Hoeffding's
  inequality ``P(|mean - E| >= t) <= 2 exp(-2 n t^2 / range^2)`` gives
  ``t = range * sqrt(log(2 / ALPHA) / (2 n))``;
* the uniform's largest draw: ``P(max |w| < a (1 - d)) = (1 - d)^n <= exp(-n d)``,
  so ``d = log(1 / ALPHA) / n``.

A graded notebook runs fewer than 100 such tests (4 tests per sample, at most
25 samples), so a correct implementation fails with probability below
``100 * 1e-10 = 1e-8``, far below the 1e-6 the course allows. With ``n >= 10^5``
draws the second-moment tolerance is about 3.3%, while every common mistake
below is off by 17% or more on the graded shapes (fan_in and fan_out differ, so
``1/fan_in``, ``1/fan_out`` and ``2/(fan_in + fan_out)`` are all distinct).

**Deterministic functions** (the predicted variances, the measured variance of
a deep stack, the backward condition) are compared with the reference through
:func:`stablegrad.checking.check_against_reference`, with a list of common
mistakes each.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

from stablegrad import activations, init
from stablegrad.checking import (
    Case, Mistake, Out, WrongShapeError, WrongTypeError, WrongValueError, call_learner,
    check_against_reference,
)

__all__ = [
    "ALPHA", "InitSpec", "INITIALIZER_SPECS", "init_sample_cases", "check_initializer",
    "check_xavier_normal", "check_xavier_uniform", "check_he_normal", "check_he_uniform",
    "XAVIER_NORMAL_MISTAKES", "XAVIER_UNIFORM_MISTAKES", "HE_NORMAL_MISTAKES", "HE_UNIFORM_MISTAKES",
    "forward_variance_cases", "forward_variance_case", "check_forward_variance", "FORWARD_VARIANCE_MISTAKES",
    "through_depth_cases", "through_depth_case", "check_forward_variance_through_depth",
    "THROUGH_DEPTH_MISTAKES", "stack_variance_case", "stack_variance_cases", "check_activation_variances",
    "ACTIVATION_VARIANCE_MISTAKES", "backward_variance_case", "backward_variance_cases", "check_backward_stable_variance",
    "BACKWARD_VARIANCE_MISTAKES",
]

#: False-alarm probability of each statistical test.
ALPHA = 1e-10
_LOG = math.log(2.0 / ALPHA)          # ~23.7: two-sided bounds
_Z = 6.5                              # P(|N(0, 1)| > 6.5) = 8.0e-11 < ALPHA
_P_BEYOND_2SD = math.erfc(2.0 / math.sqrt(2.0))   # 0.0455: a normal's mass beyond 2 standard deviations

# every initializer in stablegrad.init: none may be called to draw the weights
_ALL_INITIALIZERS = [init.xavier_normal, init.xavier_uniform, init.he_normal, init.he_uniform,
                     init.normal, init.uniform]


class InitSpec(NamedTuple):
    """What an initializer must draw: its family and its variance as a function of the fans."""

    name: str
    family: str                        # "normal" or "uniform"
    variance: Callable[[int, int], float]
    formula: str


INITIALIZER_SPECS = {
    "xavier_normal": InitSpec("xavier_normal", "normal", lambda i, o: 2.0 / (i + o), "2 / (fan_in + fan_out)"),
    "xavier_uniform": InitSpec("xavier_uniform", "uniform", lambda i, o: 2.0 / (i + o), "2 / (fan_in + fan_out)"),
    "he_normal": InitSpec("he_normal", "normal", lambda i, o: 2.0 / i, "2 / fan_in"),
    "he_uniform": InitSpec("he_uniform", "uniform", lambda i, o: 2.0 / i, "2 / fan_in"),
}


# =========================================================================== common mistakes
#
# Complete wrong initializers, written as a learner would write them. The grading
# tests submit each as a notebook; the checks below name the one an answer looks like.

def _xn_fan_in_only(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)        # the forward condition only


def _xn_variance_as_std(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * (2.0 / (fan_in + fan_out))   # no square root


def _xn_global_rng(fan_in, fan_out, rng):
    return np.random.randn(fan_in, fan_out) * np.sqrt(2.0 / (fan_in + fan_out))  # ignores rng


def _xn_uniform(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out))                             # right variance, not normal


def _xn_own_generator(fan_in, fan_out, rng):
    own = np.random.default_rng(0)                                                # a fixed private generator
    return own.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))


def _xn_transposed(fan_in, fan_out, rng):
    return rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / (fan_in + fan_out))


XAVIER_NORMAL_MISTAKES = [
    Mistake("using Var(w) = 1/fan_in (the forward condition alone) instead of 2/(fan_in + fan_out)",
            _xn_fan_in_only),
    Mistake("using the variance 2/(fan_in + fan_out) as the standard deviation (no square root)",
            _xn_variance_as_std),
    Mistake("drawing from NumPy's global random state (np.random.randn) instead of rng", _xn_global_rng),
    Mistake("drawing from a uniform distribution instead of a normal one", _xn_uniform),
    Mistake("drawing from a private generator np.random.default_rng(0) instead of rng", _xn_own_generator),
    Mistake("returning shape (fan_out, fan_in) instead of (fan_in, fan_out)", _xn_transposed),
]


def _xu_bound_3(fan_in, fan_out, rng):
    a = np.sqrt(3.0 / (fan_in + fan_out))                                          # 3 instead of 6
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _xu_bound_fan_in(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / fan_in)                                                      # He's bound
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _xu_variance_as_bound(fan_in, fan_out, rng):
    a = np.sqrt(2.0 / (fan_in + fan_out))                                          # the std as the bound
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _xu_no_sqrt(fan_in, fan_out, rng):
    a = 6.0 / (fan_in + fan_out)                                                   # no square root
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _xu_normal(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))


def _xu_global_rng(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return np.random.uniform(-a, a, size=(fan_in, fan_out))                       # ignores rng


def _xu_float32(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(np.float32)


XAVIER_UNIFORM_MISTAKES = [
    Mistake("using the bound sqrt(3 / (fan_in + fan_out)) instead of sqrt(6 / (fan_in + fan_out))", _xu_bound_3),
    Mistake("using the bound sqrt(6 / fan_in) (He's) instead of sqrt(6 / (fan_in + fan_out))", _xu_bound_fan_in),
    Mistake("using the standard deviation sqrt(2 / (fan_in + fan_out)) as the bound (forgetting Var = a^2/3)",
            _xu_variance_as_bound),
    Mistake("using 6 / (fan_in + fan_out) as the bound (no square root)", _xu_no_sqrt),
    Mistake("drawing from a normal distribution instead of a uniform one", _xu_normal),
    Mistake("drawing from NumPy's global random state (np.random.uniform) instead of rng", _xu_global_rng),
    Mistake("returning float32 instead of float64", _xu_float32),
]


def _hn_fan_out(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_out)         # fan_out instead of fan_in


def _hn_no_factor_2(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)          # forgot the ReLU's 2


def _hn_variance_as_std(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * (2.0 / fan_in)                 # no square root


def _hn_global_rng(fan_in, fan_out, rng):
    return np.random.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))   # ignores rng


def _hn_fresh_generator(fan_in, fan_out, rng):
    fresh = np.random.default_rng()                                                # unseeded: not reproducible
    return fresh.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)


HE_NORMAL_MISTAKES = [
    Mistake("using fan_out instead of fan_in (Var(w) = 2/fan_out)", _hn_fan_out),
    Mistake("forgetting the factor 2 (Var(w) = 1/fan_in)", _hn_no_factor_2),
    Mistake("using the variance 2/fan_in as the standard deviation (no square root)", _hn_variance_as_std),
    Mistake("drawing from NumPy's global random state (np.random.normal) instead of rng", _hn_global_rng),
    Mistake("drawing from a new unseeded generator np.random.default_rng() instead of rng", _hn_fresh_generator),
]


def _hu_fan_out(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / fan_out)                                                     # fan_out instead of fan_in
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _hu_no_factor_2(fan_in, fan_out, rng):
    a = np.sqrt(3.0 / fan_in)                                                      # variance 1/fan_in
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _hu_std_as_bound(fan_in, fan_out, rng):
    a = np.sqrt(2.0 / fan_in)                                                      # forgot Var = a^2/3
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _hu_no_sqrt(fan_in, fan_out, rng):
    a = 6.0 / fan_in                                                               # no square root
    return rng.uniform(-a, a, size=(fan_in, fan_out))


def _hu_global_rng(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / fan_in)
    return (2.0 * np.random.rand(fan_in, fan_out) - 1.0) * a                       # ignores rng


def _hu_zero_to_a(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(0.0, a, size=(fan_in, fan_out))                             # U(0, a): not centred


HE_UNIFORM_MISTAKES = [
    Mistake("using fan_out instead of fan_in (bound sqrt(6 / fan_out))", _hu_fan_out),
    Mistake("forgetting the factor 2 (bound sqrt(3 / fan_in), variance 1/fan_in)", _hu_no_factor_2),
    Mistake("using the standard deviation sqrt(2 / fan_in) as the bound (forgetting Var = a^2/3)",
            _hu_std_as_bound),
    Mistake("using 6 / fan_in as the bound (no square root)", _hu_no_sqrt),
    Mistake("drawing from NumPy's global random state (np.random.rand) instead of rng", _hu_global_rng),
    Mistake("drawing from U(0, a) instead of U(-a, a)", _hu_zero_to_a),
]

_MISTAKES = {"xavier_normal": XAVIER_NORMAL_MISTAKES, "xavier_uniform": XAVIER_UNIFORM_MISTAKES,
             "he_normal": HE_NORMAL_MISTAKES, "he_uniform": HE_UNIFORM_MISTAKES}


# =========================================================================== checking an initializer

def init_sample_cases(name: str | None = None) -> list[tuple[int, int]]:
    """The visible (fan_in, fan_out) pairs: small ones for shape and generator checks,
    then two non-square ones of 10^5 draws for the statistics."""
    return [(3, 5), (1, 7), (6, 1), (400, 250), (250, 400)]


def _call(func, name, fan_in, fan_out, rng):
    return call_learner(func, _ALL_INITIALIZERS, fan_in, fan_out, rng, name=name,
                        context=f"case: fan_in={fan_in}, fan_out={fan_out}")


def _same_global_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


def _check_array(W, name, fan_in, fan_out):
    case = f"fan_in={fan_in}, fan_out={fan_out}"
    if not isinstance(W, np.ndarray):
        raise WrongTypeError(f"{name}: returned a {type(W).__name__}; expected a NumPy array of shape "
                             f"(fan_in, fan_out) = {(fan_in, fan_out)}.\n  case: {case}")
    if W.shape != (fan_in, fan_out):
        hint = " (transposed?)" if W.shape == (fan_out, fan_in) else ""
        raise WrongShapeError(f"{name}: returned shape {W.shape}{hint}; expected (fan_in, fan_out) = "
                              f"{(fan_in, fan_out)}, so that x @ W maps width fan_in to fan_out.\n  case: {case}")
    if W.dtype != np.float64:
        raise WrongTypeError(f"{name}: returned dtype {W.dtype}; expected float64 (what rng.standard_normal "
                             f"and rng.uniform return: do not convert).\n  case: {case}")
    if not np.all(np.isfinite(W)):
        raise WrongValueError(f"{name}: returned non-finite weights.\n  case: {case}")


def _check_generator_use(func, name, fan_in, fan_out, seed):
    """Global state untouched, rng advanced, same state -> same array, other state -> other array."""
    case = f"fan_in={fan_in}, fan_out={fan_out}"
    before = np.random.get_state()
    rng = np.random.default_rng(seed)
    start = copy.deepcopy(rng.bit_generator.state)
    W = _call(func, name, fan_in, fan_out, rng)
    touched_global = not _same_global_state(before, np.random.get_state())
    _check_array(W, name, fan_in, fan_out)
    if touched_global:
        raise WrongValueError(
            f"{name}: used NumPy's global random state (np.random.randn, np.random.normal, np.random.uniform, "
            f"np.random.rand...). Draw every number from the rng argument instead (rng.standard_normal, "
            f"rng.normal, rng.uniform), so that results are reproducible.\n  case: {case}")
    if rng.bit_generator.state == start:
        raise WrongValueError(f"{name}: did not draw anything from the rng argument. Use rng.standard_normal, "
                              f"rng.normal or rng.uniform.\n  case: {case}")
    again = _call(func, name, fan_in, fan_out, np.random.default_rng(seed))
    _check_array(again, name, fan_in, fan_out)
    if not np.array_equal(W, again):
        raise WrongValueError(f"{name}: two generators in the same state gave different weights: the result must "
                              f"depend only on rng (no np.random.default_rng() without a seed, no global "
                              f"state).\n  case: {case}")
    other = _call(func, name, fan_in, fan_out, np.random.default_rng(seed + 1))
    if np.array_equal(W, other):
        raise WrongValueError(f"{name}: generators in different states gave the same weights: draw from the "
                              f"rng argument, not from a generator of your own with a fixed seed.\n  case: {case}")
    return W


class _Stats(NamedTuple):
    n: int
    mean: float
    second: float            # mean(w^2): the variance of a zero-mean distribution
    beyond_2sd: float        # fraction of |w| > 2 sd (sd of the target distribution)
    max_abs: float


def _stats(w: np.ndarray, target_var: float) -> _Stats:
    w = np.ravel(w).astype(np.float64)
    sd = math.sqrt(target_var)
    return _Stats(w.size, float(w.mean()), float(np.mean(w * w)), float(np.mean(np.abs(w) > 2.0 * sd)),
                  float(np.max(np.abs(w))))


def _tolerances(spec: InitSpec, var: float, n: int) -> dict:
    """Acceptance intervals, each with false-alarm probability <= ALPHA (see the module docstring)."""
    if spec.family == "normal":
        x = _LOG
        return {
            "mean": _Z * math.sqrt(var / n),
            "second_low": var * 2.0 * math.sqrt(x / n),                       # Laurent-Massart, lower tail
            "second_high": var * (2.0 * math.sqrt(x / n) + 2.0 * x / n),      # upper tail
            "fraction": math.sqrt(_LOG / (2.0 * n)),                          # Hoeffding on indicators
        }
    a = math.sqrt(3.0 * var)
    return {
        "mean": 2.0 * a * math.sqrt(_LOG / (2.0 * n)),                        # Hoeffding, w in [-a, a]
        "second_low": a * a * math.sqrt(_LOG / (2.0 * n)),                    # Hoeffding, w^2 in [0, a^2]
        "second_high": a * a * math.sqrt(_LOG / (2.0 * n)),
        "near_bound": math.log(1.0 / ALPHA) / n,                              # P(max|w| < a(1-d)) <= e^(-n d)
    }


def _matching_mistakes(spec: InitSpec, got: _Stats, fan_in, fan_out, seed) -> list[str]:
    """Mistakes whose own sample, drawn the same way, passes the tests that the learner's sample failed."""
    matched = []
    for mistake in _MISTAKES[spec.name]:
        try:
            state = np.random.get_state()
            try:
                theirs = np.asarray(mistake.fn(fan_in, fan_out, np.random.default_rng(seed)), dtype=np.float64)
            finally:
                np.random.set_state(state)
        except Exception:
            continue
        if theirs.size != got.n:
            continue
        ref = _stats(theirs, spec.variance(fan_in, fan_out))
        # two independent samples of the same distribution: allow the sum of both tolerances
        tol = 2.0 * max(_tolerances(spec, max(ref.second, 1e-300), got.n)["second_high"], 1e-300)
        if abs(ref.second - got.second) <= tol and abs(ref.beyond_2sd - got.beyond_2sd) <= 0.03 \
                and abs(ref.mean - got.mean) <= 2.0 * _Z * math.sqrt(max(ref.second, got.second) / got.n) + 1e-300:
            matched.append(mistake.description)
    return matched


def _check_distribution(spec: InitSpec, W: np.ndarray, fan_in: int, fan_out: int, seed: int, label: str):
    name = spec.name
    var = spec.variance(fan_in, fan_out)
    s = _stats(W, var)
    tol = _tolerances(spec, var, s.n)
    case = f"{label} (fan_in={fan_in}, fan_out={fan_out}, {s.n} draws)"
    problems = []
    if not (var - tol["second_low"] <= s.second <= var + tol["second_high"]):
        problems.append(
            f"the variance of the weights is {s.second:.4g} (mean of w^2); expected {spec.formula} = {var:.4g}, "
            f"and a correct {spec.family} sample of this size lands within "
            f"[{var - tol['second_low']:.4g}, {var + tol['second_high']:.4g}] except with probability {ALPHA:g}. "
            f"Yours is {s.second / var:.3g} times the target")
    if abs(s.mean) > tol["mean"]:
        problems.append(f"the mean of the weights is {s.mean:.3g}; expected 0 (|mean| <= {tol['mean']:.2g} "
                        f"for a correct sample of this size)")
    if spec.family == "normal" and not problems:
        if abs(s.beyond_2sd - _P_BEYOND_2SD) > tol["fraction"]:
            problems.append(
                f"{100 * s.beyond_2sd:.3g}% of the weights lie beyond 2 standard deviations; a normal distribution "
                f"puts {100 * _P_BEYOND_2SD:.3g}% there (a uniform with the same variance puts 0%)")
    if spec.family == "uniform":
        a = math.sqrt(3.0 * var)
        if s.max_abs > a * (1.0 + 1e-12):
            problems.append(f"some weights exceed the bound a = sqrt(3 Var) = {a:.4g} (largest |w| = "
                            f"{s.max_abs:.4g}): a uniform distribution on [-a, a] never does")
        elif not problems and s.max_abs < a * (1.0 - tol["near_bound"]):
            problems.append(f"the largest |w| is {s.max_abs:.4g}, clearly below the bound a = {a:.4g}: {s.n} "
                            f"uniform draws on [-a, a] come within a factor (1 - {tol['near_bound']:.2g}) of it")
    if problems:
        message = f"{name}: " + "; and ".join(problems) + f".\n  case: {case}"
        matched = _matching_mistakes(spec, s, fan_in, fan_out, seed)
        if matched:
            message += "\n  This matches a common mistake: " + "; or ".join(matched) + "."
        raise WrongValueError(message)


def check_initializer(func: Callable, name: str, cases: Sequence[tuple[int, int]] | None = None, *,
                      seed: int = 0, pooled: tuple[int, int, int] | None = None, quiet: bool = False) -> None:
    """Check a learner's initializer ``func(fan_in, fan_out, rng)`` statistically.

    Parameters
    ----------
    func : callable
    name : {"xavier_normal", "xavier_uniform", "he_normal", "he_uniform"}
    cases : sequence of (fan_in, fan_out)
        Every case is checked for shape, dtype and generator use; cases with at
        least 10^5 draws also for the distribution.
    seed : int
        Seeds the generators passed to ``func``.
    pooled : (fan_in, fan_out, calls), optional
        Also call ``func`` ``calls`` times with one generator and test the pooled draws
        (successive calls must continue the stream, and together have the right statistics).
    quiet : bool

    Raises
    ------
    CheckFailure
        A subclass whose message says what is wrong and, for a wrong
        distribution, which common mistake it matches.
    """
    spec = INITIALIZER_SPECS[name]
    cases = init_sample_cases(name) if cases is None else list(cases)
    done = []
    for k, (fan_in, fan_out) in enumerate(cases):
        case_seed = seed * 1000 + k
        W = _check_generator_use(func, name, fan_in, fan_out, case_seed)
        if W.size >= 100_000:
            _check_distribution(spec, W, fan_in, fan_out, case_seed, "one call")
            done.append(f"fan_in={fan_in}, fan_out={fan_out}: shape, dtype, rng, mean, variance, {spec.family} shape")
        else:
            done.append(f"fan_in={fan_in}, fan_out={fan_out}: shape, dtype, rng")
    if pooled is not None:
        fan_in, fan_out, calls = pooled
        rng = np.random.default_rng(seed * 1000 + 999)
        draws = [_call(func, name, fan_in, fan_out, rng) for _ in range(calls)]
        for W in draws:
            _check_array(W, name, fan_in, fan_out)
        if calls > 1 and np.array_equal(draws[0], draws[1]):
            raise WrongValueError(f"{name}: two successive calls with the same rng returned the same weights: "
                                  f"draw new numbers from rng at every call.\n  case: fan_in={fan_in}, "
                                  f"fan_out={fan_out}")
        _check_distribution(spec, np.stack(draws), fan_in, fan_out, seed * 1000 + 999,
                            f"{calls} successive calls with one rng")
        done.append(f"{calls} calls with fan_in={fan_in}, fan_out={fan_out}: pooled statistics")
    if not quiet:
        print(f"{name}: all {len(done)} checks passed")
        for line in done:
            print(f"  ok  {line}")


def check_xavier_normal(func, cases=None, **kwargs) -> None:
    """Check ``xavier_normal(fan_in, fan_out, rng)``: N(0, 2 / (fan_in + fan_out))."""
    check_initializer(func, "xavier_normal", cases, **kwargs)


def check_xavier_uniform(func, cases=None, **kwargs) -> None:
    """Check ``xavier_uniform(fan_in, fan_out, rng)``: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    check_initializer(func, "xavier_uniform", cases, **kwargs)


def check_he_normal(func, cases=None, **kwargs) -> None:
    """Check ``he_normal(fan_in, fan_out, rng)``: N(0, 2 / fan_in)."""
    check_initializer(func, "he_normal", cases, **kwargs)


def check_he_uniform(func, cases=None, **kwargs) -> None:
    """Check ``he_uniform(fan_in, fan_out, rng)``: U(-a, a), a = sqrt(6 / fan_in)."""
    check_initializer(func, "he_uniform", cases, **kwargs)


# =========================================================================== forward_variance

def forward_variance_case(n_in, var_w, var_x, activation) -> Case:
    return Case(f"n_in={n_in}, var_w={var_w:g}, var_x={var_x:g}, activation={activation!r}",
                (n_in, var_w, var_x, activation), {}, ("n_in", "var_w", "var_x", "activation"))


def forward_variance_cases() -> list[Case]:
    """The visible cases: every activation, several widths and scales."""
    return [
        forward_variance_case(100, 0.01, 1.0, "identity"),
        forward_variance_case(256, 2 / 256, 3.0, "relu"),
        forward_variance_case(50, 0.03, 0.5, "tanh"),
        forward_variance_case(300, 0.005, 2.0, "relu"),
        forward_variance_case(64, 0.1, 0.25, "leaky_relu"),
    ]


def _fv_no_relu_half(n_in, var_w, var_x, activation):
    return n_in * var_w * var_x                                        # ignores the activation


def _fv_relu_doubles(n_in, var_w, var_x, activation):
    factor = {"identity": 1.0, "tanh": 1.0, "relu": 2.0, "leaky_relu": 2.0 / (1 + 0.01 ** 2)}[activation]
    return n_in * var_w * factor * var_x                               # multiplies by He's 2 instead of 1/2


def _fv_leaky_slope_not_squared(n_in, var_w, var_x, activation):
    factor = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1 + 0.01) / 2}[activation]
    return n_in * var_w * factor * var_x


def _fv_std(n_in, var_w, var_x, activation):
    factor = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1 + 0.01 ** 2) / 2}[activation]
    return np.sqrt(n_in * var_w * factor * var_x)                      # a standard deviation


def _fv_var_w_as_std(n_in, var_w, var_x, activation):
    factor = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1 + 0.01 ** 2) / 2}[activation]
    return n_in * var_w ** 2 * factor * var_x                          # squares var_w


def _fv_tanh_halves(n_in, var_w, var_x, activation):
    factor = {"identity": 1.0, "tanh": 0.5, "relu": 0.5, "leaky_relu": (1 + 0.01 ** 2) / 2}[activation]
    return n_in * var_w * factor * var_x


def _fv_leaky_like_relu(n_in, var_w, var_x, activation):
    factor = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": 0.5}[activation]
    return n_in * var_w * factor * var_x


FORWARD_VARIANCE_MISTAKES = [
    Mistake("ignoring the activation (no factor 1/2 for relu)", _fv_no_relu_half),
    Mistake("multiplying by 2 for relu (He's weight factor) instead of by E[relu(z)^2]/Var(z) = 1/2",
            _fv_relu_doubles),
    Mistake("using (1 + slope)/2 for leaky relu instead of (1 + slope^2)/2", _fv_leaky_slope_not_squared),
    Mistake("returning a standard deviation (square root) instead of a variance", _fv_std),
    Mistake("squaring var_w (treating it as a standard deviation)", _fv_var_w_as_std),
    Mistake("halving for tanh as for relu (tanh is symmetric and linear near 0: factor 1)", _fv_tanh_halves),
    Mistake("treating leaky relu like relu (factor 1/2, forgetting the slope^2 of the negative half)",
            _fv_leaky_like_relu),
]


def check_forward_variance(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check ``forward_variance(n_in, var_w, var_x, activation)`` against :func:`stablegrad.init.forward_variance`."""
    check_against_reference(
        func, init.forward_variance, forward_variance_cases() if cases is None else cases,
        name="forward_variance", spec=Out("Var(z')"), mistakes=FORWARD_VARIANCE_MISTAKES,
        forbid=[init.forward_variance, init.forward_variance_through_depth, init.predicted_variances,
                init.gaussian_moments],
        rtol=1e-9, quiet=quiet)


# =========================================================================== forward_variance_through_depth

def through_depth_case(n, var_w, var_x, activation, depth) -> Case:
    return Case(f"n={n}, var_w={var_w:g}, var_x={var_x:g}, activation={activation!r}, depth={depth}",
                (n, var_w, var_x, activation, depth), {}, ("n", "var_w", "var_x", "activation", "depth"))


def through_depth_cases() -> list[Case]:
    """The visible cases: flat (He, relu), shrinking, growing, one layer."""
    return [
        through_depth_case(256, 2 / 256, 1.0, "relu", 10),
        through_depth_case(100, 0.005, 2.0, "tanh", 6),
        through_depth_case(64, 0.05, 0.5, "identity", 8),
        through_depth_case(30, 0.1, 1.5, "relu", 1),
        through_depth_case(128, 1.0 / 128, 1.0, "leaky_relu", 5),
    ]


_FACTOR = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1 + 0.01 ** 2) / 2}


def _td_starts_at_input(n, var_w, var_x, activation, depth):
    gain = n * var_w * _FACTOR[activation]
    return var_x * gain ** np.arange(depth)                          # v_0 ... v_{depth-1}


def _td_last_only(n, var_w, var_x, activation, depth):
    gain = n * var_w * _FACTOR[activation]
    return var_x * gain ** depth                                      # only v_depth


def _td_list(n, var_w, var_x, activation, depth):
    gain = n * var_w * _FACTOR[activation]
    return [var_x * gain ** l for l in range(1, depth + 1)]           # a list, not an array


def _td_no_factor(n, var_w, var_x, activation, depth):
    return var_x * (n * var_w) ** np.arange(1, depth + 1)             # ignores the activation


def _td_linear_growth(n, var_w, var_x, activation, depth):
    gain = n * var_w * _FACTOR[activation]
    return var_x * gain * np.arange(1, depth + 1)                     # l * gain instead of gain^l


def _td_reversed(n, var_w, var_x, activation, depth):
    gain = n * var_w * _FACTOR[activation]
    return (var_x * gain ** np.arange(1, depth + 1))[::-1]            # last layer first


THROUGH_DEPTH_MISTAKES = [
    Mistake("starting at the input: returning v_0, ..., v_(depth-1) instead of v_1, ..., v_depth",
            _td_starts_at_input),
    Mistake("returning only the last layer's variance instead of one per layer", _td_last_only),
    Mistake("returning a list instead of a NumPy array", _td_list),
    Mistake("ignoring the activation's factor (1/2 for relu)", _td_no_factor),
    Mistake("multiplying by the layer number (l * gain) instead of raising to its power (gain^l)", _td_linear_growth),
    Mistake("listing the layers last first", _td_reversed),
]


def check_forward_variance_through_depth(func: Callable, cases: Sequence[Case] | None = None, *,
                                         quiet: bool = False) -> None:
    """Check ``forward_variance_through_depth(n, var_w, var_x, activation, depth)``, entry by entry.

    Calling ``stablegrad.init.forward_variance`` (or your own ``forward_variance``) is allowed;
    the reference for the whole sequence is not.
    """
    check_against_reference(
        func, init.forward_variance_through_depth, through_depth_cases() if cases is None else cases,
        name="forward_variance_through_depth", spec=Out("variances", like="(depth,): v_1, ..., v_depth"),
        mistakes=THROUGH_DEPTH_MISTAKES,
        forbid=[init.forward_variance_through_depth, init.predicted_variances], rtol=1e-9,
        elementwise=True, quiet=quiet)


# =========================================================================== activation_variances

def _initializer(spec):
    """An initializer from a short spec: 'he_normal', 'xavier_normal', ('normal', std), ('uniform', a)."""
    if isinstance(spec, str):
        return getattr(init, spec), spec
    kind, value = spec
    if kind == "normal":
        return functools.partial(init.normal, std=value), f"normal(std={value:g})"
    return functools.partial(init.uniform, low=-value, high=value), f"uniform(-{value:g}, {value:g})"


def stack_variance_case(rng_input: np.random.Generator, n: int, width: int, depth: int, activation: str,
                        initializer, seed: int, *, input_scale: float = 1.0) -> Case:
    """An input ``(x, initializer, depth, activation, rng)`` for ``activation_variances``.

    ``initializer`` is ``"he_normal"``, ``"xavier_normal"``, ``"xavier_uniform"``,
    ``("normal", std)`` or ``("uniform", a)``, turned into the callable; ``rng``
    is ``np.random.default_rng(seed)``. Every call gets its own copy of the
    generator, so the learner's function and the reference draw the same weights.
    """
    x = input_scale * rng_input.standard_normal((n, width))
    fn, label = _initializer(initializer)
    return Case(f"{activation}, {depth} layers of width {width}, N={n}, initializer {label}"
                + (f", input scale {input_scale:g}" if input_scale != 1 else ""),
                (x, fn, depth, activation, np.random.default_rng(seed)), {},
                ("x", "initializer", "depth", "activation", "rng"))


def stack_variance_cases(seed: int = 0) -> list[Case]:
    """The visible cases: relu and tanh under He, Xavier, too small and too large weights."""
    rng = np.random.default_rng(seed)
    return [
        stack_variance_case(rng, 16, 32, 10, "relu", "he_normal", 1),
        stack_variance_case(rng, 8, 20, 6, "tanh", "xavier_normal", 2),
        stack_variance_case(rng, 12, 24, 12, "relu", ("normal", 0.01), 3),
        stack_variance_case(rng, 10, 16, 8, "tanh", ("normal", 1.0), 4),
        stack_variance_case(rng, 5, 10, 3, "identity", "xavier_uniform", 5),
    ]


def _av_post_activation(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    a, out = x, []
    for _ in range(depth):
        a = f(a @ initializer(x.shape[1], x.shape[1], rng))
        out.append(np.var(a))                                         # Var(a_l) instead of Var(z_l)
    return np.array(out)


def _av_includes_input(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    a, out = x, [np.var(x)]                                            # starts with the input's variance
    for _ in range(depth - 1):
        z = a @ initializer(x.shape[1], x.shape[1], rng)
        out.append(np.var(z))
        a = f(z)
    return np.array(out)


def _av_one_matrix(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    a, out = x, []
    W = initializer(x.shape[1], x.shape[1], rng)                       # one matrix for every layer
    for _ in range(depth):
        z = a @ W
        out.append(np.var(z))
        a = f(z)
    return np.array(out)


def _av_std(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    a, out = x, []
    for _ in range(depth):
        z = a @ initializer(x.shape[1], x.shape[1], rng)
        out.append(np.std(z))                                          # standard deviation
        a = f(z)
    return np.array(out)


def _av_activation_on_input(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    a, out = f(x), []                                                  # f applied to x first
    for _ in range(depth):
        z = a @ initializer(x.shape[1], x.shape[1], rng)
        out.append(np.var(z))
        a = f(z)
    return np.array(out)


def _av_per_unit(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    a, out = x, []
    for _ in range(depth):
        z = a @ initializer(x.shape[1], x.shape[1], rng)
        out.append(np.mean(np.var(z, axis=0)))                         # average of per-unit variances
        a = f(z)
    return np.array(out)


def _av_no_activation(x, initializer, depth, activation, rng):
    a, out = x, []
    for _ in range(depth):
        a = a @ initializer(x.shape[1], x.shape[1], rng)                # no activation between layers
        out.append(np.var(a))
    return np.array(out)


ACTIVATION_VARIANCE_MISTAKES = [
    Mistake("measuring the activations a_l = f(z_l) instead of the pre-activations z_l", _av_post_activation),
    Mistake("listing the input's variance first (and dropping the last layer)", _av_includes_input),
    Mistake("drawing one weight matrix and reusing it in every layer", _av_one_matrix),
    Mistake("returning standard deviations instead of variances", _av_std),
    Mistake("applying the activation to the input x before the first layer", _av_activation_on_input),
    Mistake("averaging per-unit variances (axis=0) instead of the variance of all N x n entries", _av_per_unit),
    Mistake("forgetting the activation between layers", _av_no_activation),
]


def check_activation_variances(func: Callable, cases: Sequence[Case] | None = None, *,
                               quiet: bool = False) -> None:
    """Check ``activation_variances(x, initializer, depth, activation, rng)``, entry by entry.

    Compared with :func:`stablegrad.init.activation_variances` on the same
    generator state, so the weights must be drawn as the exercise says: one call
    ``initializer(n, n, rng)`` per layer, layer 1 first, nothing else drawn.
    """
    check_against_reference(
        func, init.activation_variances, stack_variance_cases() if cases is None else cases,
        name="activation_variances", spec=Out("variances", like="(depth,): one per layer"),
        mistakes=ACTIVATION_VARIANCE_MISTAKES,
        forbid=[init.activation_variances, init.measure_variances], rtol=1e-7, elementwise=True, quiet=quiet)


# =========================================================================== backward_stable_variance

def backward_variance_case(n_in, n_out, activation) -> Case:
    return Case(f"n_in={n_in}, n_out={n_out}, activation={activation!r}", (n_in, n_out, activation), {},
                ("n_in", "n_out", "activation"))


def backward_variance_cases() -> list[Case]:
    """The visible cases: wide-to-narrow and narrow-to-wide layers, linear and relu."""
    return [backward_variance_case(i, o, a)
            for i, o, a in [(300, 100, "identity"), (100, 300, "tanh"), (512, 128, "relu"), (64, 256, "relu")]]


def _bv_forward(n_in, n_out, activation="identity"):
    return (2.0 if activation == "relu" else 1.0) / n_in              # the forward condition


def _bv_xavier(n_in, n_out, activation="identity"):
    return 2.0 / (n_in + n_out)                                       # Xavier's compromise


def _bv_no_relu_factor(n_in, n_out, activation="identity"):
    return 1.0 / n_out                                                # relu' passes only half


def _bv_relu_halved(n_in, n_out, activation="identity"):
    return (0.5 if activation == "relu" else 1.0) / n_out


def _bv_std(n_in, n_out, activation="identity"):
    return np.sqrt((2.0 if activation == "relu" else 1.0) / n_out)    # a standard deviation


BACKWARD_VARIANCE_MISTAKES = [
    Mistake("using the forward condition (fan_in) instead of the backward one (fan_out)", _bv_forward),
    Mistake("giving Xavier's compromise 2/(n_in + n_out) instead of the backward condition", _bv_xavier),
    Mistake("forgetting that relu' is 0 for half of the units (factor 2 for relu)", _bv_no_relu_factor),
    Mistake("dividing by 2 for relu instead of multiplying", _bv_relu_halved),
    Mistake("returning a standard deviation instead of a variance", _bv_std),
]


def check_backward_stable_variance(func: Callable, cases: Sequence[Case] | None = None, *,
                                   quiet: bool = False) -> None:
    """Check ``backward_stable_variance(n_in, n_out, activation)`` against the reference."""
    check_against_reference(
        func, init.backward_stable_variance, backward_variance_cases() if cases is None else cases,
        name="backward_stable_variance", spec=Out("Var(w)"), mistakes=BACKWARD_VARIANCE_MISTAKES,
        forbid=[init.backward_stable_variance], rtol=1e-9, quiet=quiet)
