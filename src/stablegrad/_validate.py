"""Input checks shared by every public function.

Validation happens once, at the boundary, and the message names the function,
the argument and the expected shape, so that a learner can act on it:

    ValueError: batchnorm_forward: x must have shape (N, D); got shape (5,)
"""

from __future__ import annotations

import numbers

import numpy as np


def as_float_array(x, name: str, func: str, *, ndim: int | None = None,
                   shape: str | None = None, min_rows: int = 0) -> np.ndarray:
    """Return ``x`` as a floating-point ndarray, or raise a clear error.

    Parameters
    ----------
    x : array_like
        The value to check. Integer arrays are promoted to float64; float16,
        float32 and float64 keep their dtype.
    name : str
        Argument name used in the message (``"x"``, ``"dout"``...).
    func : str
        Public function name used in the message.
    ndim : int, optional
        Required number of dimensions.
    shape : str, optional
        Human-readable expected shape for the message, e.g. ``"(N, D)"``.
    min_rows : int
        Minimum size of the first axis (e.g. 2 for batch statistics).

    Raises
    ------
    TypeError
        If ``x`` is not numeric (strings, objects, booleans, complex).
    ValueError
        If the number of dimensions or the first axis is wrong, or if
        ``x`` is empty.
    """
    expected = shape or (f"{ndim}-D" if ndim is not None else "an array")
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:  # ragged lists and the like
            raise TypeError(f"{func}: {name} must be a numeric array of shape {expected}; "
                            f"got {type(x).__name__} ({exc})") from None
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise TypeError(f"{func}: {name} must be a real floating-point array of shape {expected}; "
                        f"got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{func}: {name} must have shape {expected}; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{func}: {name} must not be empty; got shape {arr.shape}")
    if min_rows and arr.shape[0] < min_rows:
        raise ValueError(f"{func}: {name} must have shape {expected} with N >= {min_rows}; "
                         f"got shape {arr.shape}")
    return arr


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, func: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{func}: {name_a} must have the same shape as {name_b} {b.shape}; "
                         f"got shape {a.shape}")


def check_positive(value, name: str, func: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, raising if it is not a positive real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be a real number; got {type(value).__name__}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not np.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{func}: {name} must be finite and {bound}; got {value!r}")
    return value


def check_int(value, name: str, func: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {name} must be an integer; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}; got {value}")
    return int(value)


def check_rng(rng, func: str) -> np.random.Generator:
    """Return ``rng`` unchanged if it is a ``numpy.random.Generator``.

    The package never seeds or uses global random state: every random draw
    comes from a generator the caller passes in.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{func}: rng must be a numpy.random.Generator "
                        f"(e.g. np.random.default_rng(0)); got {type(rng).__name__}")
    return rng


def check_choice(value, name: str, func: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise list them in the error."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in sorted(choices))
        raise ValueError(f"{func}: {name} must be one of {listed}; got {value!r}")
    return value


def check_caches(caches, cls: type, producer: str, func: str) -> None:
    """``caches`` must be the non-empty list of ``cls`` records that ``producer`` returned."""
    if not isinstance(caches, (list, tuple)) or len(caches) == 0:
        raise TypeError(f"{func}: caches must be the non-empty list of {cls.__name__} returned by "
                        f"{producer}; got {type(caches).__name__}")
    for l, c in enumerate(caches):
        if not isinstance(c, cls):
            raise TypeError(f"{func}: caches[{l}] must be a {cls.__name__} from {producer}; "
                            f"got {type(c).__name__}")
