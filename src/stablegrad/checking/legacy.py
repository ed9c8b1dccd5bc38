"""Check a learner's function against the reference and say precisely what is wrong.

The exercises call these helpers from their test cells. Each check runs the
learner's function and the reference implementation on the same seeded random
inputs (several shapes, scales and activations) and, at the first
disagreement, raises a :class:`CheckFailure` (an ``AssertionError``) whose
message names

* the output that is wrong (``dW2``, ``dx``, ``norms``...) and the case it failed on,
* a wrong type, dtype or shape, with the shape it should have had and why
  ("expected (4, 5), the shape of x"),
* how far off the values are: largest absolute error, relative error, the
  index of the worst entry and both values there,
* the common mistake the answer matches, if any: every graded function comes
  with a list of plausible wrong implementations (:class:`Mistake`), and the
  learner's output is compared with theirs on the failing input.

It also checks that the learner's function leaves its inputs unchanged, and
guards against delegation: while the learner's function runs, a profiler
watches for the reference implementation of the function being graded
(:func:`call_guarded`). Calling it by any route (import, alias,
``importlib``, ``sys.modules``) raises :class:`DelegationError`. Calling
*other* package functions, such as ``stack_forward`` to build caches, is fine.

This package holds the generic machinery (outputs may be arrays, floats,
tuples, lists, dicts, nested); one module per exercise topic bundles the
cases, the common mistakes and a ``check_<function>`` helper per graded
function: :mod:`stablegrad.checking.chain_rule` for exercise 1, and so on.

Examples
--------
>>> from stablegrad.checking import chain_rule as checks
>>> checks.check_stack_backward(my_stack_backward)            # doctest: +SKIP
stack_backward: all 6 checks passed
  ok  tanh, 2 layers of widths (5, 4, 3), N=4, weight scale 1
  ...

A wrong answer raises instead, e.g.::

    WrongValueError: stack_backward: dx (output[0]) is off: error 1.23351 at index (1, 4)
    (yours 1.28262, expected 0.0491126, 25.1159 relative); tolerance 1e-06 of the largest
    expected entry 0.606374.
      case: tanh, 2 layers of widths (5, 4, 3), N=4, weight scale 1
      This matches a common mistake: forgetting the activation derivative (using dL/da as dL/dz).
"""

from __future__ import annotations

import copy
import inspect
import numbers
import sys
import threading
from typing import Callable, NamedTuple, Sequence

import numpy as np

__all__ = [
    "CheckFailure", "NotImplementedYetError", "LearnerError", "WrongTypeError",
    "WrongShapeError", "WrongValueError", "InputModifiedError", "DelegationError",
    "Case", "Mistake", "Out", "call_guarded", "call_learner", "compare", "check_against_reference",
    "functions_named",
]


# =========================================================================== errors

from stablegrad.checking.errors import (  # noqa: E402 - one set of classes for old and new checks
    CheckFailure, DelegationError, InputModifiedError, LearnerError, NotImplementedYetError,
    WrongShapeError, WrongTypeError, WrongValueError,
)


def _not_implemented(name: str) -> NotImplementedYetError:
    return NotImplementedYetError(f"{name} is not implemented yet: replace `raise NotImplementedError()` with "
                                  f"your code.")


# =========================================================================== data

class Case(NamedTuple):
    """One input on which the learner's function is compared with the reference.

    ``label`` appears in messages ("tanh, 3 layers, N=4, weight scale 1");
    ``names`` names the positional arguments (for "modified its argument x").
    """

    label: str
    args: tuple
    kwargs: dict = {}
    names: tuple = ()


class Mistake(NamedTuple):
    """A plausible wrong implementation, described as the learner would say it."""

    description: str
    fn: Callable


class Out(NamedTuple):
    """Name of one output in an output spec, and where its shape comes from.

    ``name`` and ``like`` may contain ``{n}`` (1-based) or ``{i}`` (0-based),
    replaced by the index in the innermost list: ``Out("dW{n}", like="W{n}")``.
    """

    name: str
    like: str | None = None


# =========================================================================== delegation guard

def functions_named(module, *names) -> list:
    """The functions of ``module`` with these names that exist (for ``forbid=``).

    Private helpers of a reference module may come and go; listing them here
    forbids them while they exist without breaking a check when they are renamed.
    """
    return [getattr(module, n) for n in names if callable(getattr(module, n, None))]


def _code_of(fn):
    fn = inspect.unwrap(fn) if callable(fn) else fn
    return getattr(fn, "__code__", None)


def _qualified(fn) -> str:
    fn = inspect.unwrap(fn)
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def call_guarded(func: Callable, forbidden: Sequence[Callable], *args, name: str | None = None,
                 **kwargs):
    """Call ``func(*args, **kwargs)`` and fail if it runs any of ``forbidden``.

    A profiler hook (``sys.setprofile``, and ``threading.setprofile`` for
    threads the call starts) records every Python function that starts while
    ``func`` runs. If one of them has the code object of a forbidden function,
    the learner's function delegated to the reference, however it got hold of
    it: ``from stablegrad.layers import stack_backward``, an alias,
    ``importlib.import_module``, ``sys.modules[...]``, ``functools.partial``.

    Parameters
    ----------
    func : callable
        The learner's function.
    forbidden : sequence of callables
        Reference implementations that ``func`` must not call.
    name : str, optional
        Name used in messages (defaults to ``func.__name__``).

    Returns
    -------
    The value returned by ``func``.

    Raises
    ------
    DelegationError
        If a forbidden function ran (or ``func`` is one of them, or the call
        removed the profiler).
    """
    name = name or getattr(func, "__name__", "your function")
    watched = {}
    for ref in forbidden:
        code = _code_of(ref)
        if code is not None:
            watched[code] = _qualified(ref)
    own = _code_of(func)
    if own is not None and own in watched:
        raise DelegationError(
            f"{name} is the reference implementation {watched[own]} itself. "
            f"Write your own implementation instead of importing or aliasing it.")

    hits: list[str] = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code in watched and not hits:
            hits.append(watched[frame.f_code])

    previous, previous_thread = sys.getprofile(), threading.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        result = func(*args, **kwargs)
    except BaseException:
        if hits:  # delegation explains the failure better than its exception
            raise DelegationError(_delegation_message(name, hits[0])) from None
        raise
    finally:
        tampered = sys.getprofile() is not hook
        sys.setprofile(previous)
        threading.setprofile(previous_thread)
    if hits:
        raise DelegationError(_delegation_message(name, hits[0]))
    if tampered:
        raise DelegationError(f"{name} changed the profiler (sys.setprofile) that checks it "
                              f"does not call the reference implementation; remove that call.")
    return result


def call_learner(func: Callable, forbidden: Sequence[Callable], *args, name: str,
                 context: str | None = None, **kwargs):
    """:func:`call_guarded`, with the learner's own exceptions turned into check failures.

    ``NotImplementedError`` becomes :class:`NotImplementedYetError`; any other
    exception becomes a :class:`LearnerError` chained to it, whose message
    ends with the line ``context`` when given (the case, say).
    """
    try:
        return call_guarded(func, forbidden, *args, name=name, **kwargs)
    except CheckFailure:
        raise
    except NotImplementedError:
        raise _not_implemented(name) from None
    except Exception as exc:
        where = f"\n  {context}" if context else ""
        raise LearnerError(f"{name} raised {type(exc).__name__}: {exc}{where}") from exc


def _delegation_message(name: str, ref: str) -> str:
    return (f"{name} called the reference implementation {ref}. This exercise asks you to "
            f"write it yourself: remove that call (other stablegrad functions are fine).")


# =========================================================================== comparing outputs

class _Mismatch(NamedTuple):
    kind: type          # the CheckFailure subclass to raise
    label: str          # "dW2 (output[1][1][0])"
    text: str           # what is wrong, without the function name


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


def _is_sequence(x) -> bool:
    return isinstance(x, (tuple, list))


def compare(got, expected, *, spec=None, rtol: float = 1e-7, atol: float = 0.0,
            check_dtype: bool = False, elementwise: bool = False, _path: tuple = (),
            _list_index: int | None = None):
    """Compare a learner's output with the expected one, recursively.

    Arrays must have the expected shape, and values must satisfy
    ``max|got - expected| <= atol + rtol * max|expected|`` (a norm-wise
    relative test, so that vanishing gradients of size 1e-20 are compared as
    strictly as gradients of size 1). Floats follow the same rule. Tuples and
    lists must have the same length, dicts the same keys. Booleans (``bool``
    and boolean arrays) must be booleans and equal exactly. ``nan`` equals
    ``nan`` and ``inf`` equals ``inf`` of the same sign; any other
    non-finite value, in either output, is a mismatch at its index.

    Parameters
    ----------
    got, expected : array, float, tuple, list or dict (nested)
    spec : optional
        Names of the outputs, mirroring their structure: a ``str`` or
        :class:`Out` for a leaf, a tuple for a fixed-length sequence, a
        one-element list ``[item_spec]`` for a list of any length, a dict.
    rtol, atol : float
        Relative and absolute tolerances.
    check_dtype : bool
        Also require the expected floating dtype (float32 in, float32 out).
    elementwise : bool
        Compare every entry with its own size, ``|got - expected| <= atol +
        rtol * |expected|``, for outputs whose entries span orders of
        magnitude (per-layer gradient norms of a vanishing chain).

    Returns
    -------
    None if they agree, else a ``_Mismatch(kind, label, text)``.
    """
    label, like = _label(spec, _path, _list_index)
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return _Mismatch(WrongTypeError, label,
                             f"is a {type(got).__name__}; expected a dict with keys {sorted(expected)}")
        if set(got) != set(expected):
            return _Mismatch(WrongTypeError, label,
                             f"has keys {sorted(map(str, got))}; expected {sorted(map(str, expected))}")
        for key in expected:
            bad = compare(got[key], expected[key], spec=_spec_item(spec, key), rtol=rtol, atol=atol,
                          check_dtype=check_dtype, elementwise=elementwise, _path=_path + (key,),
                          _list_index=_list_index)
            if bad is not None:
                return bad
        return None
    if _is_sequence(expected):
        what = "tuple" if isinstance(expected, tuple) else "list"
        if not _is_sequence(got):
            return _Mismatch(WrongTypeError, label,
                             f"is a {type(got).__name__}; expected a {what} of {len(expected)} items")
        if len(got) != len(expected):
            return _Mismatch(WrongTypeError, label,
                             f"has {len(got)} items; expected {len(expected)}")
        for k, (g, e) in enumerate(zip(got, expected)):
            index = k if isinstance(spec, list) else _list_index
            bad = compare(g, e, spec=_spec_item(spec, k), rtol=rtol, atol=atol, check_dtype=check_dtype,
                          elementwise=elementwise, _path=_path + (k,), _list_index=index)
            if bad is not None:
                return bad
        return None
    if isinstance(expected, np.ndarray):
        return _compare_arrays(got, expected, label, like, rtol, atol, check_dtype, elementwise)
    if isinstance(expected, (bool, np.bool_)):  # before numbers.Real, which includes bool
        if isinstance(got, np.ndarray) and got.ndim == 0:
            got = got[()]
        if not isinstance(got, (bool, np.bool_)):
            return _Mismatch(WrongTypeError, label, f"is a {type(got).__name__}; expected a bool")
        if bool(got) != bool(expected):
            return _Mismatch(WrongValueError, label, f"is {bool(got)}; expected {bool(expected)}")
        return None
    if isinstance(expected, numbers.Real):
        if isinstance(got, np.ndarray) and got.ndim == 0:
            got = got[()]
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            return _Mismatch(WrongTypeError, label,
                             f"is a {type(got).__name__}; expected a real number")
        return _compare_values(np.asarray(float(got)), np.asarray(float(expected)), label,
                               rtol, atol)
    if got != expected:
        return _Mismatch(WrongValueError, label, f"is {got!r}; expected {expected!r}")
    return None


def _compare_arrays(got, expected, label, like, rtol, atol, check_dtype, elementwise=False):
    if not isinstance(got, np.ndarray):
        return _Mismatch(WrongTypeError, label,
                         f"is a {type(got).__name__}; expected a NumPy array of shape "
                         f"{expected.shape}")
    if got.shape != expected.shape:
        why = f", the shape of {like}" if like else ""
        return _Mismatch(WrongShapeError, label,
                         f"has shape {got.shape}; expected {expected.shape}{why}")
    if expected.dtype.kind == "b":
        if got.dtype.kind != "b":
            return _Mismatch(WrongTypeError, label, f"has dtype {got.dtype}; expected bool")
        if np.array_equal(got, expected):
            return None
        idx = tuple(int(i) for i in np.argwhere(got != expected)[0])
        where = f" at index {idx}" if idx else ""
        return _Mismatch(WrongValueError, label,
                         f"is off{where} (yours {bool(got[idx])}, expected {bool(expected[idx])}; "
                         f"{int((got != expected).sum())} of {got.size} entries differ)")
    if got.dtype.kind not in "fiu":
        return _Mismatch(WrongTypeError, label, f"has dtype {got.dtype}; expected {expected.dtype}")
    if check_dtype and expected.dtype.kind == "f" and got.dtype != expected.dtype:
        return _Mismatch(WrongTypeError, label,
                         f"has dtype {got.dtype}; expected {expected.dtype}, the dtype of the "
                         f"inputs (float32 in, float32 out: avoid creating float64 arrays)")
    return _compare_values(got, expected, label, rtol, atol, elementwise)


def _compare_values(got, expected, label, rtol, atol, elementwise=False):
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
            return _Mismatch(WrongValueError, label,
                             f"contains {got64[idx]}{at} ({int((~np.isfinite(got64)).sum())} "
                             f"non-finite entries); the expected values are all finite")
        return _Mismatch(WrongValueError, label, f"is {got64[idx]}{at}; expected {exp64[idx]}")
    got64, exp64 = np.where(finite, got64, 0.0), np.where(finite, exp64, 0.0)  # the rest agree
    err = np.abs(got64 - exp64)
    if elementwise:
        allowed = atol + rtol * np.abs(exp64)
        excess = err - allowed
        if not (excess > 0).any():
            return None
        worst = err / np.maximum(np.abs(exp64), np.finfo(np.float64).tiny)
        worst[excess <= 0] = -1.0
        flat = int(np.argmax(worst))
        tol_text = f"tolerance {rtol:.0e} of each entry"
    else:
        scale = float(np.max(np.abs(exp64), initial=0.0))
        if float(np.max(err, initial=0.0)) <= atol + rtol * scale:
            return None
        flat = int(np.argmax(err))
        tol_text = f"tolerance {rtol:.0e} of the largest expected entry {_fmt(scale)}"
    idx = tuple(int(i) for i in np.unravel_index(flat, err.shape)) if err.ndim else ()
    e = exp64[idx]
    rel = err[idx] / abs(e) if e != 0 else float("inf")
    where = f" at index {idx}" if idx else ""
    return _Mismatch(WrongValueError, label,
                     f"is off: error {_fmt(err[idx])}{where} (yours {_fmt(got64[idx])}, "
                     f"expected {_fmt(e)}, {_fmt(rel)} relative); {tol_text}")


def _changed_input(before, after, names) -> str | None:
    """Describe the first argument that differs from its copy taken before the call."""
    for k, (b, a) in enumerate(zip(before, after)):
        name = names[k] if k < len(names) else f"argument {k + 1}"
        if compare(_comparable(a), _comparable(b), rtol=0.0) is not None:
            return name
    return None


def _comparable(x):
    """``x`` with the objects an input check cannot compare replaced by None.

    A random generator advances by design when it is used, and an object
    without ``==`` of its own (a ``functools.partial``, say) only equals
    itself, never the deep copy the function was given.
    """
    if isinstance(x, dict):
        return {k: _comparable(v) for k, v in x.items()}
    if _is_sequence(x):
        return [_comparable(v) for v in x]
    if isinstance(x, (np.random.Generator, np.random.BitGenerator, np.random.RandomState)):
        return None
    if type(x).__eq__ is object.__eq__:
        return None
    return x


# =========================================================================== the check

def _dtype_rtol(case: Case, rtol: float | None) -> float:
    if rtol is not None:
        return rtol
    arrays = [a for a in _leaves(case.args) if isinstance(a, np.ndarray)]
    low = any(a.dtype in (np.float32, np.float16) for a in arrays)
    return 1e-4 if low else 1e-6


def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif _is_sequence(x):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def check_against_reference(func: Callable, reference: Callable, cases: Sequence[Case], *,
                            name: str | None = None, spec=None, mistakes: Sequence[Mistake] = (),
                            forbid: Sequence[Callable] | None = None, rtol: float | None = None,
                            atol: float = 0.0, check_dtype: bool = False,
                            elementwise: bool = False, quiet: bool = False) -> None:
    """Compare ``func`` with ``reference`` on every case; raise at the first problem.

    Every call gets its own deep copy of the inputs, so a function that
    modifies its arguments cannot affect the others, and is caught doing it.

    Parameters
    ----------
    func : callable
        The learner's function.
    reference : callable
        The reference implementation.
    cases : sequence of Case
    name : str, optional
        Function name for messages (defaults to ``reference.__name__``).
    spec : optional
        Output names, see :func:`compare`.
    mistakes : sequence of Mistake
        Known wrong implementations; a failing output is compared with each.
    forbid : sequence of callables, optional
        Functions the learner must not call (defaults to ``[reference]``).
    rtol, atol : float
        Tolerances; by default ``rtol`` is 1e-6 (1e-4 when an input is float32).
    check_dtype : bool
        Require float32 outputs for float32 inputs.
    elementwise : bool
        Compare each entry with its own size (see :func:`compare`).
    quiet : bool
        Do not print the summary line.

    Returns
    -------
    None
        Deliberately: nbgrader reads a number displayed by a test cell as
        partial credit, so a check must not end a cell with a value.

    Raises
    ------
    CheckFailure
        A subclass naming the problem (see the module docstring).
    """
    name = name or reference.__name__
    forbid = [reference] if forbid is None else list(forbid)
    for case in cases:
        tol = _dtype_rtol(case, rtol)
        expected = reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
        try:
            got = call_guarded(func, forbid, *args, name=name, **kwargs)
        except CheckFailure:
            raise
        except NotImplementedError:
            raise _not_implemented(name) from None
        except Exception as exc:
            message = f"{name} raised {type(exc).__name__}: {exc}\n  case: {case.label}"
            matched = _mistakes_raising(exc, case, mistakes)
            if matched:
                message += "\n  This matches a common mistake: " + "; or ".join(matched) + "."
            raise LearnerError(message) from exc
        changed = _changed_input(case.args, args, case.names)
        if changed is None:
            changed = _changed_input([case.kwargs], [kwargs], ())
        if changed is not None:
            raise InputModifiedError(
                f"{name} modified its input {changed} in place (case: {case.label}). Work on a "
                f"copy (x.copy()), or undo every change before returning.")
        bad = compare(got, expected, spec=spec, rtol=tol, atol=atol, check_dtype=check_dtype,
                      elementwise=elementwise)
        if bad is not None:
            message = f"{name}: {bad.label} {bad.text}.\n  case: {case.label}"
            matched = _matching_mistakes(got, expected, case, mistakes, spec=spec, rtol=tol, atol=atol,
                                         check_dtype=check_dtype, elementwise=elementwise)
            if matched:
                message += "\n  This matches a common mistake: " + "; or ".join(matched) + "."
            raise bad.kind(message)
    if not quiet:
        print(f"{name}: all {len(cases)} checks passed")
        for case in cases:
            print(f"  ok  {case.label}")


def _mistakes_raising(exc: Exception, case: Case, mistakes: Sequence[Mistake]) -> list[str]:
    """Mistakes that raise the same exception (type and message) as the learner's function."""
    matched = []
    for mistake in mistakes:
        try:
            mistake.fn(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception as theirs:
            if type(theirs) is type(exc) and str(theirs) == str(exc):
                matched.append(mistake.description)
    return matched


def _matching_mistakes(got, expected, case: Case, mistakes: Sequence[Mistake],
                       **tolerances) -> list[str]:
    """Mistakes whose output on this case is wrong, and equal to the learner's."""
    matched = []
    for mistake in mistakes:
        try:
            wrong = mistake.fn(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception:  # a mistake that crashes on this input cannot match it
            continue
        if compare(wrong, expected, **tolerances) is None:
            continue  # indistinguishable from the right answer here: it explains nothing
        if compare(got, wrong, **tolerances) is None:
            matched.append(mistake.description)
    return matched

