"""Checks for exercise 4, batch normalization (``batchnorm_forward``, ``batchnorm_backward``,
``batchnorm_backward_compact``, ``layernorm_backward``), declared on :mod:`stablegrad.checking.engine`.

Each graded function has a case builder with the knobs hidden tests turn (batch size, width, mean and scale of
x, dtype, mode, momentum, eps, a zero upstream gradient), visible cases, a learner-style source, its common
mistakes as edits of it, and a one-line ``check_<function>``. The backward passes carry two more properties:

* the invariants of a correct normalization gradient (chapter 4), on inputs of their own (a batch of two, var
  near eps, huge values, float32): ``dx`` sums to zero over each normalization group, or the mean branch is
  wrong; it is orthogonal to ``xhat`` up to an ``eps`` term, or the variance branch is;
* ``dx`` against centered finite differences of the reference forward pass, in float64.

>>> from stablegrad.checking import batchnorm as bncheck
>>> bncheck.check_batchnorm_backward(my_batchnorm_backward)      # doctest: +SKIP
batchnorm_backward: all 10 checks passed
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from stablegrad import gradcheck, normalization
from stablegrad.checking.comparison import Out
from stablegrad.checking.engine import Case, Graded, Mistake, Problem, Property
from stablegrad.checking.guard import functions_named
from stablegrad.normalization import BatchNormCache, LayerNormCache, RunningStats

__all__ = [
    "bn_forward_case", "bn_backward_case", "ln_backward_case", "batchnorm_forward_cases", "batchnorm_backward_cases",
    "layernorm_backward_cases", "dx_invariants", "BATCHNORM_FORWARD", "BATCHNORM_BACKWARD",
    "BATCHNORM_BACKWARD_COMPACT", "LAYERNORM_BACKWARD", "check_batchnorm_forward", "check_batchnorm_backward",
    "check_batchnorm_backward_compact", "check_layernorm_backward", "DECLARATIONS",
]

#: What the notebook's import cell provides.
NAMESPACE = {"np": np, "normalization": normalization, "BatchNormCache": BatchNormCache,
             "LayerNormCache": LayerNormCache, "RunningStats": RunningStats}


# =========================================================================== inputs

def _x(rng, n, d, loc, scale, dtype):
    # per-feature offsets around loc, so that every feature has its own mean
    return (loc + scale * (rng.standard_normal((n, d)) + 0.5 * rng.standard_normal(d))).astype(dtype)


def _params(rng, d, dtype):
    gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)   # both signs
    return gamma.astype(dtype), rng.standard_normal(d).astype(dtype)


def _running(rng, d, loc, scale, dtype):
    return RunningStats((loc + scale * rng.standard_normal(d)).astype(dtype),
                        (scale ** 2 * rng.uniform(0.5, 2.0, d)).astype(dtype))


def _describe(n, d, loc, scale, dtype, extra=""):
    text = f"x of shape ({n}, {d}) = {scale:g} * randn + {loc:g}"
    return text + (", float32" if np.dtype(dtype) == np.float32 else "") + extra


def _knobs(**kwargs) -> tuple[dict, str]:
    given = {k: v for k, v in kwargs.items() if v is not None}
    return given, "".join(f", {k}={v:g}" for k, v in given.items())


def bn_forward_case(rng: np.random.Generator, n: int, d: int, *, train: bool = True, loc: float = 12.0,
                    scale: float = 5.0, dtype=np.float64, momentum: float | None = None,
                    eps: float | None = None) -> Case:
    """An ``(x, gamma, beta, running, train)`` input (and ``momentum``, ``eps`` if given) for ``batchnorm_forward``.

    The running statistics are random (mean near ``loc``, variance near
    ``scale**2``), so that both modes have something to use or update.
    """
    dtype = np.dtype(dtype)
    x = _x(rng, n, d, loc, scale, dtype)
    gamma, beta = _params(rng, d, dtype)
    kwargs, knobs = _knobs(momentum=momentum, eps=eps)
    label = _describe(n, d, loc, scale, dtype, (", training mode" if train else ", inference mode") + knobs)
    return Case(label, (x, gamma, beta, _running(rng, d, loc, scale, dtype), train), kwargs,
                ("x", "gamma", "beta", "running", "train"))


def bn_backward_case(rng: np.random.Generator, n: int, d: int, *, train: bool = True, loc: float = 12.0,
                     scale: float = 5.0, dtype=np.float64, dout: str = "normal", eps: float = 1e-5) -> Case:
    """A ``(dout, cache)`` input for the batch-norm backward passes, the cache from the reference forward.

    ``dout`` is ``"normal"`` or ``"zeros"``; ``eps`` is the forward pass's (it is in the cache).
    """
    dtype = np.dtype(dtype)
    x = _x(rng, n, d, loc, scale, dtype)
    gamma, beta = _params(rng, d, dtype)
    _, cache, _ = normalization.batchnorm_forward(x, gamma, beta, _running(rng, d, loc, scale, dtype),
                                                  train=train, eps=eps)
    g = (np.zeros((n, d)) if dout == "zeros" else rng.standard_normal((n, d))).astype(dtype)
    extra = (("" if train else ", inference mode") + ("" if dout == "normal" else f", dout = {dout}")
             + ("" if eps == 1e-5 else f", eps={eps:g}"))
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
    """The visible forward cases: both modes, a batch of two, one feature, one example in inference mode,
    var near eps, huge values, float32, another momentum and eps."""
    rng = np.random.default_rng(seed)
    return [
        bn_forward_case(rng, 8, 3),
        bn_forward_case(rng, 5, 4, train=False),
        bn_forward_case(rng, 16, 2, dtype=np.float32),                        # the text: float32 in, out
        bn_forward_case(rng, 6, 5, loc=-3.0, scale=0.5, momentum=0.7, eps=1e-3),
        bn_forward_case(rng, 1, 3, train=False),                              # the text: a single example
        bn_forward_case(rng, 2, 4),                                           # the smallest training batch
        bn_forward_case(rng, 9, 1, loc=5.0, scale=1e-3),                      # one feature; var ~ eps
        bn_forward_case(rng, 7, 3, loc=1e4, scale=1e3, momentum=0.0),         # huge values; running = batch
        bn_forward_case(rng, 4, 3, train=False, dtype=np.float32, eps=0.1),
    ]


def batchnorm_backward_cases(seed: int = 0) -> list[Case]:
    """The visible backward cases: a batch of two, one feature, var near eps, huge values, float32,
    inference mode (one example, another eps)."""
    rng = np.random.default_rng(seed)
    return [
        bn_backward_case(rng, 8, 3),
        bn_backward_case(rng, 4, 6, loc=0.0, scale=1.0),
        bn_backward_case(rng, 10, 4, dtype=np.float32),
        bn_backward_case(rng, 6, 3, train=False),
        bn_backward_case(rng, 2, 3),                                          # a batch of two
        bn_backward_case(rng, 11, 1),                                         # a single feature
        bn_backward_case(rng, 9, 4, loc=3.0, scale=1e-3),                     # var ~ eps
        bn_backward_case(rng, 6, 5, loc=1e4, scale=1e3),                      # huge values
        bn_backward_case(rng, 1, 4, train=False),                             # one example, inference
        bn_backward_case(rng, 5, 3, train=False, loc=1.0, scale=1e-2, eps=1e-3),
    ]


def layernorm_backward_cases(seed: int = 0) -> list[Case]:
    """The visible layer-norm cases: a single example, two features, large values, float32."""
    rng = np.random.default_rng(seed)
    return [
        ln_backward_case(rng, 4, 6),
        ln_backward_case(rng, 1, 5),                                          # one example
        ln_backward_case(rng, 7, 3, loc=12.0, scale=5.0),
        ln_backward_case(rng, 5, 8, dtype=np.float32),
        ln_backward_case(rng, 3, 2),                                          # two features
        ln_backward_case(rng, 5, 6, loc=1e3, scale=1e2),                      # large values
    ]


# =========================================================================== the backward properties

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
    dx, h, xhat, std, var = (np.asarray(a, np.float64) for a in (dx, np.multiply(gamma, dout), xhat, std, var))
    size = np.abs(h).sum(axis=axis, keepdims=True) / std
    size = np.where(size > 0, size, 1.0)
    mean_gap = np.abs(dx.sum(axis=axis, keepdims=True)) / size
    expected = (h * xhat).sum(axis=axis, keepdims=True) / std * eps / (var + eps)
    var_gap = np.abs((dx * xhat).sum(axis=axis, keepdims=True) - expected) / size
    return float(mean_gap.max()), float(var_gap.max())


#: Inputs of the invariants property, as (shape, builder keywords).
_BN_DRAWS = [((8, 3), {}), ((2, 4), {}), ((9, 4), {"loc": 3.0, "scale": 1e-3}),
             ((6, 5), {"loc": 1e4, "scale": 1e3}), ((12, 3), {"dtype": np.float32}), ((5, 6), {"loc": 0.0})]
_LN_DRAWS = [((4, 6), {}), ((3, 2), {}), ((5, 4), {"loc": 1e3, "scale": 1e2}), ((6, 7), {"dtype": np.float32})]

#: Per normalization layer: the case builder, the invariants' inputs (and in words), the axis of the sums,
#: the variance and eps of a cache, and the two branches in words.
_GROUPS = {
    "batch": (bn_backward_case, _BN_DRAWS, "a batch of two, var ~ eps, huge values, float32", 0,
              lambda c: (c.var, c.eps), "over the batch (axis 0)", "the mean branch (dL/dmean / N, added to every row)",
              "the variance branch (dL/dvar * 2 (x - mean) / N)"),
    "layer": (ln_backward_case, _LN_DRAWS, "two features, large values, float32", 1,
              lambda c: (c.std.astype(np.float64) ** 2 - 1e-5, 1e-5),   # layernorm_forward's default eps
              "over each example's features (axis 1)", "the mean branch (the term - sum_k h_nk)",
              "the variance branch (the term - xhat_nd * sum_k h_nk xhat_nk)"),
}


def _broken_branches(kind: str, dx, dout, cache) -> tuple[list[str], float, float]:
    """The branches of dx (in words) whose invariant it breaks, and the two measured gaps."""
    _, _, _, axis, var_eps, _, mean_branch, var_branch = _GROUPS[kind]
    var, eps = var_eps(cache)
    mean_gap, var_gap = dx_invariants(dx, dout, cache.xhat, cache.gamma, cache.std, var, eps, axis)
    tol = 1e-4 if dout.dtype == np.float32 else 1e-8
    # a dx off by a factor k is off by (k - 1) times the eps term in the second invariant: not a
    # missing branch, so the second is judged only where that term is small (var >> eps)
    eps_term = float(np.max(eps / (np.asarray(var, np.float64) + eps)))
    broken = [branch for branch, gap, allowed in (
        (mean_branch, mean_gap, tol),
        (var_branch, var_gap, tol + 2.0 * eps_term if eps_term < 1e-3 else np.inf)) if gap > allowed]
    return broken, mean_gap, var_gap


def _diagnosis(kind: str) -> Callable:
    """For a wrong dx on a training case: which invariant it breaks names the branch that is off."""
    def diagnose(case, value):
        dout, cache = case.args
        if kind == "batch" and not cache.train:
            return None           # inference is an affine map: no branch through the batch statistics
        dx = np.asarray(value[0])
        if dx.shape != dout.shape or not np.all(np.isfinite(dx)):
            return None
        broken = _broken_branches(kind, dx, dout, cache)[0]
        if not broken:
            return None
        return (f"Diagnosis: dx breaks the invariants of a correct gradient (it must sum to zero and be "
                f"orthogonal to xhat), so {' and '.join(broken)} {'are' if len(broken) > 1 else 'is'} "
                f"missing or wrong.")
    return diagnose


def _invariants_property(kind: str, seed: int) -> Property:
    """dx sums to zero and is orthogonal to xhat (up to the eps term) on inputs of the property's own.

    The measured gaps are part of the finding's ``what``: a common mistake is
    named only when it breaks the invariants by the same amounts.
    """
    builder, draws, described, _, _, over, _, _ = _GROUPS[kind]

    def check(call):
        rng = np.random.default_rng(seed)
        for shape, knobs in draws:
            case = builder(rng, *shape, **knobs)
            dout, cache = case.args
            dx = np.asarray(call(*case.args, names=case.names)[0])
            if dx.shape != dout.shape or not np.all(np.isfinite(dx)):
                return Problem("value", f"dx (shape {dx.shape})", f"is not a finite array of the shape {dout.shape} "
                                                                  f"of dout on {case.label}")
            broken, mean_gap, var_gap = _broken_branches(kind, dx, dout, cache)
            if broken:
                return Problem("value", f"dx on {case.label} (its sum {over} is {mean_gap:.2g}, its sum with "
                                        f"xhat {var_gap:.2g}, of the size of the terms)",
                               f"breaks the invariants of a correct gradient: a correct dx sums to zero and is "
                               f"orthogonal to xhat (up to an eps term), so "
                               f"{' and '.join(broken)} {'are' if len(broken) > 1 else 'is'} missing or wrong")
        return None

    return Property(f"dx sums to zero and is orthogonal to xhat {over}, on {len(draws)} more inputs "
                    f"({described})", check)


def _forward_of(kind: str, cache) -> tuple[np.ndarray, Callable]:
    """The point x of a cache and the reference forward pass at fixed parameters (beta = 0)."""
    beta = np.zeros_like(cache.gamma)
    if kind == "layer":   # a row-shifted copy of x has the same layer norm
        return cache.xhat * cache.std, lambda v: normalization.layernorm_forward(v, cache.gamma, beta)[0]
    running = None if cache.train else RunningStats(cache.mean, cache.var)
    return cache.x, lambda v: normalization.batchnorm_forward(v, cache.gamma, beta, running, train=cache.train,
                                                              eps=cache.eps)[0]


def _finite_difference_property(kind: str, seed: int) -> Property:
    """dx against centered differences of the reference forward pass, in float64, tolerance 1e-6."""
    builder = _GROUPS[kind][0]
    # more than two values per normalization group: with two, xhat = +-1 whatever x is and dx ~ eps
    shapes = [((5, 3), {}), ((4, 4), {"loc": 0.0, "scale": 1.0})] + (
        [((4, 3), {"train": False})] if kind == "batch" else [((1, 5), {})])

    def check(call):
        rng = np.random.default_rng(seed)
        for shape, knobs in shapes:
            case = builder(rng, *shape, **knobs)
            dout, cache = case.args
            dx = call(*case.args, names=case.names)[0]
            x, forward = _forward_of(kind, cache)
            # a step small next to the spread of x (truncation error), not lost next to its size (rounding)
            spread = float(np.min(x.std(axis=0 if kind == "batch" else 1)))
            size = max(1.0, float(np.max(np.abs(x))))
            step = 1e-6 * (min(size, 100.0 * spread) if spread > 0 else size)
            result = gradcheck.check_gradient(forward, x, np.asarray(dx, np.float64), eps=step, dout=dout, tol=1e-6)
            if not result.passed:
                idx = result.worst_index
                return Problem("value", f"dx on {case.label} (at index {idx} yours {result.analytic[idx]:.6g}, "
                                        f"finite differences {result.numerical[idx]:.6g})",
                               "disagrees with centered finite differences of the forward pass by more than 1e-6 "
                               "relative")
        return None

    return Property(f"dx agrees with centered finite differences of the forward pass on {len(shapes)} more "
                    f"inputs (float64)", check)


# =========================================================================== batchnorm_forward

def _forward_view(result) -> tuple:
    """``(out, cache fields as a dict, (running.mean, running.var))``, or ValueError saying what is off."""
    if not isinstance(result, tuple) or len(result) != 3:
        items = f" of {len(result)} items" if isinstance(result, tuple) else ""
        raise ValueError(f"it must be a tuple (out, cache, running); got a {type(result).__name__}{items}")
    out, cache, running = result
    if not isinstance(cache, BatchNormCache):
        raise ValueError(f"the cache must be a BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), "
                         f"which the backward passes need; got a {type(cache).__name__}")
    if not isinstance(running, RunningStats):
        raise ValueError(f"running must be returned as a RunningStats(mean, var); got a {type(running).__name__}")
    fields = cache._asdict()
    fields["train"] = "training" if bool(cache.train) else "inference"
    fields["eps"] = float(cache.eps)
    return out, fields, (running.mean, running.var)


BATCHNORM_FORWARD_SOURCE = """
def batchnorm_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        new_mean = momentum * running.mean + (1 - momentum) * mean
        new_var = momentum * running.var + (1 - momentum) * var
        new_running = RunningStats(new_mean, new_var)
    else:
        mean, var = running.mean, running.var
        new_running = running
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    out = gamma * xhat + beta
    return out, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), new_running
"""

BATCHNORM_FORWARD = Graded(
    name="batchnorm_forward", reference=normalization.batchnorm_forward, source=BATCHNORM_FORWARD_SOURCE,
    visible=batchnorm_forward_cases, namespace=NAMESPACE, check_dtype=True, view=_forward_view,
    outputs=(Out("out", like="x"), {k: Out(f"cache.{k}") for k in BatchNormCache._fields},
             (Out("running.mean", like="gamma"), Out("running.var", like="gamma"))),
    forbid=functions_named(normalization, "batchnorm_forward"),
    mistakes=[
        Mistake("the batch variance is the unbiased estimate (divided by N - 1)",
                edit=("var = ((x - mean) ** 2).mean(axis=0)", "var = ((x - mean) ** 2).sum(axis=0) / (len(x) - 1)")),
        Mistake("the running variance is updated with the unbiased (N - 1) variance of the batch",
                edit=("(1 - momentum) * var", "(1 - momentum) * var * len(x) / (len(x) - 1)")),
        Mistake("eps is added outside the square root", edit=("np.sqrt(var + eps)", "np.sqrt(var) + eps")),
        Mistake("the eps argument is ignored (a fixed 1e-5)", edit=("np.sqrt(var + eps)", "np.sqrt(var + 1e-5)")),
        Mistake("the running statistics are updated in inference mode too",
                edit=("new_running = running\n", "new_running = RunningStats(\n"
                      "            momentum * running.mean + (1 - momentum) * x.mean(axis=0),\n"
                      "            momentum * running.var + (1 - momentum) * x.var(axis=0))\n")),
        Mistake("the new running statistics are written into the caller's arrays",
                edit=("new_running = RunningStats(new_mean, new_var)",
                      "running.mean[:] = new_mean\n        running.var[:] = new_var\n        new_running = running")),
        Mistake("the momentum weights are swapped (momentum multiplies the batch statistics)",
                edit=(("momentum * running.mean + (1 - momentum) * mean",
                       "(1 - momentum) * running.mean + momentum * mean"),
                      ("momentum * running.var + (1 - momentum) * var",
                       "(1 - momentum) * running.var + momentum * var"))),
        Mistake("the momentum argument is ignored (a fixed 0.9)",
                edit=(("momentum * running.mean + (1 - momentum) * mean", "0.9 * running.mean + 0.1 * mean"),
                      ("momentum * running.var + (1 - momentum) * var", "0.9 * running.var + 0.1 * var"))),
        Mistake("the batch statistics are used in inference mode", edit=("mean, var = running.mean, running.var",
                                                                        "mean, var = x.mean(axis=0), x.var(axis=0)")),
        Mistake("the statistics are taken per example, over the features (axis 1)",
                edit=(("mean = x.mean(axis=0)", "mean = x.mean(axis=1, keepdims=True)"),
                      ("** 2).mean(axis=0)", "** 2).mean(axis=1, keepdims=True)"))),
    ])


check_batchnorm_forward = BATCHNORM_FORWARD.checker(
    "Check a learner's ``batchnorm_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5)``: the output, "
    "every field of the cache and the new running statistics, float32 kept; no input (``running`` included) changed.")


# =========================================================================== batchnorm_backward (staged)

_BACKWARD_OUTPUTS = (Out("dx", like="dout"), Out("dgamma", like="gamma"), Out("dbeta", like="gamma"))
_BN_BACKWARDS = functions_named(normalization, "batchnorm_backward", "batchnorm_backward_compact")

BATCHNORM_BACKWARD_SOURCE = """
def batchnorm_backward(dout, cache):
    x, xhat, mean, var, std, gamma, eps, train = cache
    n = x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if not train:
        return dxhat / std, dgamma, dbeta
    xmu = x - mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / std ** 3
    dmean = -dxhat.sum(axis=0) / std - 2.0 * dvar * xmu.sum(axis=0) / n
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmean / n
    return dx, dgamma, dbeta
"""

BATCHNORM_BACKWARD = Graded(
    name="batchnorm_backward", reference=normalization.batchnorm_backward, source=BATCHNORM_BACKWARD_SOURCE,
    visible=batchnorm_backward_cases, namespace=NAMESPACE, check_dtype=True, outputs=_BACKWARD_OUTPUTS,
    forbid=_BN_BACKWARDS,
    properties=[_invariants_property("batch", 40412), _finite_difference_property("batch", 40422)],
    diagnose=_diagnosis("batch"),
    mistakes=[
        Mistake("the path through the mean (dL/dmean / N) is missing from dx",
                edit=("dx = dxhat / std + dvar * 2.0 * xmu / n + dmean / n",
                      "dx = dxhat / std + dvar * 2.0 * xmu / n")),
        Mistake("the path through the variance (dL/dvar * 2 (x - mean) / N) is missing from dx",
                edit=("dx = dxhat / std + dvar * 2.0 * xmu / n + dmean / n", "dx = dxhat / std + dmean / n")),
        Mistake("the mean and variance are treated as constants in training mode too",
                edit=("    if not train:\n        return dxhat / std", "    return dxhat / std")),
        Mistake("the batch statistics' paths are followed in inference mode, where mean and var are constants",
                edit=("    if not train:\n        return dxhat / std, dgamma, dbeta\n", "")),
        Mistake("dbeta is summed over the features (axis 1)",
                edit=("dbeta = dout.sum(axis=0)", "dbeta = dout.sum(axis=1)")),
        Mistake("dgamma is computed from the raw input x", edit=("(dout * xhat)", "(dout * x)")),
        Mistake("gamma is left out of dL/dxhat", edit=("dxhat = dout * gamma", "dxhat = dout")),
        Mistake("the variance path divides by N - 1", edit=("dvar * 2.0 * xmu / n +", "dvar * 2.0 * xmu / (n - 1) +")),
        Mistake("dL/dvar has the wrong sign (the -1/2 of the power rule is lost)", edit=("-0.5 *", "0.5 *")),
        Mistake("dL/dvar divides by std ** 2: the power of (var + eps) is off",
                edit=("/ std ** 3", "/ std ** 2")),
        Mistake("dx is accumulated in a float64 array (float32 in, float64 out)",
                edit=("dx = dxhat / std +", "dx = np.zeros(x.shape)\n    dx += dxhat / std +")),
    ])


check_batchnorm_backward = BATCHNORM_BACKWARD.checker(
    "Check a learner's staged ``batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)`` (float32 kept), then the "
    "invariants of dx and dx against finite differences. Neither reference backward pass may be called.")


# =========================================================================== batchnorm_backward_compact

BATCHNORM_BACKWARD_COMPACT_SOURCE = """
def batchnorm_backward_compact(dout, cache):
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.xhat).sum(axis=0)
    if not cache.train:
        return dout * cache.gamma / cache.std, dgamma, dbeta
    dx = (cache.gamma / (n * cache.std)) * (n * dout - dbeta - cache.xhat * dgamma)
    return dx, dgamma, dbeta
"""

BATCHNORM_BACKWARD_COMPACT = Graded(
    name="batchnorm_backward_compact", reference=normalization.batchnorm_backward_compact,
    source=BATCHNORM_BACKWARD_COMPACT_SOURCE, visible=lambda: batchnorm_backward_cases(1), namespace=NAMESPACE,
    check_dtype=True, outputs=_BACKWARD_OUTPUTS, forbid=_BN_BACKWARDS,
    properties=[_invariants_property("batch", 40413), _finite_difference_property("batch", 40423)],
    diagnose=_diagnosis("batch"),
    mistakes=[
        Mistake("the two sums are taken over the features (axis 1)",
                edit=("- dbeta - cache.xhat * dgamma)", "- dout.sum(axis=1, keepdims=True)"
                      " - cache.xhat * (dout * cache.xhat).sum(axis=1, keepdims=True))")),
        Mistake("gamma is left out of dx", edit=("(cache.gamma / (n * cache.std))", "(1 / (n * cache.std))")),
        Mistake("the first term in the bracket lacks its factor N", edit=("(n * dout - ", "(dout - ")),
        Mistake("the xhat * sum(dout * xhat) term (the variance branch) is missing",
                edit=(" - cache.xhat * dgamma)", ")")),
        Mistake("the sum(dout) term (the mean branch) is missing", edit=(" - dbeta - ", " - ")),
        Mistake("the factor in front divides by var + eps itself (no square root)",
                edit=("(n * cache.std))", "(n * (cache.var + cache.eps)))")),
        Mistake("eps is left out of the factor in front (sqrt(var))",
                edit=("(n * cache.std))", "(n * np.sqrt(cache.var)))")),
        Mistake("the training-mode formula is used in inference mode too",
                edit=("    if not cache.train:\n        return dout * cache.gamma / cache.std, dgamma, dbeta\n", "")),
    ])


check_batchnorm_backward_compact = BATCHNORM_BACKWARD_COMPACT.checker(
    "Check a learner's ``batchnorm_backward_compact(dout, cache) -> (dx, dgamma, dbeta)``, as "
    ":func:`check_batchnorm_backward` does.")


# =========================================================================== layernorm_backward

LAYERNORM_BACKWARD_SOURCE = """
def layernorm_backward(dout, cache):
    xhat, std, gamma = cache
    d = xhat.shape[1]
    h = dout * gamma
    dx = (d * h - h.sum(axis=1, keepdims=True) - xhat * (h * xhat).sum(axis=1, keepdims=True)) / (d * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)
"""

LAYERNORM_BACKWARD = Graded(
    name="layernorm_backward", reference=normalization.layernorm_backward, source=LAYERNORM_BACKWARD_SOURCE,
    visible=layernorm_backward_cases, namespace=NAMESPACE, check_dtype=True, outputs=_BACKWARD_OUTPUTS,
    forbid=functions_named(normalization, "layernorm_backward"),
    properties=[_invariants_property("layer", 40414), _finite_difference_property("layer", 40424)],
    diagnose=_diagnosis("layer"),
    mistakes=[
        Mistake("the sums in dx run over the batch (axis 0), as in batch norm",
                edit=(("d = xhat.shape[1]", "d = xhat.shape[0]"), ("h.sum(axis=1, keepdims=True)", "h.sum(axis=0)"),
                      ("(h * xhat).sum(axis=1, keepdims=True)", "(h * xhat).sum(axis=0)"))),
        Mistake("the - sum_k h_nk term (the mean branch) is missing", edit=(" - h.sum(axis=1, keepdims=True)", "")),
        Mistake("gamma is left out of dx", edit=("h = dout * gamma", "h = dout")),
        Mistake("gamma is pulled out of the sums, as in batch norm (here it varies along the summed axis)",
                edit=(("h = dout * gamma", "h = dout"), ("dx = (d * h", "dx = gamma * (d * h"))),
        Mistake("the variance term is not multiplied by xhat", edit=(" - xhat * (h * xhat)", " - (h * xhat)")),
        Mistake("dgamma and dbeta are summed per example (over the features, axis 1)",
                edit=("(dout * xhat).sum(axis=0), dout.sum(axis=0)", "(dout * xhat).sum(axis=1), dout.sum(axis=1)")),
    ])


check_layernorm_backward = LAYERNORM_BACKWARD.checker(
    "Check a learner's ``layernorm_backward(dout, cache) -> (dx, dgamma, dbeta)`` (float32 kept), then the per-"
    "example invariants of dx and dx against finite differences.")


DECLARATIONS = [BATCHNORM_FORWARD, BATCHNORM_BACKWARD, BATCHNORM_BACKWARD_COMPACT, LAYERNORM_BACKWARD]
