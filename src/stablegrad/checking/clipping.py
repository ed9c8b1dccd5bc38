"""Checks for exercise 5 (gradient clipping): cases, common mistakes and ``check_*`` helpers.

Each ``check_<function>`` compares a learner's function with the reference in
:mod:`stablegrad.clipping` on seeded inputs (dicts and lists of arrays,
float64 and float32, below and above the threshold), with the generic
:func:`stablegrad.checking.check_against_reference` (values, shapes, dtypes,
inputs left unchanged, delegation guard), and then checks the clipping
contract that a tolerance-based comparison cannot see:

* below the threshold the values come back **exactly** (``np.array_equal``);
* clipping is idempotent: clipping the result again changes nothing, exactly;
* a zero gradient gives zeros, never NaN;
* a gradient containing NaN or inf raises
  :class:`stablegrad.clipping.NonFiniteGradientError` naming the tensor.

``check_clipped_sgd_step`` grades a training step by comparing single steps
with the reference and then running the exploding experiment of chapter 5:
the loss must stay finite at every step and end below a stated bound.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np

from stablegrad import clipping, network
from stablegrad.checking import (
    Case, CheckFailure, Mistake, NotImplementedYetError, Out,
    WrongTypeError, WrongValueError, call_guarded, call_learner, check_against_reference,
)
from stablegrad.datasets import linear_regression
from stablegrad.init import uniform

__all__ = [
    "grads_case", "clip_by_value_cases", "clip_by_norm_cases", "clip_by_global_norm_cases",
    "step_case", "clipped_sgd_step_cases", "ExplodingExperiment", "EXPLODING", "run_exploding_experiment",
    "check_clip_by_value", "check_clip_by_norm", "check_clip_by_global_norm", "check_clipped_sgd_step",
    "CLIP_BY_VALUE_MISTAKES", "CLIP_BY_NORM_MISTAKES", "CLIP_BY_GLOBAL_NORM_MISTAKES",
    "CLIPPED_SGD_STEP_MISTAKES", "reference_clipped_sgd_step",
]

_SHAPES = {"W1": (4, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)}


# =========================================================================== cases

def _draw(rng, shapes, scale, dtype, zero=False):
    arrays = [np.zeros(s) if zero else scale * rng.standard_normal(s) for s in shapes]
    return [a.astype(dtype) for a in arrays]


def grads_case(rng: np.random.Generator, *, container: str = "dict", shapes=None, scale: float = 1.0,
               dtype=np.float64, zero: bool = False):
    """Gradients as a dict ``{"W1": ..., "b1": ...}`` or a list, drawn as ``scale * N(0, 1)``."""
    shapes = _SHAPES if shapes is None else shapes
    names = list(shapes) if isinstance(shapes, dict) else [f"g{i}" for i in range(len(shapes))]
    arrays = _draw(rng, list(shapes.values()) if isinstance(shapes, dict) else shapes, scale, dtype, zero)
    if container == "dict":
        return dict(zip(names, arrays))
    return arrays


def _describe(grads, threshold_name, threshold, extra=""):
    if isinstance(grads, np.ndarray):
        return f"an array of shape {grads.shape}, {grads.dtype.name}, {threshold_name} = {threshold:g}{extra}"
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads) if isinstance(grads, list) else [grads]
    kind = "dict" if isinstance(grads, dict) else "list" if isinstance(grads, list) else "array"
    shapes = ", ".join(str(a.shape) for a in arrays)
    dtype = arrays[0].dtype
    return f"a {kind} of {len(arrays)} {dtype} array(s) of shapes {shapes}, {threshold_name} = {threshold:g}{extra}"


def _global(grads) -> float:
    return clipping.global_norm(grads)


def clip_by_value_cases(seed: int = 0) -> list[Case]:
    """Visible cases: dicts and lists, limits below, between and above the entries, float32."""
    rng = np.random.default_rng(seed)
    cases = []
    for container, scale, limit, dtype in [("dict", 3.0, 1.0, np.float64), ("list", 1.0, 0.5, np.float64),
                                           ("dict", 1.0, 10.0, np.float64), ("list", 50.0, 20.0, np.float32)]:
        g = grads_case(rng, container=container, scale=scale, dtype=dtype)
        cases.append(Case(_describe(g, "limit", limit), (g, limit), {}, ("grads", "limit")))
    return cases


def clip_by_norm_cases(seed: int = 0) -> list[Case]:
    """Visible cases: above and below the threshold, 1-D to 3-D, float32."""
    rng = np.random.default_rng(seed)
    cases = []
    for shape, scale, max_norm, dtype in [((4, 5), 2.0, 1.0, np.float64), ((7,), 1.0, 100.0, np.float64),
                                          ((2, 3, 4), 10.0, 5.0, np.float64), ((6, 2), 3.0, 0.5, np.float32)]:
        g = (scale * rng.standard_normal(shape)).astype(dtype)
        cases.append(Case(_describe(g, "max_norm", max_norm, f" (norm {np.linalg.norm(g.astype(float)):.3g})"),
                          (g, max_norm), {}, ("g", "max_norm")))
    return cases


def clip_by_global_norm_cases(seed: int = 0) -> list[Case]:
    """Visible cases: one tensor much larger than the others (so per-tensor clipping differs)."""
    rng = np.random.default_rng(seed)
    cases = []
    for container, max_norm, dtype in [("dict", 1.0, np.float64), ("list", 4.0, np.float64),
                                       ("dict", 1e3, np.float64), ("list", 2.0, np.float32)]:
        g = grads_case(rng, container=container, dtype=dtype)
        first = next(iter(g)) if isinstance(g, dict) else 0
        g[first] = (g[first] * 10).astype(dtype)    # unbalanced tensors
        cases.append(Case(_describe(g, "max_norm", max_norm, f" (global norm {_global(g):.3g})"),
                          (g, max_norm), {}, ("grads", "max_norm")))
    return cases


# =========================================================================== mistakes
#
# Complete, plausible wrong implementations, written as a learner would (NumPy
# and NonFiniteGradientError only), so that the grading tests can also submit
# each as a notebook and check that it loses the points of its cell.

def _cv_sign_error(grads, limit):
    from stablegrad.clipping import NonFiniteGradientError
    items = grads.items() if isinstance(grads, dict) else enumerate(grads)
    out = {}
    for k, g in items:
        if not np.all(np.isfinite(g)):
            raise NonFiniteGradientError(f"grads[{k!r}] is not finite", f"grads[{k!r}]")
        out[k] = np.where(np.abs(g) > limit, limit, g).astype(g.dtype)   # loses the sign of large negatives
    return out if isinstance(grads, dict) else [out[i] for i in range(len(grads))]


def _cv_in_place(grads, limit):
    from stablegrad.clipping import NonFiniteGradientError
    items = grads.items() if isinstance(grads, dict) else enumerate(grads)
    for k, g in items:
        if not np.all(np.isfinite(g)):
            raise NonFiniteGradientError(f"grads[{k!r}] is not finite", f"grads[{k!r}]")
        np.clip(g, -limit, limit, out=g)                                  # writes into the caller's arrays
    return grads


def _cv_hides_inf(grads, limit):
    if isinstance(grads, dict):
        return {k: np.clip(g, -limit, limit) for k, g in grads.items()}  # inf becomes limit, silently
    return [np.clip(g, -limit, limit) for g in grads]


def _cv_clip_global_norm(grads, limit):
    from stablegrad.clipping import NonFiniteGradientError
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    if not all(np.all(np.isfinite(g)) for g in arrays):
        raise NonFiniteGradientError("grads contains NaN or inf", "grads")
    norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in arrays))
    f = min(1.0, limit / norm) if norm > 0 else 1.0
    out = [(g * f).astype(g.dtype) for g in arrays]                      # the norm, not each entry
    return dict(zip(grads, out)) if isinstance(grads, dict) else out


CLIP_BY_VALUE_MISTAKES = [
    Mistake("replacing every large entry by +limit (np.where(|g| > limit, limit, g)): a sign error",
            _cv_sign_error),
    Mistake("clipping the caller's arrays in place (np.clip(..., out=g))", _cv_in_place),
    Mistake("not checking for NaN or inf (np.clip turns inf into limit silently)", _cv_hides_inf),
    Mistake("clipping the global norm instead of each entry", _cv_clip_global_norm),
]


def _cn_always_rescale(g, max_norm):
    from stablegrad.clipping import NonFiniteGradientError
    if not np.all(np.isfinite(g)):
        raise NonFiniteGradientError("g is not finite", "g")
    m = float(np.max(np.abs(g)))
    norm = m * float(np.sqrt(np.sum((np.asarray(g, np.float64) / m) ** 2))) if m > 0 else 0.0
    return (g * (max_norm / norm)).astype(g.dtype)                        # scales small gradients up (0/0 at zero)


def _cn_inexact_noop(g, max_norm):
    from stablegrad.clipping import NonFiniteGradientError
    if not np.all(np.isfinite(g)):
        raise NonFiniteGradientError("g is not finite", "g")
    m = float(np.max(np.abs(g)))
    if m == 0:
        return g.copy()
    norm = m * float(np.sqrt(np.sum((np.asarray(g, np.float64) / m) ** 2)))
    return (g / norm * min(norm, max_norm)).astype(g.dtype)              # rescales below the threshold too


def _cn_in_place(g, max_norm):
    from stablegrad.clipping import NonFiniteGradientError
    if not np.all(np.isfinite(g)):
        raise NonFiniteGradientError("g is not finite", "g")
    m = float(np.max(np.abs(g)))
    norm = m * float(np.sqrt(np.sum((np.asarray(g, np.float64) / m) ** 2))) if m > 0 else 0.0
    if norm > max_norm:
        g *= max_norm / norm                                              # the caller's array
    return g


def _cn_float64(g, max_norm):
    from stablegrad.clipping import NonFiniteGradientError
    if not np.all(np.isfinite(g)):
        raise NonFiniteGradientError("g is not finite", "g")
    m = float(np.max(np.abs(g)))
    if m == 0:
        return g.copy()
    norm = m * np.sqrt(np.sum((np.asarray(g, np.float64) / m) ** 2))
    if norm <= max_norm * (1 + 8 * np.finfo(g.dtype).eps):
        return g.copy()
    return g * (max_norm / norm)                                          # float32 times float64: float64


def _cn_naive_norm(g, max_norm):
    from stablegrad.clipping import NonFiniteGradientError
    if not np.all(np.isfinite(g)):
        raise NonFiniteGradientError("g is not finite", "g")
    g64 = np.asarray(g, np.float64)
    with np.errstate(over="ignore"):
        norm = np.sqrt(np.sum(g64 * g64))                                 # overflows for entries ~1e155
    if norm <= max_norm * (1 + 8 * np.finfo(g.dtype).eps):
        return g.copy()
    return (g * (max_norm / norm)).astype(g.dtype)


CLIP_BY_NORM_MISTAKES = [
    Mistake("scaling by max_norm / norm without min(1, .) (small gradients are scaled up)", _cn_always_rescale),
    Mistake("rescaling even below the threshold (g / norm * min(norm, max_norm) is not exactly g)",
            _cn_inexact_noop),
    Mistake("rescaling the caller's array in place (g *= ...)", _cn_in_place),
    Mistake("returning float64 for a float32 gradient", _cn_float64),
    Mistake("computing the norm as sqrt(sum(g**2)), which overflows for huge entries", _cn_naive_norm),
]


def _tensor_norm(g) -> float:
    """||g||, scaled by the largest entry first so that entries near 1e200 do not overflow."""
    m = float(np.max(np.abs(g)))
    return m * float(np.sqrt(np.sum((np.asarray(g, np.float64) / m) ** 2))) if m > 0 else 0.0


def _global_norm_parts(grads):
    """What every global-norm mistake below starts with, done right: keys, arrays, the global norm
    before clipping (overflow-safe) and the rounding allowance; non-finite tensors raise as the
    package does."""
    from stablegrad.clipping import NonFiniteGradientError
    keys = list(grads) if isinstance(grads, dict) else list(range(len(grads)))
    arrays = [grads[k] for k in keys]
    for k, g in zip(keys, arrays):
        if not np.all(np.isfinite(g)):
            raise NonFiniteGradientError(f"grads[{k!r}] is not finite", f"grads[{k!r}]")
    m = max(float(np.max(np.abs(g))) for g in arrays)   # scale by the largest entry of all tensors
    norm = m * float(np.sqrt(sum(np.sum((np.asarray(g, np.float64) / m) ** 2) for g in arrays))) if m > 0 else 0.0
    eps = max(float(np.finfo(g.dtype).eps) for g in arrays)
    return keys, arrays, norm, eps


def _gn_per_tensor(grads, max_norm):
    keys, arrays, norm, eps = _global_norm_parts(grads)
    out = []
    for g in arrays:                                                      # one factor per tensor
        n = _tensor_norm(g)
        out.append(g.copy() if n <= max_norm * (1 + 8 * eps) else (g * (max_norm / n)).astype(g.dtype))
    return (dict(zip(keys, out)) if isinstance(grads, dict) else out), norm


def _gn_no_min(grads, max_norm):
    keys, arrays, norm, eps = _global_norm_parts(grads)
    out = [(g * (max_norm / norm)).astype(g.dtype) for g in arrays]      # no min(1, .)
    return (dict(zip(keys, out)) if isinstance(grads, dict) else out), norm


def _gn_norm_after(grads, max_norm):
    keys, arrays, norm, eps = _global_norm_parts(grads)
    if norm <= max_norm * (1 + 8 * eps):
        out = [g.copy() for g in arrays]
    else:
        out = [(g * (max_norm / norm)).astype(g.dtype) for g in arrays]
        norm = float(np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in out)))   # after clipping
    return (dict(zip(keys, out)) if isinstance(grads, dict) else out), norm


def _gn_in_place(grads, max_norm):
    keys, arrays, norm, eps = _global_norm_parts(grads)
    if norm > max_norm * (1 + 8 * eps):
        for g in arrays:
            g *= max_norm / norm                                          # the caller's arrays
    return grads, norm


def _gn_sum_of_norms(grads, max_norm):
    keys, arrays, norm, eps = _global_norm_parts(grads)
    norm = sum(_tensor_norm(g) for g in arrays)                          # sum of norms, not root of squares
    if norm <= max_norm * (1 + 8 * eps):
        out = [g.copy() for g in arrays]
    else:
        out = [(g * (max_norm / norm)).astype(g.dtype) for g in arrays]
    return (dict(zip(keys, out)) if isinstance(grads, dict) else out), norm


CLIP_BY_GLOBAL_NORM_MISTAKES = [
    Mistake("clipping each tensor by its own norm instead of the global norm", _gn_per_tensor),
    Mistake("scaling by max_norm / norm without min(1, .)", _gn_no_min),
    Mistake("returning the norm after clipping instead of before", _gn_norm_after),
    Mistake("rescaling the caller's arrays in place (g *= ...)", _gn_in_place),
    Mistake("using the sum of the tensors' norms as the global norm", _gn_sum_of_norms),
]


# =========================================================================== contract checks

def _is_nonfinite_error(exc) -> bool:
    """``NonFiniteGradientError`` from stablegrad.clipping, also from before a module reload."""
    return any(c.__name__ == "NonFiniteGradientError" and c.__module__ == "stablegrad.clipping"
               for c in type(exc).__mro__)


def _leaves(x):
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _call(func, forbid, name, *args):
    return call_learner(func, forbid, *args, name=name)


def _clipped_part(out, kind):
    if kind == "global":
        if not isinstance(out, tuple) or len(out) != 2:
            raise WrongTypeError(f"clip_by_global_norm must return a tuple (clipped, norm_before); "
                                 f"got {type(out).__name__}")
        return out[0]
    return out


def _exactly_equal(got, expected) -> bool:
    got, expected = _leaves(got), _leaves(expected)
    return len(got) == len(expected) and all(
        isinstance(a, np.ndarray) and a.shape == b.shape and np.array_equal(a, b) for a, b in zip(got, expected))


def _check_contract(func, kind: str, name: str, threshold_name: str, forbid, rng: np.random.Generator,
                    dtype=np.float64) -> list[str]:
    """The properties a tolerance cannot see; returns the labels of what was checked."""
    make = (lambda scale, zero=False: (scale * rng.standard_normal((3, 4))).astype(dtype) * (not zero)) \
        if kind == "norm" else (lambda scale, zero=False: grads_case(rng, scale=scale, dtype=dtype, zero=zero))
    dt = np.dtype(dtype).name
    # 1. exactly unchanged below the threshold
    g = make(1.0)
    big = 10.0 * (float(np.max(np.abs(np.concatenate([np.ravel(a) for a in _leaves(g)])))) if kind == "value"
                  else _global(g))
    out = _clipped_part(_call(func, forbid, name, copy.deepcopy(g), big), kind)
    if not _exactly_equal(out, g):
        raise WrongValueError(
            f"{name}: with {threshold_name} = {big:.3g}, far above the gradient ({dt}), the result must be "
            f"exactly the input values (np.array_equal), but it is not. Return copies when nothing needs "
            f"clipping instead of multiplying by a factor that is 1 only up to rounding.")
    # 2. idempotent
    g = make(5.0)
    small = 0.3
    once = _clipped_part(_call(func, forbid, name, copy.deepcopy(g), small), kind)
    twice = _clipped_part(_call(func, forbid, name, copy.deepcopy(once), small), kind)
    if not _exactly_equal(twice, once):
        raise WrongValueError(
            f"{name} is not idempotent ({dt}): clipping its own output again with {threshold_name} = {small} "
            f"changed it. After clipping, the norm is {threshold_name} only up to rounding; treat "
            f"norm <= {threshold_name} * (1 + 8 * eps) (eps = np.finfo(dtype).eps) as 'not above'.")
    # 3. zero gradient
    z = make(1.0, zero=True)
    with np.errstate(all="ignore"):
        out = _clipped_part(_call(func, forbid, name, copy.deepcopy(z), 1.0), kind)
    leaves = _leaves(out)
    if any(not isinstance(a, np.ndarray) or not np.all(np.isfinite(a)) for a in leaves):
        raise WrongValueError(f"{name}: a zero gradient gave NaN or inf ({dt}); it must give zeros "
                              f"(the norm is 0: do not divide by it).")
    if not _exactly_equal(out, z):
        raise WrongValueError(f"{name}: a zero gradient must give zeros of the same shapes.")
    if kind == "global":
        norm = _call(func, forbid, name, copy.deepcopy(z), 1.0)[1]
        if norm != 0:
            raise WrongValueError(f"{name}: a zero gradient must have norm_before = 0; got {norm!r}.")
    # 4. non-finite: raise NonFiniteGradientError naming the tensor
    for bad_value in (np.inf, -np.inf, np.nan):
        g = make(1.0)
        if kind == "norm":
            g[1, 2] = bad_value
            where = None
        else:
            where = list(g)[-1]                                           # the last tensor, "b2"
            g[where][0] = bad_value
        try:
            with np.errstate(all="ignore"):
                call_guarded(func, forbid, copy.deepcopy(g), 1.0, name=name)
        except CheckFailure:
            raise
        except Exception as exc:
            if _is_nonfinite_error(exc):
                if where is not None and str(where) not in str(exc):
                    raise WrongValueError(
                        f"{name} raised NonFiniteGradientError for a {bad_value} in grads[{where!r}], but its "
                        f"message does not name the tensor: {str(exc)!r}. Put its key in the message.") from None
                continue
            if isinstance(exc, NotImplementedError):
                raise NotImplementedYetError.for_function(name) from None
            raise WrongTypeError(
                f"{name} raised {type(exc).__name__} for a gradient containing {bad_value}; it must raise "
                f"NonFiniteGradientError (from stablegrad.clipping), the package's contract.") from None
        raise WrongValueError(
            f"{name} returned a result for a gradient containing {bad_value} ({dt}). No clipping can repair "
            f"a non-finite gradient: raise NonFiniteGradientError(message, name) naming the tensor.")
    return [f"exact no-op below the threshold ({dt})", f"idempotent ({dt})", f"zero gradient gives zeros ({dt})",
            f"inf / -inf / NaN raise NonFiniteGradientError ({dt})"]


def _run(func, reference, cases, name, spec, mistakes, forbid, kind, threshold_name, quiet, seed):
    check_against_reference(func, reference, cases, name=name, spec=spec, mistakes=mistakes, forbid=forbid,
                            check_dtype=True, quiet=True)
    rng = np.random.default_rng(seed)
    checked = []
    for dtype in (np.float64, np.float32):
        try:
            checked += _check_contract(func, kind, name, threshold_name, forbid, rng, dtype)
        except CheckFailure as exc:
            message = str(exc)
            matched = [m.description for m in mistakes if _mistake_fails_contract(m, kind, name, threshold_name,
                                                                                     seed, dtype, message)]
            if matched:
                message += "\n  This matches a common mistake: " + "; or ".join(matched) + "."
            raise type(exc)(message) from None
    if not quiet:
        print(f"{name}: all {len(cases) + len(checked)} checks passed")
        for case in cases:
            print(f"  ok  {case.label}")
        for label in checked:
            print(f"  ok  {label}")


def _mistake_fails_contract(mistake, kind, name, threshold_name, seed, dtype, message) -> bool:
    """Does the known mistake fail the same contract check with the same message?"""
    rng = np.random.default_rng(seed)
    try:
        if dtype == np.float32:
            _check_contract(mistake.fn, kind, name, threshold_name, [], rng, np.float64)
        _check_contract(mistake.fn, kind, name, threshold_name, [], rng, dtype)
    except CheckFailure as exc:
        return str(exc) == message
    except Exception:
        return False
    return False


def _forbid_clipping():
    """Every function of stablegrad.clipping: the exercise is to write them."""
    names = ("clip_by_value", "clip_by_norm", "clip_by_global_norm", "global_norm", "_leaves", "_rebuild",
             "_norm_parts", "_product", "_slack", "_scaled")
    return [getattr(clipping, n) for n in names if callable(getattr(clipping, n, None))]


def check_clip_by_value(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False,
                        seed: int = 0) -> None:
    """Check a learner's ``clip_by_value(grads, limit)`` (dict or list of arrays in, same out)."""
    _run(func, clipping.clip_by_value, clip_by_value_cases() if cases is None else cases, "clip_by_value",
         None, CLIP_BY_VALUE_MISTAKES, _forbid_clipping(), "value", "limit", quiet, seed)


def check_clip_by_norm(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False,
                       seed: int = 0) -> None:
    """Check a learner's ``clip_by_norm(g, max_norm)`` (one array)."""
    _run(func, clipping.clip_by_norm, clip_by_norm_cases() if cases is None else cases, "clip_by_norm",
         Out("the clipped gradient", like="g"), CLIP_BY_NORM_MISTAKES, _forbid_clipping(), "norm", "max_norm",
         quiet, seed)


def check_clip_by_global_norm(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False,
                              seed: int = 0) -> None:
    """Check a learner's ``clip_by_global_norm(grads, max_norm) -> (clipped, norm_before)``."""
    _run(func, clipping.clip_by_global_norm, clip_by_global_norm_cases() if cases is None else cases,
         "clip_by_global_norm", (None, Out("norm_before")), CLIP_BY_GLOBAL_NORM_MISTAKES, _forbid_clipping(),
         "global", "max_norm", quiet, seed)


# =========================================================================== the training step

def reference_clipped_sgd_step(model, x, y, lr, max_norm):
    """One SGD step on the MSE with the gradient clipped to global norm ``max_norm``.

    Returns ``(new_model, loss, norm_before)``; ``model`` is not modified.
    """
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    clipped, norm_before = clipping.clip_by_global_norm(grads, max_norm)
    new_params = {k: p - lr * clipped[k] for k, p in model.params.items()}
    return model.with_params(new_params), loss, norm_before


def _unpack_step(out, name):
    if not isinstance(out, tuple) or len(out) != 3:
        raise WrongTypeError(f"{name} must return a tuple (new_model, loss, norm_before); "
                             f"got {type(out).__name__}" + (f" of {len(out)} items" if isinstance(out, tuple) else ""))
    new_model, loss, norm = out
    if not isinstance(new_model, network.MLP):
        raise WrongTypeError(f"{name}: new_model must be an MLP (use model.with_params(new_params)); "
                             f"got {type(new_model).__name__}")
    return dict(new_model.params), loss, norm


_STEP_SPEC = ({k: Out(f"new_model.params[{k!r}]") for k in ("W1", "b1", "W2", "b2", "W3", "b3")},
              Out("loss"), Out("norm_before"))


def step_case(rng: np.random.Generator, sizes, n: int, *, weight_scale: float, lr: float, max_norm: float,
              activation: str = "relu", dtype=np.float64):
    """A ``(params, activation, x, y, lr, max_norm)`` input; the model is rebuilt around ``params`` per call."""
    model = network.init_mlp(list(sizes), activation, "identity",
                             lambda fi, fo, r: weight_scale * r.standard_normal((fi, fo)), rng, dtype=dtype)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    label = (f"{activation} MLP {tuple(sizes)}, N={n}, weights {weight_scale:g} N(0, 1), lr={lr:g}, "
             f"max_norm={max_norm:g} (gradient norm {clipping.global_norm(grads):.3g})")
    if np.dtype(dtype) != np.float64:
        label += f", {np.dtype(dtype).name}"
    return Case(label, (dict(model.params), activation, x, y, lr, max_norm), {},
                ("model.params", "activation", "x", "y", "lr", "max_norm"))


def clipped_sgd_step_cases(seed: int = 0) -> list[Case]:
    """Visible single-step cases: clipped and not clipped."""
    rng = np.random.default_rng(seed)
    return [
        step_case(rng, (3, 5, 1), 8, weight_scale=3.0, lr=0.01, max_norm=1.0),
        step_case(rng, (4, 6, 2), 5, weight_scale=0.3, lr=0.1, max_norm=100.0),
        step_case(rng, (2, 7, 7, 1), 6, weight_scale=2.0, lr=0.05, max_norm=5.0, activation="tanh"),
    ]


def _model_of(params, activation):
    """An MLP around ``params`` (shared arrays, so in-place changes show) with one hidden activation."""
    weights = [params[k] for k in params if k.startswith("W")]
    sizes = (weights[0].shape[0],) + tuple(W.shape[1] for W in weights)
    return network.MLP(sizes, (activation,) * (len(weights) - 1) + ("identity",), False, dict(params))


def _adapt(step, name):
    def run(params, activation, x, y, lr, max_norm):
        return _unpack_step(step(_model_of(params, activation), x, y, lr, max_norm), name)
    run.__name__ = name
    return run


class ExplodingExperiment:
    """The exploding network of chapter 5, trained with a learner's step.

    15 standard-normal features, 1500 samples, noise 0.2 (``data_seed``); one
    hidden layer of 35 ReLU units, a linear output, MSE; weights from
    Uniform(4, 5) (``model_seed``); mini-batches of 32 in an order drawn from
    ``order_seed``; SGD with learning rate ``lr`` and global-norm clipping at
    ``max_norm``. Passes if every step's loss is finite and the MSE on the
    whole data set after ``epochs`` epochs is below ``bound``.
    """

    def __init__(self, *, data_seed=0, model_seed=1, order_seed=2, lr=0.01, max_norm=1000.0, epochs=10,
                 bound=20.0):
        self.data_seed, self.model_seed, self.order_seed = data_seed, model_seed, order_seed
        self.lr, self.max_norm, self.epochs, self.bound = lr, max_norm, epochs, bound

    def __repr__(self):
        return (f"exploding experiment (data seed {self.data_seed}, lr {self.lr:g}, max_norm {self.max_norm:g}, "
                f"{self.epochs} epochs, final MSE < {self.bound:g})")


EXPLODING = ExplodingExperiment()


def run_exploding_experiment(step: Callable, experiment: ExplodingExperiment = EXPLODING):
    """Train with ``step``; return ``(step_losses, final_mse)`` (raises on a non-finite loss)."""
    X, y, _ = linear_regression(1500, 15, 0.2, np.random.default_rng(experiment.data_seed))
    model = network.init_mlp([15, 35, 1], "relu", "identity",
                             lambda fi, fo, r: uniform(fi, fo, r, low=4.0, high=5.0),
                             np.random.default_rng(experiment.model_seed))
    order_rng = np.random.default_rng(experiment.order_seed)
    losses = []
    for epoch in range(experiment.epochs):
        order = order_rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], 32):
            idx = order[start:start + 32]
            model, loss, _ = step(model, X[idx], y[idx], experiment.lr, experiment.max_norm)
            losses.append(float(loss))
            if not np.isfinite(loss):
                return np.array(losses), float("nan")
    final, _ = network.evaluate(model, X, y, "mse")
    return np.array(losses), float(final)


def _step_nonfinite_case():
    rng = np.random.default_rng(5)
    model = network.init_mlp([3, 4, 1], "relu", "identity", lambda fi, fo, r: np.full((fi, fo), 1e200), rng)
    return model, rng.standard_normal((4, 3)) + 3.0, rng.standard_normal((4, 1))


def _wrapped_learner_step(func, forbid, name):
    def step(model, x, y, lr, max_norm):
        out = call_learner(func, forbid, model, x, y, lr, max_norm, name=name,
                           context="during the exploding experiment")
        new_model, loss, norm = out if isinstance(out, tuple) and len(out) == 3 else (None, None, None)
        if not isinstance(new_model, network.MLP):
            _unpack_step(out, name)
        return new_model, loss, norm
    return step


def check_clipped_sgd_step(func: Callable, cases: Sequence[Case] | None = None, *,
                           experiment: ExplodingExperiment = EXPLODING, quiet: bool = False) -> None:
    """Check a learner's ``clipped_sgd_step(model, x, y, lr, max_norm) -> (new_model, loss, norm_before)``.

    Single steps are compared with the reference (parameters, loss, norm
    before clipping; ``model.params`` unchanged), a model whose loss overflows
    must raise ``NonFiniteGradientError``, and the exploding experiment must
    stay finite and end below its bound. Calling ``network.mlp_loss_and_grads``
    and ``clipping.clip_by_global_norm`` is expected; ``network.train`` is not allowed.
    """
    name = "clipped_sgd_step"
    cases = clipped_sgd_step_cases() if cases is None else cases
    forbid = [reference_clipped_sgd_step, network.train]
    check_against_reference(_adapt(func, name), _adapt(reference_clipped_sgd_step, name), cases, name=name,
                            spec=_STEP_SPEC, mistakes=[Mistake(m.description, _adapt(m.fn, name))
                                                       for m in CLIPPED_SGD_STEP_MISTAKES],
                            forbid=forbid, quiet=True)
    # the contract: a non-finite loss or gradient raises
    model, x, y = _step_nonfinite_case()
    try:
        with np.errstate(all="ignore"):
            call_guarded(func, forbid, model, x, y, 0.01, 1.0, name=name)
    except CheckFailure:
        raise
    except Exception as exc:
        if _is_nonfinite_error(exc):
            pass
        elif isinstance(exc, NotImplementedError):
            raise NotImplementedYetError.for_function(name) from None
        else:
            raise WrongTypeError(f"{name} raised {type(exc).__name__} for a model whose loss overflows to inf; "
                                 f"expected NonFiniteGradientError (clip_by_global_norm raises it for you).") from None
    else:
        raise WrongValueError(f"{name} returned a step for a model whose loss overflows to inf; it must raise "
                              f"NonFiniteGradientError (let clip_by_global_norm's error through).")
    # the exploding experiment
    with np.errstate(all="ignore"):
        losses, final = run_exploding_experiment(_wrapped_learner_step(func, forbid, name), experiment)
    if not np.all(np.isfinite(losses)):
        bad = int(np.flatnonzero(~np.isfinite(losses))[0])
        raise WrongValueError(f"{name}: in the {experiment}, the loss became {losses[bad]} at step {bad + 1}. "
                              f"Is the gradient clipped before the update?")
    if not final < experiment.bound:
        raise WrongValueError(f"{name}: in the {experiment}, the final MSE is {final:.4g}, not below "
                              f"{experiment.bound:g}.")
    if not quiet:
        print(f"{name}: all {len(cases) + 2} checks passed")
        for case in cases:
            print(f"  ok  {case.label}")
        print("  ok  a model whose loss overflows raises NonFiniteGradientError")
        print(f"  ok  {experiment}: {losses.size} finite steps, final MSE {final:.3g}")


# --------------------------------------------------------------------------- mistakes of the step

def _st_no_clip(model, x, y, lr, max_norm):
    from stablegrad import network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    norm = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    return model.with_params({k: p - lr * grads[k] for k, p in model.params.items()}), loss, norm


def _st_per_tensor(model, x, y, lr, max_norm):
    from stablegrad import clipping, network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    norm = clipping.global_norm(grads)
    clipped = {k: clipping.clip_by_norm(g, max_norm) for k, g in grads.items()}
    return model.with_params({k: p - lr * clipped[k] for k, p in model.params.items()}), loss, norm


def _st_ascent(model, x, y, lr, max_norm):
    from stablegrad import clipping, network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    clipped, norm = clipping.clip_by_global_norm(grads, max_norm)
    return model.with_params({k: p + lr * clipped[k] for k, p in model.params.items()}), loss, norm


def _st_in_place(model, x, y, lr, max_norm):
    from stablegrad import clipping, network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    clipped, norm = clipping.clip_by_global_norm(grads, max_norm)
    for k, p in model.params.items():
        p -= lr * clipped[k]                                              # the caller's weights
    return model, loss, norm


def _st_norm_after(model, x, y, lr, max_norm):
    from stablegrad import clipping, network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    clipped, _ = clipping.clip_by_global_norm(grads, max_norm)
    new = model.with_params({k: p - lr * clipped[k] for k, p in model.params.items()})
    return new, loss, clipping.global_norm(clipped)


def _st_clip_value(model, x, y, lr, max_norm):
    from stablegrad import clipping, network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    norm = clipping.global_norm(grads)
    clipped = clipping.clip_by_value(grads, max_norm)
    return model.with_params({k: p - lr * clipped[k] for k, p in model.params.items()}), loss, norm


def _st_clip_update(model, x, y, lr, max_norm):
    from stablegrad import clipping, network
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    update, norm = clipping.clip_by_global_norm({k: lr * g for k, g in grads.items()}, max_norm)
    norm = norm / lr                                                      # clips lr * g, not g
    return model.with_params({k: p - update[k] for k, p in model.params.items()}), loss, norm


CLIPPED_SGD_STEP_MISTAKES = [
    Mistake("updating with the raw gradient (no clipping)", _st_no_clip),
    Mistake("clipping each tensor by its own norm instead of the global norm", _st_per_tensor),
    Mistake("adding the gradient (p + lr * g): gradient ascent", _st_ascent),
    Mistake("updating the caller's weights in place (p -= ...)", _st_in_place),
    Mistake("returning the norm after clipping instead of before", _st_norm_after),
    Mistake("clipping by value instead of by global norm", _st_clip_value),
    Mistake("clipping the update lr * g instead of the gradient g", _st_clip_update),
]
