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

import math
from collections.abc import Mapping

import numpy as np

from stablegrad._validate import as_float_array, check_positive
from stablegrad.containers import leaves, rebuild

__all__ = ["NonFiniteGradientError", "clip_by_value", "clip_by_norm", "clip_by_global_norm", "global_norm"]


class NonFiniteGradientError(ValueError):
    """A gradient contains NaN or infinity. ``.name`` is the offending tensor, e.g. ``"grads[2]"``."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


# --------------------------------------------------------------------------- structure and norm

def _arrays(grads, func: str) -> list[tuple[str, np.ndarray]]:
    """The leaves of ``grads`` as ``(name, array)`` pairs, checked: real arrays, no empty container."""
    named = []
    for name, g in leaves(grads, "grads"):
        if isinstance(g, (Mapping, list, tuple)):
            raise ValueError(f"{func}: {name} must not be an empty {type(g).__name__}")
        named.append((name, as_float_array(g, name, func)))
    return named


def _non_finite(name: str, a: np.ndarray, func: str) -> NonFiniteGradientError:
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    return NonFiniteGradientError(
        f"{func}: {name} contains NaN or inf ({bad} of {a.size} entries); clipping cannot repair "
        f"a non-finite gradient: skip this step or lower the learning rate", name)


def _largest_entry(named, func: str) -> float:
    """``max |g|`` over every array; raises :class:`NonFiniteGradientError` naming the first bad tensor.

    Two reductions per array (max and min) and no temporary: both are finite only if every entry is
    (NaN and infinity propagate through them), so the entries are counted only when something is wrong.
    """
    m = 0.0
    for name, a in named:
        high, low = float(a.max()), float(a.min())
        if not (math.isfinite(high) and math.isfinite(low)):
            raise _non_finite(name, a, func)
        m = max(m, high, -low)
    return m


_BLOCK = 1 << 16  # entries per block: 512 KiB of float64, small enough to stay in the CPU's cache
_ROW = 1 << 10    # entries per row when np.vecdot sums the squares of a block (float16 and float32 only)


def _sum_of_squares(flat: np.ndarray, m: float, out: np.ndarray) -> float:
    """``np.sum(np.square(flat / m))`` in float64, to the last bit, block by block.

    ``np.sum`` adds a contiguous array pairwise: it halves it (the first half rounded down to a
    multiple of 8) and adds the two halves' sums. Halving the same way until a piece fits a block,
    and summing each piece with NumPy, performs the very same additions, without the full-size
    float64 copy. ``out`` is the float64 scratch block.
    """
    n = flat.size
    if n <= _BLOCK:
        block = np.divide(flat, m, out=out[:n], dtype=np.float64)  # float64 first: np.asarray(a, float64) / m
        return float(np.add.reduce(np.square(block, out=block)))
    half = n // 2 - (n // 2) % 8
    return _sum_of_squares(flat[:half], m, out) + _sum_of_squares(flat[half:], m, out)


def _block_sums_of_squares(flat: np.ndarray, rows: np.ndarray):
    """Yield the float64 sum of the squares of each block of ``flat``, a float16 or float32 array.

    Each block is copied into ``rows``, the float64 scratch block seen as rows of ``_ROW`` entries,
    zero-padded to whole rows; ``np.vecdot`` sums the squares of each row and ``np.add.reduce`` adds
    the rows pairwise.
    """
    scratch = rows.reshape(-1)
    for start in range(0, flat.size, _BLOCK):
        block = flat[start:start + _BLOCK]
        block.max()  # one fast read brings the block into the cache, where the float64 copy is 3x faster
        n, used = block.size, -(-block.size // _ROW)
        scratch[:n] = block
        scratch[n:used * _ROW] = 0.0
        yield float(np.add.reduce(np.vecdot(rows[:used], rows[:used])))


def _norm_parts(named, func: str) -> tuple[float, float]:
    """Return ``(m, s)`` with ``||all arrays||_2 = m * s``, without overflow or underflow.

    Only float16 and float32 arrays: ``m = 1`` and ``s`` is the square root of the sum of the squares
    in float64. Every square is exact there (24 significant bits squared are 48 < 53) and, unless
    zero, lies between 1e-90 and 2e77: nothing to scale, and the sum is finite exactly when every
    entry is. Only the additions round: per row of ``_ROW`` squares, pairwise per block, and once over
    the blocks (``math.fsum``). On tests/test_clipping.py's draws ``s`` is the exactly rounded norm in
    80% to 95% of them, and at most 2 units in the last place off (the scaled formula below: 48% to 75%).

    Otherwise ``m = max |entry|``: dividing by it first puts every term in [0, 1], so ``s`` lies in
    [1, sqrt(size)] and squaring cannot overflow even for entries near 1e308, nor underflow all to zero.

    Raises :class:`NonFiniteGradientError` naming the first tensor with a NaN or an infinity.
    """
    arrays = [a for _, a in named]
    largest = min(_BLOCK, max(a.size for a in arrays))
    if all(a.dtype.itemsize <= 4 for a in arrays):
        rows = np.empty((-(-largest // _ROW), _ROW))
        total = math.fsum(part for a in arrays for part in _block_sums_of_squares(a.ravel(order="K"), rows))
        if not math.isfinite(total):  # a NaN or an infinity somewhere: name the first tensor with one
            name, a = next((name, a) for name, a in named if not np.isfinite(a).all())
            raise _non_finite(name, a, func)
        return 1.0, math.sqrt(total)
    m = _largest_entry(named, func)
    if m == 0.0:
        return 0.0, 0.0
    out = np.empty(largest)
    return m, float(np.sqrt(sum(_sum_of_squares(a.ravel(order="K"), m, out) for a in arrays)))


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
    named = _arrays(grads, func)
    _largest_entry(named, func)
    return rebuild(grads, (np.clip(a, -limit, limit).astype(a.dtype, copy=False) for _, a in named))


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
    arr = as_float_array(g, "g", func)
    return _scaled([arr], *_norm_parts([("g", arr)], func), max_norm)[0]


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
    named = _arrays(grads, "global_norm")
    return _product(*_norm_parts(named, "global_norm"))


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
    named = _arrays(grads, func)
    m, s = _norm_parts(named, func)
    return rebuild(grads, iter(_scaled([a for _, a in named], m, s, max_norm))), _product(m, s)
