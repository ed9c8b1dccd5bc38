"""Statistics over seeds: how a chapter reports anything that passes through training.

Training amplifies rounding. A difference of one unit in the last place at step 1 (another BLAS
kernel, another SIMD width) can change the loss at step 40 in its second digit, so a single seeded
run is not a fact about the method: it is one draw. Chapters therefore run such experiments over
several seeds and report the median and the range, and their hidden cells assert claims with
tolerances derived from that spread, never digit strings.

    >>> finals = over_seeds(lambda rng: train(...).loss[-1], seeds=range(5))
    >>> spread(finals)                       # Spread(median=..., low=..., high=..., n=5)
    >>> describe(finals, ".2f")              # '0.14 (0.12 to 0.17, 5 seeds)'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np


class Spread(NamedTuple):
    """Median and range of one statistic over ``n`` seeds."""

    median: float
    low: float
    high: float
    n: int


def over_seeds(run: Callable[[np.random.Generator], Any], seeds: Iterable[int]) -> np.ndarray:
    """Call ``run(np.random.default_rng(seed))`` once per seed and stack the results.

    Parameters
    ----------
    run : callable
        Takes a fresh generator and returns a number or an array (the same shape for every seed).
    seeds : iterable of int
        The seeds; each run gets its own generator, so runs do not depend on their order.

    Returns
    -------
    ndarray of shape (S, ...)
        One row per seed.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("over_seeds: seeds must contain at least one seed; got none")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise TypeError(f"over_seeds: seeds must be integers; got {seeds!r}")
    return np.stack([np.asarray(run(np.random.default_rng(int(s))), dtype=float) for s in seeds])


def spread(values, axis: int = 0) -> Spread:
    """Median, minimum and maximum of ``values`` over its seed axis.

    Parameters
    ----------
    values : array_like of shape (S,) or (S, ...)
        One entry (or row) per seed; NaN is not allowed (a diverged run must be reported, not averaged).

    Returns
    -------
    Spread
        ``median``, ``low`` and ``high`` (floats, or arrays for rows), and ``n = S``.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0 or arr.shape[axis] == 0:
        raise ValueError(f"spread: values must have shape (S, ...) with S >= 1 seeds; got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("spread: values contain NaN; count diverged runs separately instead of averaging them")

    def _plain(a):
        return float(a) if np.ndim(a) == 0 else a

    return Spread(_plain(np.median(arr, axis=axis)), _plain(arr.min(axis=axis)),
                  _plain(arr.max(axis=axis)), int(arr.shape[axis]))


def describe(values, fmt: str = ".3g") -> str:
    """One-line summary for prose and tables: ``'median (low to high, n seeds)'``.

    >>> describe([0.131, 0.127, 0.152], ".2f")
    '0.13 (0.13 to 0.15, 3 seeds)'
    """
    s = spread(values)
    if np.ndim(s.median) != 0:
        raise ValueError("describe: values must have shape (S,), one number per seed")
    return f"{s.median:{fmt}} ({s.low:{fmt}} to {s.high:{fmt}}, {s.n} seeds)"
