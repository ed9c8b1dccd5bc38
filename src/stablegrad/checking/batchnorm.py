"""Checks for exercise ex04_batchnorm: batch norm forward, its two backward passes, layer norm backward.

Each ``check_<function>`` compares a learner's function with the reference in
:mod:`stablegrad.normalization` on seeded inputs (several shapes, large means
and scales, non-trivial gamma and beta, float32 and float64, training and
inference mode) and raises a :class:`~stablegrad.checking.CheckFailure` that
says what is wrong. On top of the generic comparison:

* a wrong ``dx`` is diagnosed with the invariants of a correct gradient
  (chapter 4): a batch-norm ``dx`` sums to zero over the batch, or the mean
  branch is missing; it is orthogonal to ``xhat`` up to an ``eps`` term, or the
  variance branch is missing (per example and over the features for layer norm);
* backward passes are also compared with centered finite differences of the
  reference forward pass, in float64;
* every graded function comes with named common mistakes (:class:`Mistake`),
  written as a learner would write them; ``tests/mutants/ex04_batchnorm.py``
  submits each one through nbgrader and checks that it loses its points.

Examples
--------
>>> from stablegrad.checking import batchnorm as bncheck
>>> bncheck.check_batchnorm_backward(my_batchnorm_backward)      # doctest: +SKIP
batchnorm_backward: all 6 checks passed
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np

from stablegrad import gradcheck, normalization
from stablegrad.checking import (
    Case, Mistake, Out, WrongTypeError, WrongValueError, call_guarded, check_against_reference, functions_named,
)
from stablegrad.normalization import BatchNormCache, LayerNormCache, RunningStats

__all__ = [
    "bn_forward_case", "bn_backward_case", "ln_backward_case",
    "batchnorm_forward_cases", "batchnorm_backward_cases", "layernorm_backward_cases",
    "dx_invariants", "BATCHNORM_FORWARD_MISTAKES", "BATCHNORM_BACKWARD_MISTAKES",
    "BATCHNORM_COMPACT_MISTAKES", "LAYERNORM_BACKWARD_MISTAKES",
    "check_batchnorm_forward", "check_batchnorm_backward", "check_batchnorm_backward_compact",
    "check_layernorm_backward",
]


# =========================================================================== inputs

def _x(rng, n, d, loc, scale, dtype):
    # per-feature offsets around loc, so that every feature has its own mean
    x = loc + scale * (rng.standard_normal((n, d)) + 0.5 * rng.standard_normal(d))
    return x.astype(dtype)


def _params(rng, d, dtype):
    gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)   # both signs
    return gamma.astype(dtype), rng.standard_normal(d).astype(dtype)


def _describe(n, d, loc, scale, dtype, extra=""):
    text = f"x of shape ({n}, {d}) = {scale:g} * randn + {loc:g}"
    if np.dtype(dtype) == np.float32:
        text += ", float32"
    return text + extra


def bn_forward_case(rng: np.random.Generator, n: int, d: int, *, train: bool = True, loc: float = 12.0,
                    scale: float = 5.0, dtype=np.float64, momentum: float | None = None,
                    eps: float | None = None) -> Case:
    """An ``(x, gamma, beta, running, train)`` input for ``batchnorm_forward``.

    The running statistics are random (mean near ``loc``, variance near
    ``scale**2``), so that both modes have something to use or update.
    """
    dtype = np.dtype(dtype)
    x = _x(rng, n, d, loc, scale, dtype)
    gamma, beta = _params(rng, d, dtype)
    running = RunningStats((loc + scale * rng.standard_normal(d)).astype(dtype),
                           (scale ** 2 * rng.uniform(0.5, 2.0, d)).astype(dtype))
    kwargs = {}
    if momentum is not None:
        kwargs["momentum"] = momentum
    if eps is not None:
        kwargs["eps"] = eps
    extra = (", training mode" if train else ", inference mode") + "".join(f", {k}={v:g}" for k, v in kwargs.items())
    return Case(_describe(n, d, loc, scale, dtype, extra), (x, gamma, beta, running, train), kwargs,
                ("x", "gamma", "beta", "running", "train"))


def bn_backward_case(rng: np.random.Generator, n: int, d: int, *, train: bool = True, loc: float = 12.0,
                     scale: float = 5.0, dtype=np.float64, dout: str = "normal") -> Case:
    """A ``(dout, cache)`` input for the batch-norm backward passes, the cache from the reference forward.

    ``dout`` is ``"normal"`` or ``"zeros"``.
    """
    dtype = np.dtype(dtype)
    x = _x(rng, n, d, loc, scale, dtype)
    gamma, beta = _params(rng, d, dtype)
    running = RunningStats((loc + scale * rng.standard_normal(d)).astype(dtype),
                           (scale ** 2 * rng.uniform(0.5, 2.0, d)).astype(dtype))
    _, cache, _ = normalization.batchnorm_forward(x, gamma, beta, running, train=train)
    g = (np.zeros((n, d)) if dout == "zeros" else rng.standard_normal((n, d))).astype(dtype)
    extra = ("" if train else ", inference mode") + ("" if dout == "normal" else f", dout = {dout}")
    return Case(_describe(n, d, loc, scale, dtype, extra), (g, cache), {}, ("dout", "cache"))


def ln_backward_case(rng: np.random.Generator, n: int, d: int, *, loc: float = 3.0, scale: float = 2.0,
                     dtype=np.float64, dout: str = "normal") -> Case:
    """A ``(dout, cache)`` input for ``layernorm_backward``; each row gets its own offset."""
    dtype = np.dtype(dtype)
    x = (_x(rng, n, d, loc, scale, np.float64) + scale * rng.standard_normal((n, 1))).astype(dtype)
    gamma, beta = _params(rng, d, dtype)
    _, cache = normalization.layernorm_forward(x, gamma, beta)
    g = (np.zeros((n, d)) if dout == "zeros" else rng.standard_normal((n, d))).astype(dtype)
    extra = ", per-row offsets" + ("" if dout == "normal" else f", dout = {dout}")
    return Case(_describe(n, d, loc, scale, dtype, extra), (g, cache), {}, ("dout", "cache"))


def batchnorm_forward_cases(seed: int = 0) -> list[Case]:
    """The visible forward cases: both modes, several shapes, float32, another momentum and eps."""
    rng = np.random.default_rng(seed)
    return [
        bn_forward_case(rng, 8, 3),
        bn_forward_case(rng, 5, 4, train=False),
        bn_forward_case(rng, 16, 2, dtype=np.float32),
        bn_forward_case(rng, 6, 5, loc=-3.0, scale=0.5, momentum=0.5, eps=1e-3),
        bn_forward_case(rng, 1, 3, train=False),
    ]


def batchnorm_backward_cases(seed: int = 0) -> list[Case]:
    """The visible backward cases: several shapes and scales, float32, inference mode."""
    rng = np.random.default_rng(seed)
    return [
        bn_backward_case(rng, 8, 3),
        bn_backward_case(rng, 4, 6, loc=0.0, scale=1.0),
        bn_backward_case(rng, 32, 5, loc=100.0, scale=20.0),
        bn_backward_case(rng, 10, 4, dtype=np.float32),
        bn_backward_case(rng, 6, 3, train=False),
    ]


def layernorm_backward_cases(seed: int = 0) -> list[Case]:
    """The visible layer-norm cases: several shapes, a single example, float32."""
    rng = np.random.default_rng(seed)
    return [
        ln_backward_case(rng, 4, 6),
        ln_backward_case(rng, 1, 5),
        ln_backward_case(rng, 7, 3, loc=12.0, scale=5.0),
        ln_backward_case(rng, 5, 8, dtype=np.float32),
    ]


# =========================================================================== invariants

def dx_invariants(dx, dout, xhat, gamma, std, var, eps, axis: int) -> tuple[float, float]:
    """How far ``dx`` is from the two invariants of a correct normalization gradient.

    With ``h = gamma * dout`` and the sums taken along ``axis`` (0 for batch
    norm, 1 for layer norm), a correct ``dx`` satisfies ``sum dx = 0`` and
    ``sum dx * xhat = (sum h * xhat) / std * eps / (var + eps)``. Both
    deviations are returned relative to ``sum |h| / std``, the size of the terms
    being summed (the largest over features, or over examples).

    Returns
    -------
    mean_gap, var_gap : float
        Near 0 (rounding) for a correct dx; of order 1 when the mean branch
        (first) or the variance branch (second) is missing.
    """
    dx = np.asarray(dx, np.float64)
    h = np.asarray(gamma, np.float64) * np.asarray(dout, np.float64)
    xhat = np.asarray(xhat, np.float64)
    std = np.asarray(std, np.float64)
    var = np.asarray(var, np.float64)
    size = np.abs(h).sum(axis=axis, keepdims=True) / std
    size = np.where(size > 0, size, 1.0)
    mean_gap = np.abs(dx.sum(axis=axis, keepdims=True)) / size
    expected = (h * xhat).sum(axis=axis, keepdims=True) / std * eps / (var + eps)
    var_gap = np.abs((dx * xhat).sum(axis=axis, keepdims=True) - expected) / size
    return float(mean_gap.max()), float(var_gap.max())


def _diagnosis(dx, case: Case, kind: str) -> str:
    """Sentences naming the missing branch of a wrong dx, from the invariants ("" if none applies)."""
    dout, cache = case.args
    if not isinstance(dx, np.ndarray) or dx.shape != dout.shape or not np.all(np.isfinite(dx)):
        return ""
    low = np.dtype(dout.dtype) in (np.float32, np.float16) or dx.dtype in (np.float32, np.float16)
    tol = 1e-4 if low else 1e-8
    if kind == "batch":
        if not cache.train:
            return ""
        var, eps = cache.var, cache.eps
        mean_gap, var_gap = dx_invariants(dx, dout, cache.xhat, cache.gamma, cache.std, var, eps, 0)
        over, branch_mean = "over the batch (axis 0)", "the mean branch (dL/dmean / N, added to every row)"
        branch_var = "the variance branch (dL/dvar * 2 (x - mean) / N)"
    else:
        var, eps = cache.std.astype(np.float64) ** 2 - 1e-5, 1e-5        # layernorm_forward's default eps
        mean_gap, var_gap = dx_invariants(dx, dout, cache.xhat, cache.gamma, cache.std, var, eps, 1)
        over = "over each example's features (axis 1)"
        branch_mean = "the mean branch (the term - sum_k g_nk, subtracted in every feature)"
        branch_var = "the variance branch (the term - xhat_nd * sum_k g_nk xhat_nk)"
    notes = []
    if mean_gap > tol:
        notes.append(f"your dx does not sum to zero {over} (the sum is {mean_gap:.2g} of the size of its "
                     f"terms), as a correct dx must: {branch_mean} is missing or wrong")
    # a dx with a wrong overall scale misses the eps term of the second invariant: not a missing branch
    if var_gap > tol + 2.0 * float(np.max(eps / (np.asarray(var, np.float64) + eps))):
        notes.append(f"your dx is not orthogonal to xhat {over} (off by {var_gap:.2g} of the size of the "
                     f"terms), as a correct dx must be up to the eps term: {branch_var} is missing or wrong")
    if not notes:
        notes.append("both invariants of a correct dx hold (it sums to zero and is orthogonal to xhat), so the "
                     "mean and variance branches are in place: look at the overall scale instead (gamma, "
                     "1 / sqrt(var + eps), the factor N or D, the variance itself)")
    return "\n  Diagnosis: " + ";\n  and ".join(notes) + "."


def _check_backward(func, reference, cases, *, name, spec, mistakes, forbid, kind, quiet):
    try:
        check_against_reference(func, reference, cases, name=name, spec=spec, mistakes=mistakes,
                                forbid=forbid, check_dtype=True, quiet=True)
    except WrongValueError as exc:
        message = str(exc)
        if message.startswith(f"{name}: dx"):
            case = next((c for c in cases if f"case: {c.label}" in message), None)
            if case is not None:
                try:
                    got = call_guarded(func, forbid, *copy.deepcopy(case.args), name=name)
                    message += _diagnosis(got[0], case, kind)
                except Exception:  # the comparison already said what is wrong
                    pass
        raise WrongValueError(message) from None
    _finite_differences(func, reference, cases, name=name, forbid=forbid, kind=kind)
    if not quiet:
        print(f"{name}: all {len(cases)} checks passed, and dx agrees with centered finite differences")
        for case in cases:
            print(f"  ok  {case.label}")


def _finite_differences(func, reference, cases, *, name, forbid, kind):
    """dx against centered differences of the reference forward pass (float64 cases of at most 64 entries, more
    than two values per normalization group)."""
    for case in cases:
        dout, cache = case.args
        if dout.dtype != np.float64 or dout.size > 64:
            continue
        # with 2 values per normalization group, xhat = +-1 whatever x is, and dx is of the order of eps:
        # the finite differences would compare rounding noise (the reference comparison covers these cases)
        if (kind == "batch" and cache.train and dout.shape[0] <= 2) or (kind == "layer" and dout.shape[1] <= 2):
            continue
        if kind == "batch":
            x = cache.x
            mean, var = (None, None) if cache.train else (cache.mean, cache.var)
            beta = np.zeros_like(cache.gamma)
            running = None if cache.train else RunningStats(mean, var)

            def forward(v):
                return normalization.batchnorm_forward(v, cache.gamma, beta, running, train=cache.train,
                                                       eps=cache.eps)[0]
        else:
            x = cache.xhat * cache.std           # a row-shifted copy of x has the same layer norm

            def forward(v):
                return normalization.layernorm_forward(v, cache.gamma, np.zeros_like(cache.gamma))[0]
        dx = call_guarded(func, forbid, *copy.deepcopy(case.args), name=name)[0]
        # a step small next to the spread of x (truncation error) but not lost next to its size (rounding)
        spread = float(np.min(x.std(axis=0 if kind == "batch" else 1)))
        size = max(1.0, float(np.max(np.abs(x))))
        step = 1e-6 * (min(size, 100.0 * spread) if spread > 0 else size)   # spread 0: one example, inference
        result = gradcheck.check_gradient(forward, x, np.asarray(dx, np.float64), eps=step, dout=dout, tol=1e-6)
        if not result.passed:
            raise WrongValueError(
                f"{name}: dx disagrees with centered finite differences of the forward pass: relative error "
                f"{result.max_rel_error:.2g} at index {result.worst_index} (tolerance 1e-6).\n  case: {case.label}")


# =========================================================================== batchnorm_forward

def _bnf_n_minus_1(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).sum(axis=0) / (x.shape[0] - 1)      # unbiased: N - 1
        running = RunningStats(momentum * running.mean + (1 - momentum) * mean,
                               momentum * running.var + (1 - momentum) * var)
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def _bnf_eps_outside(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        running = RunningStats(momentum * running.mean + (1 - momentum) * mean,
                               momentum * running.var + (1 - momentum) * var)
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var) + eps                                      # eps outside the square root
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def _bnf_updates_in_inference(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    new_running = RunningStats(momentum * running.mean + (1 - momentum) * mean,
                               momentum * running.var + (1 - momentum) * var)   # in both modes
    if not train:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), new_running


def _bnf_running_in_place(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        running.mean[:] = momentum * running.mean + (1 - momentum) * mean   # writes into the caller's arrays
        running.var[:] = momentum * running.var + (1 - momentum) * var
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def _bnf_momentum_swapped(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        running = RunningStats((1 - momentum) * running.mean + momentum * mean,   # weights swapped
                               (1 - momentum) * running.var + momentum * var)
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def _bnf_batch_stats_in_inference(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    mean = x.mean(axis=0)                                          # batch statistics in both modes
    var = ((x - mean) ** 2).mean(axis=0)
    if train:
        running = RunningStats(momentum * running.mean + (1 - momentum) * mean,
                               momentum * running.var + (1 - momentum) * var)
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def _bnf_wrong_axis(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=1, keepdims=True)                      # per example instead of per feature
        var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
        running = RunningStats(momentum * running.mean + (1 - momentum) * mean.mean(),
                               momentum * running.var + (1 - momentum) * var.mean())
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


BATCHNORM_FORWARD_MISTAKES = [
    Mistake("dividing the variance by N - 1 (the unbiased estimate) instead of N", _bnf_n_minus_1),
    Mistake("putting eps outside the square root, sqrt(var) + eps", _bnf_eps_outside),
    Mistake("updating the running statistics in inference mode too", _bnf_updates_in_inference),
    Mistake("writing the new running statistics into the caller's arrays (running.mean[:] = ...)",
            _bnf_running_in_place),
    Mistake("swapping the momentum weights: (1 - momentum) * old + momentum * batch", _bnf_momentum_swapped),
    Mistake("using the batch statistics in inference mode instead of the running ones",
            _bnf_batch_stats_in_inference),
    Mistake("computing the statistics over the features (axis 1) instead of the batch (axis 0)", _bnf_wrong_axis),
]

_CACHE_FIELDS = BatchNormCache._fields


def _forward_view(result, name="batchnorm_forward"):
    """(out, cache fields as a dict, running) with the cache and running types checked."""
    if not isinstance(result, tuple) or len(result) != 3:
        raise WrongTypeError(f"{name} must return a tuple (out, cache, running); got "
                             f"{type(result).__name__}" + (f" of {len(result)} items" if isinstance(result, tuple)
                                                           else ""))
    out, cache, running = result
    # by field names, not by class: the hidden tests reload stablegrad.normalization, which makes a new class
    if not isinstance(cache, tuple) or getattr(cache, "_fields", None) != _CACHE_FIELDS:
        raise WrongTypeError(f"{name}: the cache must be a BatchNormCache(x, xhat, mean, var, std, gamma, eps, "
                             f"train), as the backward passes need it; got {type(cache).__name__}")
    if not isinstance(running, tuple) or len(running) != 2:
        raise WrongTypeError(f"{name}: running must be returned as RunningStats(mean, var); got "
                             f"{type(running).__name__}")
    fields = {k: getattr(cache, k) for k in _CACHE_FIELDS}
    fields["train"] = "training" if bool(cache.train) else "inference"
    fields["eps"] = float(cache.eps)
    return out, fields, (running[0], running[1])


def _viewed(fn):
    def run(*args, **kwargs):
        return _forward_view(fn(*args, **kwargs))
    run.__name__ = getattr(fn, "__name__", "batchnorm_forward")
    return run


_FORWARD_SPEC = (Out("out", like="x"), {k: Out(f"cache.{k}") for k in _CACHE_FIELDS},
                 (Out("running.mean", like="gamma"), Out("running.var", like="gamma")))


def check_batchnorm_forward(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's ``batchnorm_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5)``.

    Compares the output, every field of the cache and the new running
    statistics with :func:`stablegrad.normalization.batchnorm_forward`, float32
    preserved; the caller's arrays (``running`` included) must not change.
    """
    cases = batchnorm_forward_cases() if cases is None else cases
    learner = _viewed(func)
    forbid = functions_named(normalization, "batchnorm_forward")
    check_against_reference(
        learner, _viewed(normalization.batchnorm_forward), cases, name="batchnorm_forward", spec=_FORWARD_SPEC,
        mistakes=[Mistake(m.description, _viewed(m.fn)) for m in BATCHNORM_FORWARD_MISTAKES],
        forbid=forbid, check_dtype=True, quiet=quiet)


# =========================================================================== batchnorm_backward (staged)

_BACKWARD_SPEC = (Out("dx", like="dout"), Out("dgamma", like="gamma"), Out("dbeta", like="gamma"))


def _bnb_no_dmean(dout, cache):
    if not cache.train:
        return dout * cache.gamma / cache.std, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)
    n = dout.shape[0]
    dxhat = dout * cache.gamma
    xmu = cache.x - cache.mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / cache.std ** 3
    dx = dxhat / cache.std + dvar * 2 * xmu / n                   # the mean path is missing
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _bnb_no_dvar(dout, cache):
    if not cache.train:
        return dout * cache.gamma / cache.std, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)
    n = dout.shape[0]
    dxhat = dout * cache.gamma
    dmean = -dxhat.sum(axis=0) / cache.std
    dx = dxhat / cache.std + dmean / n                            # the variance path is missing
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _bnb_constants(dout, cache):
    dx = dout * cache.gamma / cache.std                           # mean and variance treated as constants
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _bnb_dbeta_features(dout, cache):
    n = dout.shape[0]
    dxhat = dout * cache.gamma
    if not cache.train:
        return dxhat / cache.std, (dout * cache.xhat).sum(axis=0), dout.sum(axis=1)
    xmu = cache.x - cache.mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / cache.std ** 3
    dmean = -dxhat.sum(axis=0) / cache.std
    dx = dxhat / cache.std + dvar * 2 * xmu / n + dmean / n
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=1)  # summed over the features


def _bnb_n_minus_1(dout, cache):
    n = dout.shape[0]
    dxhat = dout * cache.gamma
    if not cache.train:
        return dxhat / cache.std, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)
    xmu = cache.x - cache.mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / cache.std ** 3
    dmean = -dxhat.sum(axis=0) / cache.std
    dx = dxhat / cache.std + dvar * 2 * xmu / (n - 1) + dmean / n  # N - 1 in the variance path
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _bnb_dgamma_with_x(dout, cache):
    n = dout.shape[0]
    dxhat = dout * cache.gamma
    if not cache.train:
        return dxhat / cache.std, (dout * cache.x).sum(axis=0), dout.sum(axis=0)
    xmu = cache.x - cache.mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / cache.std ** 3
    dmean = -dxhat.sum(axis=0) / cache.std
    dx = dxhat / cache.std + dvar * 2 * xmu / n + dmean / n
    return dx, (dout * cache.x).sum(axis=0), dout.sum(axis=0)     # x instead of xhat


def _bnb_dvar_sign(dout, cache):
    n = dout.shape[0]
    dxhat = dout * cache.gamma
    if not cache.train:
        return dxhat / cache.std, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)
    xmu = cache.x - cache.mean
    dvar = 0.5 * (dxhat * xmu).sum(axis=0) / cache.std ** 3       # lost the minus sign of -1/2
    dmean = -dxhat.sum(axis=0) / cache.std
    dx = dxhat / cache.std + dvar * 2 * xmu / n + dmean / n
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


BATCHNORM_BACKWARD_MISTAKES = [
    Mistake("leaving out the mean path (dL/dmean / N)", _bnb_no_dmean),
    Mistake("leaving out the variance path (dL/dvar * 2 (x - mean) / N)", _bnb_no_dvar),
    Mistake("treating the mean and variance as constants in training mode (dx = gamma dout / std)",
            _bnb_constants),
    Mistake("summing dbeta over the features (axis 1) instead of the batch", _bnb_dbeta_features),
    Mistake("using N - 1 instead of N in the variance path", _bnb_n_minus_1),
    Mistake("computing dgamma with x instead of xhat", _bnb_dgamma_with_x),
    Mistake("dropping the minus sign of dL/dvar = -1/2 (var + eps)^(-3/2) ...", _bnb_dvar_sign),
]


def check_batchnorm_backward(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's staged ``batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)``.

    Compares with :func:`stablegrad.normalization.batchnorm_backward` (float32
    preserved), diagnoses a wrong dx with the invariants, then checks dx
    against centered finite differences. Neither reference backward pass may
    be called.
    """
    _check_backward(func, normalization.batchnorm_backward,
                    batchnorm_backward_cases() if cases is None else cases, name="batchnorm_backward",
                    spec=_BACKWARD_SPEC, mistakes=BATCHNORM_BACKWARD_MISTAKES,
                    forbid=functions_named(normalization, "batchnorm_backward", "batchnorm_backward_compact"),
                    kind="batch", quiet=quiet)


# =========================================================================== batchnorm_backward_compact

def _bnc_wrong_axis(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    if not cache.train:
        return dout * cache.gamma / cache.std, dgamma, dbeta
    s1 = dout.sum(axis=1, keepdims=True)                          # sums over the features
    s2 = (dout * cache.xhat).sum(axis=1, keepdims=True)
    dx = cache.gamma / (n * cache.std) * (n * dout - s1 - cache.xhat * s2)
    return dx, dgamma, dbeta


def _bnc_no_gamma(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    if not cache.train:
        return dout / cache.std, dgamma, dbeta
    dx = 1.0 / (n * cache.std) * (n * dout - dbeta - cache.xhat * dgamma)   # gamma forgotten
    return dx, dgamma, dbeta


def _bnc_no_n(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    if not cache.train:
        return dout * cache.gamma / cache.std, dgamma, dbeta
    dx = cache.gamma / (n * cache.std) * (dout - dbeta - cache.xhat * dgamma)   # N dout written as dout
    return dx, dgamma, dbeta


def _bnc_no_xhat_term(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    if not cache.train:
        return dout * cache.gamma / cache.std, dgamma, dbeta
    dx = cache.gamma / (n * cache.std) * (n * dout - dbeta)       # the xhat * dgamma term is missing
    return dx, dgamma, dbeta


def _bnc_no_mean_term(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    if not cache.train:
        return dout * cache.gamma / cache.std, dgamma, dbeta
    dx = cache.gamma / (n * cache.std) * (n * dout - cache.xhat * dgamma)   # the sum(dout) term is missing
    return dx, dgamma, dbeta


def _bnc_var_instead_of_std(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    scale = cache.gamma / (cache.var + cache.eps)                 # 1 / (var + eps) instead of its square root
    if not cache.train:
        return dout * scale, dgamma, dbeta
    dx = scale / n * (n * dout - dbeta - cache.xhat * dgamma)
    return dx, dgamma, dbeta


def _bnc_train_formula_in_inference(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    dx = cache.gamma / (n * cache.std) * (n * dout - dbeta - cache.xhat * dgamma)   # also in inference mode
    return dx, dgamma, dbeta


BATCHNORM_COMPACT_MISTAKES = [
    Mistake("taking the two sums over the features (axis 1) instead of the batch (axis 0)", _bnc_wrong_axis),
    Mistake("forgetting gamma in dx", _bnc_no_gamma),
    Mistake("writing dout instead of N * dout inside the bracket", _bnc_no_n),
    Mistake("leaving out the xhat * sum(dout * xhat) term (the variance branch)", _bnc_no_xhat_term),
    Mistake("leaving out the sum(dout) term (the mean branch)", _bnc_no_mean_term),
    Mistake("dividing by var + eps instead of sqrt(var + eps)", _bnc_var_instead_of_std),
    Mistake("using the training-mode formula in inference mode (the running statistics are constants there)",
            _bnc_train_formula_in_inference),
]


def check_batchnorm_backward_compact(func: Callable, cases: Sequence[Case] | None = None, *,
                                     quiet: bool = False) -> None:
    """Check a learner's ``batchnorm_backward_compact(dout, cache) -> (dx, dgamma, dbeta)``.

    As :func:`check_batchnorm_backward`, against
    :func:`stablegrad.normalization.batchnorm_backward_compact`.
    """
    _check_backward(func, normalization.batchnorm_backward_compact,
                    batchnorm_backward_cases(1) if cases is None else cases, name="batchnorm_backward_compact",
                    spec=_BACKWARD_SPEC, mistakes=BATCHNORM_COMPACT_MISTAKES,
                    forbid=functions_named(normalization, "batchnorm_backward", "batchnorm_backward_compact"),
                    kind="batch", quiet=quiet)


# =========================================================================== layernorm_backward

def _lnb_wrong_axis(dout, cache):
    n = dout.shape[0]
    g = dout * cache.gamma
    dx = (n * g - g.sum(axis=0) - cache.xhat * (g * cache.xhat).sum(axis=0)) / (n * cache.std)  # over the batch
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _lnb_no_mean_term(dout, cache):
    d = dout.shape[1]
    g = dout * cache.gamma
    dx = (d * g - cache.xhat * (g * cache.xhat).sum(axis=1, keepdims=True)) / (d * cache.std)  # no -sum(g)
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _lnb_no_gamma(dout, cache):
    d = dout.shape[1]
    g = dout                                                      # gamma forgotten
    dx = (d * g - g.sum(axis=1, keepdims=True) - cache.xhat * (g * cache.xhat).sum(axis=1, keepdims=True)) \
        / (d * cache.std)
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _lnb_gamma_outside(dout, cache):
    d = dout.shape[1]
    s1 = dout.sum(axis=1, keepdims=True)
    s2 = (dout * cache.xhat).sum(axis=1, keepdims=True)
    dx = cache.gamma * (d * dout - s1 - cache.xhat * s2) / (d * cache.std)   # gamma pulled out of the sums
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def _lnb_params_over_features(dout, cache):
    d = dout.shape[1]
    g = dout * cache.gamma
    dx = (d * g - g.sum(axis=1, keepdims=True) - cache.xhat * (g * cache.xhat).sum(axis=1, keepdims=True)) \
        / (d * cache.std)
    return dx, (dout * cache.xhat).sum(axis=1), dout.sum(axis=1)  # per example instead of per feature


LAYERNORM_BACKWARD_MISTAKES = [
    Mistake("summing over the batch (axis 0) instead of each example's features (axis 1)", _lnb_wrong_axis),
    Mistake("leaving out the -sum(g) term (the mean branch)", _lnb_no_mean_term),
    Mistake("forgetting gamma in dx", _lnb_no_gamma),
    Mistake("pulling gamma out of the sums, as in batch norm (gamma varies along the features here)",
            _lnb_gamma_outside),
    Mistake("summing dgamma and dbeta over the features instead of the batch", _lnb_params_over_features),
]


def check_layernorm_backward(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
    """Check a learner's ``layernorm_backward(dout, cache) -> (dx, dgamma, dbeta)``.

    Compares with :func:`stablegrad.normalization.layernorm_backward` (float32
    preserved), diagnoses a wrong dx with the per-example invariants, then
    checks dx against centered finite differences.
    """
    _check_backward(func, normalization.layernorm_backward,
                    layernorm_backward_cases() if cases is None else cases, name="layernorm_backward",
                    spec=_BACKWARD_SPEC, mistakes=LAYERNORM_BACKWARD_MISTAKES,
                    forbid=functions_named(normalization, "layernorm_backward"), kind="layer", quiet=quiet)
