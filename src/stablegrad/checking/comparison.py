"""Compare a learner's output with the expected one and describe the first difference.

Outputs may be arrays, numbers, booleans, strings, tuples, lists and dicts,
nested. :func:`compare` returns ``None`` when they agree, else a
:class:`Mismatch` naming the kind of difference (``"type"``, ``"shape"``,
``"value"``), the output ("dW2 (output[1][1][0])") and what is wrong, with
the index of the worst entry, both values and the tolerance.

Tolerances are **per entry** by default: entry ``i`` may differ by

    atol + rtol * |expected_i| + floor * eps * max|expected| + tiny

where ``eps`` and ``tiny`` (the smallest normal number) belong to the
expected array's dtype. The ``floor`` term (in units of ``eps`` of the
largest entry) admits the rounding noise of entries that come out of a
cancellation (a gradient that is exactly 0 in theory and 1e-17 in floating
point); ``floor=0`` makes every entry count on its own, for outputs whose
entries span many decades (sigmoid of -40, the gradient norms of a vanishing
chain) where a wrong 1e-13 next to a right 1 must still be caught.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

__all__ = ["Out", "Tolerance", "Mismatch", "compare", "is_sequence"]


class Out(NamedTuple):
    """Name of one output in an output spec, and where its shape comes from.

    ``name`` and ``like`` may contain ``{n}`` (1-based) or ``{i}`` (0-based),
    replaced by the index in the innermost list: ``Out("dW{n}", like="W{n}")``.
    """

    name: str
    like: str | None = None


class Tolerance(NamedTuple):
    """How close a floating-point output must be (see the module docstring).

    ``rtol=None`` means 1e-6, or 1e-4 when an input array is float32/float16.
    ``per_entry=False`` compares every error with the largest expected entry
    instead (``atol + rtol * max|expected|``), for outputs whose small entries
    carry no meaning of their own.
    """

    rtol: float | None = None
    atol: float = 0.0
    floor: float = 64.0
    per_entry: bool = True

    def resolved(self, low_precision: bool) -> "Tolerance":
        """This tolerance with ``rtol`` filled in for the inputs' precision."""
        if self.rtol is not None:
            return self
        return self._replace(rtol=1e-4 if low_precision else 1e-6)


class Mismatch(NamedTuple):
    """The first difference found: its kind (``type``/``shape``/``value``), the output, the text."""

    kind: str
    what: str
    text: str


def is_sequence(x) -> bool:
    return isinstance(x, (tuple, list))


def _fmt(v) -> str:
    return f"{float(v):.6g}"


def _spec_item(spec, key):
    """Sub-spec for item ``key`` of a container spec (None when unknown)."""
    if spec is None or isinstance(spec, (str, Out)):
        return None
    if isinstance(spec, list):
        return spec[0] if spec else None
    if isinstance(spec, dict):
        return spec.get(key)
    if isinstance(spec, tuple) and isinstance(key, int) and key < len(spec):
        return spec[key]
    return None


def _label(spec, path: tuple, list_index: int | None) -> tuple[str, str | None]:
    where = "output" + "".join(f"[{k!r}]" for k in path)
    if isinstance(spec, str):
        spec = Out(spec)
    if isinstance(spec, Out):
        fmt = {} if list_index is None else {"n": list_index + 1, "i": list_index}
        name = spec.name.format(**fmt)
        like = spec.like.format(**fmt) if spec.like else None
        return (f"{name} ({where})" if path else name), like
    return where, None


def compare(got, expected, *, spec=None, tol: Tolerance = Tolerance(rtol=1e-6),
            check_dtype: bool = False, _path: tuple = (), _list_index: int | None = None):
    """Compare ``got`` with ``expected``, recursively; None if they agree, else a :class:`Mismatch`.

    Arrays must have the expected shape and values within ``tol``; floats
    follow the same rule. Tuples and lists must have the same length, dicts
    the same keys. Booleans must be booleans and equal exactly. ``nan``
    equals ``nan`` and ``inf`` equals ``inf`` of the same sign; any other
    non-finite value, in either output, is a mismatch at its index.

    Parameters
    ----------
    got, expected : array, float, bool, str, tuple, list or dict (nested)
    spec : optional
        Names of the outputs, mirroring their structure: a ``str`` or
        :class:`Out` for a leaf, a tuple for a fixed-length sequence, a
        one-element list ``[item_spec]`` for a list of any length, a dict.
    tol : Tolerance
        With ``rtol`` set (see :meth:`Tolerance.resolved`).
    check_dtype : bool
        Also require the expected floating dtype (float32 in, float32 out).
    """
    label, like = _label(spec, _path, _list_index)
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return Mismatch("type", label, f"is a {type(got).__name__}; expected a dict with keys "
                                           f"{sorted(map(str, expected))}")
        if set(got) != set(expected):
            return Mismatch("type", label, f"has keys {sorted(map(str, got))}; expected "
                                           f"{sorted(map(str, expected))}")
        for key in expected:
            bad = compare(got[key], expected[key], spec=_spec_item(spec, key), tol=tol,
                          check_dtype=check_dtype, _path=_path + (key,), _list_index=_list_index)
            if bad is not None:
                return bad
        return None
    if is_sequence(expected):
        what = "tuple" if isinstance(expected, tuple) else "list"
        if not is_sequence(got):
            return Mismatch("type", label, f"is a {type(got).__name__}; expected a {what} of "
                                           f"{len(expected)} items")
        if len(got) != len(expected):
            return Mismatch("type", label, f"has {len(got)} items; expected {len(expected)}")
        for k, (g, e) in enumerate(zip(got, expected)):
            index = k if isinstance(spec, list) else _list_index
            bad = compare(g, e, spec=_spec_item(spec, k), tol=tol, check_dtype=check_dtype,
                          _path=_path + (k,), _list_index=index)
            if bad is not None:
                return bad
        return None
    if isinstance(expected, np.ndarray):
        return _compare_arrays(got, expected, label, like, tol, check_dtype)
    if isinstance(expected, (bool, np.bool_)):  # before numbers.Real, which includes bool
        if isinstance(got, np.ndarray) and got.ndim == 0:
            got = got[()]
        if not isinstance(got, (bool, np.bool_)):
            return Mismatch("type", label, f"is a {type(got).__name__}; expected a bool")
        if bool(got) != bool(expected):
            return Mismatch("value", label, f"is {bool(got)}; expected {bool(expected)}")
        return None
    if isinstance(expected, numbers.Real):
        if isinstance(got, np.ndarray) and got.ndim == 0:
            got = got[()]
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, numbers.Real):
            return Mismatch("type", label, f"is a {type(got).__name__}; expected a real number")
        return _compare_values(np.asarray(float(got)), np.asarray(float(expected)), label, tol)
    if type(got) is not type(expected) or got != expected:
        return Mismatch("value", label, f"is {got!r}; expected {expected!r}")
    return None


def _compare_arrays(got, expected, label, like, tol, check_dtype):
    if not isinstance(got, np.ndarray):
        return Mismatch("type", label, f"is a {type(got).__name__}; expected a NumPy array of shape "
                                       f"{expected.shape}")
    if got.shape != expected.shape:
        why = f", the shape of {like}" if like else ""
        return Mismatch("shape", label, f"has shape {got.shape}; expected {expected.shape}{why}")
    if expected.dtype.kind == "b":
        if got.dtype.kind != "b":
            return Mismatch("type", label, f"has dtype {got.dtype}; expected bool")
        if np.array_equal(got, expected):
            return None
        idx = tuple(int(i) for i in np.argwhere(got != expected)[0])
        where = f" at index {idx}" if idx else ""
        return Mismatch("value", label, f"is off{where} (yours {bool(got[idx])}, expected "
                                        f"{bool(expected[idx])}; {int((got != expected).sum())} of "
                                        f"{got.size} entries differ)")
    if got.dtype.kind not in "fiu":
        return Mismatch("type", label, f"has dtype {got.dtype}; expected {expected.dtype}")
    if check_dtype and expected.dtype.kind == "f" and got.dtype != expected.dtype:
        return Mismatch("type", label, f"has dtype {got.dtype}; expected {expected.dtype}, the dtype of "
                                       f"the inputs (float32 in, float32 out: a float64 array or factor "
                                       f"somewhere promotes it)")
    return _compare_values(got, expected, label, tol)


def _compare_values(got, expected, label, tol: Tolerance):
    got64 = got.astype(np.float64)
    exp64 = expected.astype(np.float64)
    finite = np.isfinite(exp64)
    # a non-finite entry (in either output) must be matched exactly: nan by nan, inf by inf
    same = (got64 == exp64) | (np.isnan(got64) & np.isnan(exp64))
    odd = ~(finite & np.isfinite(got64)) & ~same
    if odd.any():
        idx = tuple(int(i) for i in np.argwhere(odd)[0])
        at = f" at index {idx}" if got.ndim else ""
        if finite.all():
            return Mismatch("value", label, f"contains {got64[idx]}{at} "
                                            f"({int((~np.isfinite(got64)).sum())} non-finite entries); "
                                            f"the expected values are all finite")
        return Mismatch("value", label, f"is {got64[idx]}{at}; expected {exp64[idx]}")
    got64, exp64 = np.where(finite, got64, 0.0), np.where(finite, exp64, 0.0)  # the rest agree
    err = np.abs(got64 - exp64)
    info = np.finfo(expected.dtype if expected.dtype.kind == "f" else np.float64)
    largest = float(np.max(np.abs(exp64), initial=0.0))
    if tol.per_entry:
        floor = tol.atol + tol.floor * float(info.eps) * largest + float(info.tiny)
        excess = err - (tol.rtol * np.abs(exp64) + floor)
        if not (excess > 0).any():
            return None
        ratio = np.where(excess > 0, err / np.maximum(np.abs(exp64), info.tiny), -1.0)  # 0-d for a number
        flat = int(np.argmax(ratio))
        tol_text = f"tolerance {tol.rtol:.0e} of each entry"
        if floor > 2 * float(info.tiny):
            tol_text += f" plus {_fmt(floor)}"
    else:
        if float(np.max(err, initial=0.0)) <= tol.atol + tol.rtol * largest:
            return None
        flat = int(np.argmax(err))
        tol_text = f"tolerance {tol.rtol:.0e} of the largest expected entry {_fmt(largest)}"
    idx = tuple(int(i) for i in np.unravel_index(flat, err.shape)) if err.ndim else ()
    e = exp64[idx]
    rel = err[idx] / abs(e) if e != 0 else float("inf")
    where = f" at index {idx}" if idx else ""
    return Mismatch("value", label, f"is off: error {_fmt(err[idx])}{where} (yours {_fmt(got64[idx])}, "
                                    f"expected {_fmt(e)}, {_fmt(rel)} relative); {tol_text}")
