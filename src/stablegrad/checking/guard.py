"""Run a learner's function once and record everything a check needs to know, as plain data.

This is the learner's side of a check. :func:`run_learner` calls the
function on a private copy of the inputs, under the delegation guard, and
returns an :class:`Outcome`: the value it returned or the exception it
raised, whether it called the reference, changed an input in place, returned
memory shared with an input, made NumPy warn or drew from NumPy's global
random state, and the state of every random generator it was given. Nothing
in an outcome but the returned value refers to the learner's objects, so the
comparison with the reference (:mod:`stablegrad.checking.engine`) can run in
another process once the value is encoded (:mod:`stablegrad.checking.encoding`).

The delegation guard: while the learner's function runs, a profiler hook
(``sys.setprofile``, and ``threading.setprofile`` for threads it starts)
records every Python function that starts; if one of them has the code object
of a forbidden function, the learner's function delegated to the reference,
however it reached it (import, alias, ``importlib``, ``sys.modules``,
``functools.partial``).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import sys
import threading
import traceback
import warnings
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from stablegrad.containers import leaves

__all__ = ["Raised", "Outcome", "run_learner", "functions_named", "leaves"]

_HERE = os.path.dirname(os.path.abspath(__file__))


class Raised(NamedTuple):
    """An exception the learner's function raised, as data."""

    type: str                 # "ValueError"
    mro: tuple[str, ...]      # qualified names of its classes, most derived first
    message: str
    where: str                # the learner's line that raised it ("line 7: dz = d * f(z)")

    def is_a(self, qualified: str) -> bool:
        """Whether the exception is an instance of the class with this qualified name."""
        return qualified in self.mro


class Outcome(NamedTuple):
    """What one call of the learner's function did."""

    value: object = None
    raised: Raised | None = None
    delegated: str | None = None        # the forbidden function it called
    tampered: bool = False              # it removed the profiler that watches for delegation
    modified: tuple[str, ...] = ()      # inputs it changed in place
    shared: tuple[str, ...] = ()        # "output[0] and grads['W1']": outputs sharing an input's memory
    warnings: tuple[str, ...] = ()      # NumPy's floating-point warnings, in order, without repeats
    global_rng: bool = False            # it drew from NumPy's global random state
    generators: tuple = ()              # the state of each Generator argument afterwards


def functions_named(module, *names) -> list:
    """The functions of ``module`` with these names that exist (for ``forbid``).

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


def _learner_line(tb) -> str:
    """The last frame of a traceback outside the package: the learner's line that raised."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(os.path.dirname(_HERE))]
    if not frames:
        return ""
    last = frames[-1]
    return f"line {last.lineno}: {last.line}" if last.line else f"line {last.lineno}"


def _raised(exc: BaseException) -> Raised:
    mro = tuple(f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__)
    return Raised(type(exc).__name__, mro, str(exc), _learner_line(exc.__traceback__))


def _fields(x):
    """A dataclass record (``network.MLP``) as a dict of its fields, so that its arrays are looked at."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _fields(getattr(x, f.name)) for f in dataclasses.fields(x)}
    return x


def _changed(before, after) -> bool:
    """Whether an input differs from the copy taken before the call (exactly; nan equals nan)."""
    before, after = _fields(before), _fields(after)
    if isinstance(before, np.ndarray):
        return not (isinstance(after, np.ndarray) and after.shape == before.shape
                    and after.dtype == before.dtype and np.array_equal(after, before, equal_nan=True))
    if isinstance(before, dict):
        return (not isinstance(after, dict) or list(before) != list(after)
                or any(_changed(before[k], after[k]) for k in before))
    if isinstance(before, (list, tuple)):
        return (type(after) is not type(before) or len(after) != len(before)
                or any(_changed(b, a) for b, a in zip(before, after)))
    if isinstance(before, (np.random.Generator, np.random.BitGenerator, np.random.RandomState)):
        return False  # a generator advances by design; its state is reported separately
    if type(before).__eq__ is object.__eq__:
        return False  # only equal to itself (a callable, say): nothing to compare
    try:
        return bool(before != after)
    except Exception:  # noqa: BLE001 - an object whose comparison fails counts as changed
        return True


def _shared(value, inputs: Sequence[tuple[str, object]]) -> tuple[str, ...]:
    arrays = [(name + path, a) for name, arg in inputs for path, a in leaves(_fields(arg))
              if isinstance(a, np.ndarray)]
    found = []
    for path, out in leaves(_fields(value)):
        if isinstance(out, np.ndarray):
            for name, a in arrays:
                if np.shares_memory(out, a):
                    found.append(f"output{path} and {name}")
                    break
    return tuple(found)


def run_learner(func: Callable, args: tuple, kwargs: Mapping | None = None, *,
                forbid: Sequence[Callable] = (), names: Sequence[str] = (),
                substitute: Mapping[str, Callable] | None = None, copy_inputs: bool = True) -> Outcome:
    """Call ``func(*args, **kwargs)`` on copies of the inputs and describe what happened.

    Parameters
    ----------
    func : callable
        The learner's function.
    args, kwargs
        The inputs (left untouched: the function gets deep copies).
    forbid : sequence of callables
        Reference implementations it must not call.
    names : sequence of str
        Names of the positional arguments, for messages ("x", "grads").
    substitute : mapping, optional
        Names in the learner's globals rebound for the duration of the call,
        so that a function built on an earlier answer is graded on its own:
        ``{"forward_variance": reference}``.
    """
    if hasattr(type(func), "remote_outcome"):   # the learner's function runs in another process (coursegrade)
        outcome = func.remote_outcome(args, dict(kwargs or {}), names=names, substitute=substitute,
                                      copy_inputs=copy_inputs)
        if not copy_inputs:   # the caller's own generators continue where the learner's copies stopped
            given = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, np.random.Generator)]
            for generator, state in zip(given, outcome.generators):
                generator.bit_generator.state = state
        return outcome
    kwargs = dict(kwargs or {})
    call_args, call_kwargs = (copy.deepcopy(args), copy.deepcopy(kwargs)) if copy_inputs else (args, kwargs)
    watched = {code: _qualified(ref) for ref in forbid if (code := _code_of(ref)) is not None}
    own = _code_of(func)
    if own is not None and own in watched:
        return Outcome(delegated=watched[own])

    hits: list[str] = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code in watched and not hits:
            hits.append(watched[frame.f_code])

    namespace = getattr(inspect.unwrap(func), "__globals__", None)
    saved = {}
    if substitute and namespace is not None:
        saved = {k: namespace[k] for k in substitute if k in namespace}
        namespace.update(substitute)
    global_before = np.random.get_state(legacy=False)
    value, raised = None, None
    previous, previous_thread = sys.getprofile(), threading.getprofile()
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(over="warn", invalid="warn", divide="warn", under="ignore"):
        warnings.simplefilter("always")
        sys.setprofile(hook)
        threading.setprofile(hook)
        try:
            value = func(*call_args, **call_kwargs)
        except Exception as exc:  # noqa: BLE001 - the learner's exception is data for the check
            raised = _raised(exc)
        finally:
            tampered = sys.getprofile() is not hook
            sys.setprofile(previous)
            threading.setprofile(previous_thread)
            if saved or substitute:
                for k in substitute or {}:
                    if k in saved:
                        namespace[k] = saved[k]
                    elif namespace is not None:
                        namespace.pop(k, None)
    global_rng = _fingerprint(global_before) != _fingerprint(np.random.get_state(legacy=False))
    if global_rng:
        np.random.set_state(global_before)  # a check leaves NumPy's global random state as it found it
    named = [(names[k] if k < len(names) else f"argument {k + 1}", a) for k, a in enumerate(args)]
    named += list(kwargs.items())
    called = [(names[k] if k < len(names) else f"argument {k + 1}", a) for k, a in enumerate(call_args)]
    called += list(call_kwargs.items())
    modified = tuple(n for (n, before), (_, after) in zip(named, called) if _changed(before, after))
    messages = []
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and str(w.message) not in messages:
            messages.append(str(w.message))
    return Outcome(
        value=value, raised=raised, delegated=hits[0] if hits else None, tampered=tampered,
        modified=modified, shared=() if raised else _shared(value, called), warnings=tuple(messages),
        global_rng=global_rng,
        generators=tuple(a.bit_generator.state for _, a in called if isinstance(a, np.random.Generator)))


def _fingerprint(s: dict) -> tuple:
    """A comparable form of a state of NumPy's global (legacy) generator."""
    return s["state"]["key"].tobytes(), s["state"]["pos"], s["has_gauss"], s["gauss"]
