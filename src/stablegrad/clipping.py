"""Gradient clipping: by value, by norm, and by global norm.

=================  ========================================  ===============
method             rule                                      keeps direction
=================  ========================================  ===============
by value           each entry into [-limit, limit]           no
by norm            g * min(1, c / ||g||), per tensor         per tensor only
by global norm     every g_i * min(1, c / ||(g_1..g_k)||)    yes, jointly
=================  ========================================  ===============

Contract shared by every function here:

- inputs are never modified; new arrays of the same shape and dtype come back;
- below the threshold, the values come back exactly (as copies);
- a zero gradient gives zeros (never 0/0 = NaN);
- any NaN or infinity raises :class:`NonFiniteGradientError` naming the
  tensor, because no rescaling can repair it: skip the step, or lower the
  learning rate.

``grads`` may be one array, a list or tuple of arrays, or a dict of arrays, and
containers may nest (``stack_backward`` returns a list of ``(dW, db)`` tuples);
the same structure comes back.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from stablegrad._validate import as_float_array, check_positive

__all__ = ["NonFiniteGradientError", "clip_by_value", "clip_by_norm", "clip_by_global_norm", "global_norm"]


class NonFiniteGradientError(ValueError):
    """A gradient contains NaN or infinity. ``.name`` is the offending tensor, e.g. ``"grads[2]"``."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


# --------------------------------------------------------------------------- structure helpers

def _leaves(grads, name: str, func: str) -> list[tuple[str, np.ndarray]]:
    """Flatten a (nested) array / list / tuple / dict into (name, array) pairs, checking each."""
    if isinstance(grads, Mapping):
        if not grads:
            raise ValueError(f"{func}: {name} must not be an empty dict")
        return [leaf for key, g in grads.items() for leaf in _leaves(g, f"{name}[{key!r}]", func)]
    if isinstance(grads, (list, tuple)):
        if not grads:
            raise ValueError(f"{func}: {name} must not be an empty {type(grads).__name__}")
        return [leaf for i, g in enumerate(grads) for leaf in _leaves(g, f"{name}[{i}]", func)]
    arr = as_float_array(grads, name, func)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteGradientError(
            f"{func}: {name} contains NaN or inf ({bad} of {arr.size} entries); clipping cannot repair "
            f"a non-finite gradient: skip this step or lower the learning rate", name)
    return [(name, arr)]


def _rebuild(grads, arrays):
    """The structure of ``grads`` with its leaves replaced, in order, from the iterator ``arrays``."""
    if isinstance(grads, Mapping):
        return {key: _rebuild(g, arrays) for key, g in grads.items()}
    if isinstance(grads, (list, tuple)):
        items = [_rebuild(g, arrays) for g in grads]
        if isinstance(grads, list):
            return items
        return type(grads)(*items) if hasattr(grads, "_fields") else tuple(items)
    return next(arrays)


def _norm_parts(arrays) -> tuple[float, float]:
    """Return ``(m, s)`` with ``||all arrays||_2 = m * s``, without overflow.

    ``m`` is the largest absolute entry, so ``s = ||arrays / m||`` lies in
    [1, sqrt(size)] and squaring cannot overflow even for entries near 1e308.
    """
    m = max(float(np.max(np.abs(a))) for a in arrays)
    if m == 0.0:
        return 0.0, 0.0
    s = np.sqrt(sum(float(np.sum(np.square(np.asarray(a, dtype=np.float64) / m))) for a in arrays))
    return m, float(s)


def _product(m: float, s: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.float64(m) * s)  # inf only if the norm itself exceeds the float64 range


def _slack(arrays) -> float:
    """Relative rounding slack for 'norm <= max_norm': makes clipping idempotent."""
    return 8.0 * max(float(np.finfo(a.dtype).eps) for a in arrays)


def _scaled(arrays, m: float, s: float, max_norm: float):
    """Copies of ``arrays``, multiplied by ``min(1, max_norm / (m * s))``."""
    norm = _product(m, s)
    if m == 0.0 or norm <= max_norm * (1.0 + _slack(arrays)):
        return [a.copy() for a in arrays]  # below the threshold: exactly the input values
    factor = (max_norm / m) / s  # = max_norm / norm, formed without the (possibly infinite) norm
    return [(a * a.dtype.type(factor)).astype(a.dtype, copy=False) for a in arrays]


# --------------------------------------------------------------------------- public API

def clip_by_value(grads, limit):
    """Clip every entry into ``[-limit, limit]``.

    .. math:: \\tilde g_i = \\min(\\max(g_i, -\\text{limit}), \\text{limit})

    Cheap and robust, but it changes the gradient's direction whenever some
    entries are clipped and others are not.

    Parameters
    ----------
    grads : ndarray, or (nested) list, tuple or dict of ndarrays
    limit : float > 0

    Returns
    -------
    Same structure as ``grads``, new arrays of the same shapes and dtypes.

    Raises
    ------
    NonFiniteGradientError
        If any entry is NaN or infinite (the message names the tensor).
    """
    func = "clip_by_value"
    limit = check_positive(limit, "limit", func)
    leaves = _leaves(grads, "grads", func)
    clipped = [np.clip(a, -limit, limit).astype(a.dtype, copy=False) for _, a in leaves]
    return _rebuild(grads, iter(clipped))


def clip_by_norm(g, max_norm):
    """Rescale one tensor so that its norm is at most ``max_norm``.

    .. math:: \\tilde g = g \\cdot \\min\\Big(1, \\frac{\\text{max\\_norm}}{\\|g\\|_F}\\Big)

    The direction is kept. If ``||g|| <= max_norm`` (to within rounding) a copy
    of ``g`` with exactly the same values is returned.

    Parameters
    ----------
    g : ndarray of any shape
    max_norm : float > 0

    Returns
    -------
    ndarray of the same shape and dtype as ``g``.

    Raises
    ------
    NonFiniteGradientError
        If ``g`` contains NaN or infinity.
    """
    func = "clip_by_norm"
    max_norm = check_positive(max_norm, "max_norm", func)
    (_, arr), = _leaves(as_float_array(g, "g", func), "g", func)
    m, s = _norm_parts([arr])
    return _scaled([arr], m, s, max_norm)[0]


def global_norm(grads) -> float:
    """Euclidean norm of all gradients taken together, as one long vector.

    .. math:: \\|(g_1, \\dots, g_k)\\| = \\sqrt{\\textstyle\\sum_i \\|g_i\\|_F^2}

    Parameters
    ----------
    grads : ndarray, or (nested) list, tuple or dict of ndarrays

    Returns
    -------
    float

    Raises
    ------
    NonFiniteGradientError
        If any tensor contains NaN or infinity.
    """
    leaves = _leaves(grads, "grads", "global_norm")
    return _product(*_norm_parts([a for _, a in leaves]))


def clip_by_global_norm(grads, max_norm):
    """Rescale all gradients by one common factor so that their global norm is at most ``max_norm``.

    .. math:: \\tilde g_i = g_i \\cdot \\min\\Big(1, \\frac{\\text{max\\_norm}}{\\|(g_1, \\dots, g_k)\\|}\\Big)

    One factor for every tensor keeps the direction of the full update, unlike
    clipping each tensor's norm separately.

    Parameters
    ----------
    grads : ndarray, or (nested) list, tuple or dict of ndarrays
    max_norm : float > 0

    Returns
    -------
    clipped : same structure as ``grads``
        New arrays of the same shapes and dtypes; exact copies when the
        global norm is at most ``max_norm``.
    norm_before : float
        The global norm before clipping (useful to log).

    Raises
    ------
    NonFiniteGradientError
        If any tensor contains NaN or infinity (the message names it).
    """
    func = "clip_by_global_norm"
    max_norm = check_positive(max_norm, "max_norm", func)
    arrays = [a for _, a in _leaves(grads, "grads", func)]
    m, s = _norm_parts(arrays)
    return _rebuild(grads, iter(_scaled(arrays, m, s, max_norm))), _product(m, s)
