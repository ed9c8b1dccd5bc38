"""Gradient checking by centered finite differences.

A backward pass is proven right by comparing it with the definition of the
derivative. The centered difference

.. math:: \\frac{\\partial f}{\\partial x_i} \\approx
          \\frac{f(x + \\varepsilon e_i) - f(x - \\varepsilon e_i)}{2\\varepsilon}

has a truncation error of :math:`\\varepsilon^2 f'''/6` (the even terms of the
Taylor series cancel), against :math:`\\varepsilon f''/2` for the one-sided
difference. Rounding adds about :math:`u |f| / \\varepsilon` with
:math:`u \\approx 1.1 \\times 10^{-16}` in float64. With
:math:`\\varepsilon = 10^{-6}` the truncation error is around :math:`10^{-13}` and
the rounding error around :math:`10^{-10}` relative to the gradient's scale, so in
float64 a correct backward pass agrees to about 1e-9 and a wrong one (a missing
term, a wrong sign, an error of 0.1%) is off by far more than the default
tolerance of 1e-7. Check in float64: in float32 (``u ~ 6e-8``) the rounding term
alone is of order 0.1.

When the gradient is much smaller than the function's values (deep sigmoid
stacks: about 1/4 per layer), rounding grows by the same ratio. Then pass the
array-valued forward with ``dout=`` (outputs are subtracted before they are
summed) and a step nearer the optimum :math:`\\varepsilon \\approx u^{1/3} \\approx 10^{-5}`.

Rounding error is absolute: an entry of the gradient that is nearly zero is
known only to about 1e-10 times the gradient's *largest* entry, so a purely
entrywise relative error would flag it. :func:`check_gradient` therefore
compares each entry with its own size but never with less than
``floor_fraction`` (default 1/10) of the largest entry.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_positive, check_rng

__all__ = [
    "numerical_gradient", "numerical_gradient_array", "relative_error",
    "GradCheckResult", "check_gradient", "directional_check",
    "step_errors", "step_error_model", "optimal_step",
]

_TINY = np.finfo(np.float64).tiny


class GradCheckResult(NamedTuple):
    """Outcome of a gradient check.

    Attributes
    ----------
    passed : bool
        ``max_rel_error <= tol`` (and everything finite).
    max_rel_error : float
        Largest relative error (``inf`` if anything is NaN or infinite).
    worst_index : tuple
        Index of the entry with that error (``()`` for a directional check).
    numerical : ndarray or float
        Finite-difference gradient (or directional derivative).
    analytic : ndarray or float
        The gradient being checked (or its inner product with the direction).
    """

    passed: bool
    max_rel_error: float
    worst_index: tuple
    numerical: np.ndarray
    analytic: np.ndarray


def _as_scalar(value, func: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1:
        raise TypeError(f"{func}: f must return a scalar; got an array of shape {arr.shape} "
                        f"(use numerical_gradient_array for array-valued f)")
    return float(arr.reshape(()))


def _centered_differences(x: np.ndarray, eps: float, evaluate: Callable, combine: Callable,
                          func: str) -> np.ndarray:
    """Perturb each entry of a private copy of ``x`` by +-eps; ``combine(f_plus, f_minus)`` -> f(+) - f(-)."""
    xp = np.array(x, copy=True)  # perturb a private copy: the caller's x is never touched
    grad = np.zeros(x.shape, dtype=x.dtype)
    for idx in np.ndindex(x.shape):
        old = xp[idx]
        xp[idx] = old + eps
        up = xp[idx]
        f_plus = evaluate(xp)
        xp[idx] = old - eps
        step = up - xp[idx]  # the step actually taken, after rounding x +- eps
        f_minus = evaluate(xp)
        xp[idx] = old
        if step == 0:
            raise ValueError(f"{func}: eps = {eps!r} is too small to change x[{', '.join(map(str, idx))}] = {old!r} "
                             f"in {x.dtype}; use float64 inputs or a larger eps")
        grad[idx] = combine(f_plus, f_minus) / step
    return grad


def numerical_gradient(f, x, eps=1e-6):
    """Gradient of a scalar function by centered differences.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``. Called ``2 * x.size`` times with a perturbed copy
        of ``x``.
    x : ndarray of any shape
        Point at which to differentiate; never modified.
    eps : float, default 1e-6
        Step size.

    Returns
    -------
    ndarray shaped like ``x`` (same float dtype)
        :math:`g_i = (f(x + \\varepsilon e_i) - f(x - \\varepsilon e_i)) / 2\\varepsilon`
    """
    func = "numerical_gradient"
    f = _check_callable(f, func)
    x = as_float_array(x, "x", func)
    eps = check_positive(eps, "eps", func)
    return _centered_differences(x, eps, lambda xp: _as_scalar(f(xp), func), lambda plus, minus: plus - minus,
                                 func)


def numerical_gradient_array(f, x, dout, eps=1e-6):
    """Gradient of ``sum(f(x) * dout)`` with respect to ``x``, for array-valued ``f``.

    This is what a backward pass computes when it receives the upstream
    gradient ``dout``. The two outputs are subtracted before they are weighted
    and summed, so rounding is relative to the outputs that ``x_i`` moves,
    not to the whole sum.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray`` with the shape of ``dout``.
    x : ndarray of any shape
        Never modified.
    dout : ndarray shaped like ``f(x)``
        Upstream gradient.
    eps : float, default 1e-6

    Returns
    -------
    ndarray shaped like ``x`` (same float dtype)
        :math:`g_i = \\sum_k \\text{dout}_k \\, (f_k(x + \\varepsilon e_i) - f_k(x - \\varepsilon e_i)) / 2\\varepsilon`
    """
    func = "numerical_gradient_array"
    f = _check_callable(f, func)
    x = as_float_array(x, "x", func)
    dout = as_float_array(dout, "dout", func)
    eps = check_positive(eps, "eps", func)

    def evaluate(xp):
        out = np.array(f(xp), dtype=np.float64, copy=True)  # copy: f may return a view of xp
        if out.shape != dout.shape:
            raise ValueError(f"{func}: dout must have the shape of f(x) {out.shape}; got shape {dout.shape}")
        return out

    # subtract the two outputs before weighting: rounding is then relative to the outputs x_i moves
    return _centered_differences(x, eps, evaluate, lambda plus, minus: np.sum((plus - minus) * dout),
                                 func)


def relative_error(a, b, floor=None) -> float:
    """Largest entrywise relative error between two arrays.

    .. math:: \\max_i \\frac{|a_i - b_i|}{\\max(|a_i| + |b_i|, \\text{floor})}

    Parameters
    ----------
    a, b : array_like of the same shape
    floor : float, optional
        Smallest denominator. Default: the smallest positive normal float64
        (so two exact zeros give 0, not NaN). :func:`check_gradient` passes
        a fraction of the gradient's scale here.

    Returns
    -------
    float
        In [0, 1] for finite inputs; ``inf`` if any entry is NaN or infinite.
    """
    func = "relative_error"
    a = as_float_array(a, "a", func)
    b = as_float_array(b, "b", func)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: a and b must have the same shape; got {a.shape} and {b.shape}")
    floor = _TINY if floor is None else check_positive(floor, "floor", func, allow_zero=True)
    return float(np.max(_entrywise_relative_error(a, b, floor)))


def _entrywise_relative_error(a, b, floor: float) -> np.ndarray:
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a64 - b64) / np.maximum(np.abs(a64) + np.abs(b64), max(floor, _TINY))
    return np.where(np.isfinite(err), err, np.inf)


def check_gradient(f, x, analytic, eps=1e-6, tol=1e-7, *, floor_fraction=0.1, dout=None) -> GradCheckResult:
    """Compare an analytic gradient with centered finite differences.

    Parameters
    ----------
    f : callable
        Scalar function ``f(x) -> float``. To check a backward pass, use
        ``f = lambda x: np.sum(forward(x) * dout)``, whose gradient is what the
        backward pass returns for upstream gradient ``dout``; or pass the
        array-valued ``forward`` itself together with ``dout=dout``.
    x : ndarray of any shape
        Point of the check; never modified.
    analytic : ndarray shaped like ``x``
        The gradient to check.
    eps : float, default 1e-6
        Finite-difference step.
    tol : float, default 1e-7
        Largest accepted relative error. A correct float64 backward pass
        typically reaches 1e-9 or better; an error of 0.1% gives about 5e-4.
    floor_fraction : float, default 0.1
        Entries are compared relative to ``max(|num_i| + |ana_i|, floor)`` with
        ``floor = floor_fraction * max_j(|num_j| + |ana_j|)``, because the
        finite-difference error is absolute (see the module docstring).
        Use 0 for a purely entrywise comparison.
    dout : ndarray, optional
        If given, ``f`` is array-valued and the gradient of ``sum(f(x) * dout)``
        is computed with :func:`numerical_gradient_array`, which subtracts the
        outputs before summing them and so loses fewer digits when the
        gradient is much smaller than the outputs (e.g. deep sigmoid stacks).

    Returns
    -------
    GradCheckResult
        ``(passed, max_rel_error, worst_index, numerical, analytic)``.
    """
    func = "check_gradient"
    f, x, analytic = _check_f_x_analytic(f, x, analytic, func)
    tol = check_positive(tol, "tol", func)
    floor_fraction = check_positive(floor_fraction, "floor_fraction", func, allow_zero=True)
    if dout is None:
        numerical = numerical_gradient(f, x, eps=eps)
    else:
        numerical = numerical_gradient_array(f, x, dout, eps=eps)
    return _compare(numerical, analytic, tol, floor_fraction)


def _compare(numerical, analytic, tol, floor_fraction) -> GradCheckResult:
    total = np.abs(np.asarray(numerical, np.float64)) + np.abs(np.asarray(analytic, np.float64))
    scale = float(np.max(total)) if np.all(np.isfinite(total)) else 0.0
    err = _entrywise_relative_error(numerical, analytic, floor_fraction * scale)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    max_err = float(err[worst]) if err.ndim else float(err)
    return GradCheckResult(bool(max_err <= tol), max_err, worst, numerical, analytic)


def directional_check(f, x, analytic, rng, eps=1e-6, tol=1e-7, *, floor_fraction=0.1) -> GradCheckResult:
    """Check a gradient along one random direction, with two evaluations of ``f``.

    For a unit direction ``u`` drawn from ``rng``,

    .. math:: \\frac{f(x + \\varepsilon u) - f(x - \\varepsilon u)}{2\\varepsilon}
              \\approx \\langle \\nabla f(x), u \\rangle

    Cheap for large ``x`` (two calls instead of ``2 * x.size``), and a wrong
    gradient passes only if its error happens to be orthogonal to ``u``.

    Parameters
    ----------
    f : callable
        Scalar function ``f(x) -> float``.
    x : ndarray of any shape
        Never modified.
    analytic : ndarray shaped like ``x``
    rng : numpy.random.Generator
        Source of the direction.
    eps, tol : float
        As in :func:`check_gradient`.
    floor_fraction : float, default 0.1
        The denominator is at least ``floor_fraction * ||analytic||_2``,
        the largest value ``<analytic, u>`` can take.

    Returns
    -------
    GradCheckResult
        ``numerical`` and ``analytic`` are the two directional derivatives
        (floats); ``worst_index`` is ``()``.
    """
    func = "directional_check"
    f = _check_callable(f, func)
    x = as_float_array(x, "x", func)
    analytic = as_float_array(analytic, "analytic", func)
    if analytic.shape != x.shape:
        raise ValueError(f"{func}: analytic must have the shape of x {x.shape}; got shape {analytic.shape}")
    rng = check_rng(rng, func)
    eps = check_positive(eps, "eps", func)
    tol = check_positive(tol, "tol", func)
    floor_fraction = check_positive(floor_fraction, "floor_fraction", func, allow_zero=True)

    u = rng.standard_normal(x.shape)
    u /= np.linalg.norm(u)
    x64 = np.asarray(x, dtype=np.float64)
    numerical = (_as_scalar(f(x64 + eps * u), func) - _as_scalar(f(x64 - eps * u), func)) / (2.0 * eps)
    projected = float(np.sum(np.asarray(analytic, np.float64) * u))
    norm = float(np.linalg.norm(analytic))
    floor = floor_fraction * norm if np.isfinite(norm) else 0.0
    err = float(_entrywise_relative_error(np.array(numerical), np.array(projected), floor))
    return GradCheckResult(bool(err <= tol), err, (), numerical, projected)


def step_errors(f, x, analytic, eps_values) -> np.ndarray:
    """Largest absolute error of the centered difference, for each step size.

    The measurement behind the choice of ``eps``: for each step, the
    finite-difference gradient is compared with a gradient known to be right.
    Large steps are dominated by truncation (:math:`\\varepsilon^2 |f'''| / 6`,
    falling as the step shrinks), small ones by rounding
    (:math:`u |f| / \\varepsilon`, growing); see :func:`step_error_model`.

    Parameters
    ----------
    f : callable
        Scalar function ``f(x) -> float``, evaluated in the dtype of ``x``
        (pass a float32 ``x`` to measure float32 rounding).
    x : ndarray of any shape
        Never modified.
    analytic : ndarray shaped like ``x``
        The exact gradient (or one trusted to far better than the errors measured).
    eps_values : array_like of shape (K,)
        Positive step sizes.

    Returns
    -------
    ndarray of shape (K,)
        :math:`\\max_i |g^{\\mathrm{num}}_i(\\varepsilon_k) - g_i|`, in float64.
    """
    func = "step_errors"
    f, x, analytic = _check_f_x_analytic(f, x, analytic, func)
    eps_values = as_float_array(eps_values, "eps_values", func, ndim=1, shape="(K,)")
    if not np.all(np.isfinite(eps_values) & (eps_values > 0)):
        raise ValueError(f"{func}: eps_values must be finite and > 0; got {eps_values!r}")
    exact = np.asarray(analytic, dtype=np.float64)
    return np.array([np.max(np.abs(np.asarray(numerical_gradient(f, x, eps=float(e)), np.float64) - exact))
                     for e in eps_values])


def step_error_model(eps, f_scale, third_derivative, dtype=np.float64):
    """The two error terms of a centered difference, as functions of the step.

    .. math:: \\underbrace{\\frac{\\varepsilon^2}{6} |f'''|}_{\\text{truncation}}
              \\; + \\;
              \\underbrace{\\frac{u\\, |f|}{\\varepsilon}}_{\\text{rounding}}

    Truncation is the Taylor remainder of the centered difference; rounding
    assumes that each evaluation of ``f`` is off by about ``u |f|`` (``u`` the
    unit roundoff of ``dtype``), so that their difference divided by
    ``2 eps`` is off by about ``u |f| / eps``. A model of the typical size,
    not a guaranteed bound.

    Parameters
    ----------
    eps : float or array_like
        Step sizes (> 0).
    f_scale : float
        Size of the function's values, ``|f(x)|`` (> 0).
    third_derivative : float
        Size of the third derivative along the step, ``|f'''|`` (>= 0).
    dtype : float dtype, default float64
        Precision in which ``f`` is evaluated.

    Returns
    -------
    truncation, rounding : ndarray shaped like ``eps`` (float64)
    """
    func = "step_error_model"
    eps = np.asarray(as_float_array(eps, "eps", func), dtype=np.float64)
    if not np.all(np.isfinite(eps) & (eps > 0)):
        raise ValueError(f"{func}: eps must be finite and > 0; got {eps!r}")
    f_scale = check_positive(f_scale, "f_scale", func)
    third_derivative = check_positive(third_derivative, "third_derivative", func, allow_zero=True)
    u = _unit_roundoff(dtype, func)
    return eps ** 2 * third_derivative / 6.0, u * f_scale / eps


def optimal_step(f_scale, third_derivative, dtype=np.float64) -> float:
    """The step that minimizes the total error of :func:`step_error_model`.

    Setting the derivative of :math:`\\varepsilon^2 M / 6 + u |f| / \\varepsilon`
    to zero, :math:`\\varepsilon M / 3 = u |f| / \\varepsilon^2`, gives

    .. math:: \\varepsilon^\\star = \\Big(\\frac{3 u |f|}{M}\\Big)^{1/3},

    where the total error is :math:`\\tfrac{3}{2}\\, u |f| / \\varepsilon^\\star`.
    About 7e-6 in float64 and 6e-3 in float32 when ``|f| = M = 1``.

    Parameters
    ----------
    f_scale : float
        ``|f(x)|`` (> 0).
    third_derivative : float
        ``M = |f'''|`` along the step (> 0).
    dtype : float dtype, default float64

    Returns
    -------
    float
    """
    func = "optimal_step"
    f_scale = check_positive(f_scale, "f_scale", func)
    third_derivative = check_positive(third_derivative, "third_derivative", func)
    return float((3.0 * _unit_roundoff(dtype, func) * f_scale / third_derivative) ** (1.0 / 3.0))


def _unit_roundoff(dtype, func: str) -> float:
    """u = eps / 2 of a floating-point dtype: 1.1e-16 in float64, 6.0e-8 in float32."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{func}: dtype must be a floating-point dtype such as np.float64; got {dtype!r}") from None
    if dt.kind != "f":
        raise TypeError(f"{func}: dtype must be a floating-point dtype such as np.float64; got {dt}")
    return float(np.finfo(dt).eps) / 2.0


def _check_callable(f, func: str):
    if not callable(f):
        raise TypeError(f"{func}: f must be callable; got {type(f).__name__}")
    return f


def _check_f_x_analytic(f, x, analytic, func: str):
    """The checks shared by the functions that compare a gradient with finite differences of ``f`` at ``x``."""
    f = _check_callable(f, func)
    x = as_float_array(x, "x", func)
    analytic = as_float_array(analytic, "analytic", func)
    if analytic.shape != x.shape:
        raise ValueError(f"{func}: analytic must have the shape of x {x.shape}; got shape {analytic.shape}")
    return f, x, analytic
