"""One engine for every exercise: a graded function is declared as data, checked by one function.

A :class:`Graded` declaration says everything about one function a learner
writes: the reference, a learner-style correct source, the visible cases,
what the outputs are called, the tolerance, extra properties (contracts,
invariants, statistical tests) and the common mistakes, each a small edit of
the learner-style source. :func:`run` checks a learner's function against a
declaration and returns a :class:`Report` (plain data: which output, which
case, how far off, which mistakes match); :func:`render` turns a finding into
the text a learner reads, and :meth:`Graded.check` raises it as the
:mod:`~stablegrad.checking.errors` class of its kind.

The learner's function is only ever called through
:func:`stablegrad.checking.guard.run_learner`, which returns an
:class:`~stablegrad.checking.guard.Outcome`; everything else (the reference,
the mistakes, the comparison) happens on the checker's side, so the learner's
side can later move to another process with its inputs and outputs encoded
by :mod:`stablegrad.checking.encoding`.

Example
-------
>>> DOUBLE = Graded(                                       # doctest: +SKIP
...     name="double", reference=lambda x: 2 * x,
...     source="def double(x):\\n    return x + x\\n",
...     visible=lambda: [Case("x = 1..3", (np.arange(1.0, 4.0),), names=("x",))],
...     mistakes=[Mistake("adding 1 instead of doubling", edit=("x + x", "x + 1"))])
>>> DOUBLE.check(lambda x: x + 1)                          # doctest: +SKIP
WrongValueError: double: output is off: error 1 at index (1,) ...
  This matches a common mistake: adding 1 instead of doubling.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from stablegrad.checking.comparison import Tolerance, compare
from stablegrad.checking.errors import KINDS
from stablegrad.checking.guard import Outcome, leaves, run_learner

__all__ = ["Case", "Mistake", "Problem", "Property", "Finding", "Report", "Graded", "Caller", "run", "render"]


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
    """A plausible wrong implementation, and its likely cause in words.

    ``cause`` names what went wrong without writing the fix ("the activation
    derivative is left out"). The wrong implementation is ``edit``, one
    ``(old, new)`` replacement (or a tuple of them) in the declaration's
    learner-style source, each ``old`` occurring exactly once; or ``source``,
    a short function of its own when the mistake is not an edit.
    """

    cause: str
    edit: tuple = ()
    source: str | None = None


class Problem(NamedTuple):
    """What a comparison or a property found wrong: kind (a key of ``errors.KINDS``), output, text.

    ``evidence`` (optional, plain data) identifies the behaviour more finely than kind and output,
    e.g. the wrong number a property measured: a common mistake is named only when its own
    problem has the same kind, output and evidence.
    """

    kind: str
    what: str
    text: str
    evidence: object = None


class Property(NamedTuple):
    """A check beyond agreeing with the reference on the cases.

    ``check(call)`` returns a :class:`Problem` or None. ``call`` is a
    :class:`Caller`: ``call(*args)`` runs the function being checked (the
    learner's, or a mistake's when matching) and returns its value;
    ``call.outcome(*args)`` returns the whole :class:`Outcome` (to see an
    exception it raised on purpose). ``label`` is listed when the check passes.
    """

    label: str
    check: Callable


class Finding(NamedTuple):
    """The first thing wrong with an answer, as plain data."""

    kind: str
    function: str
    what: str
    text: str
    case: str = ""
    where: str = ""                   # the learner's line that raised, for exceptions
    mistakes: tuple[str, ...] = ()    # causes of the common mistakes that behave the same way
    notes: tuple[str, ...] = ()       # what the declaration's diagnosis reads from a wrong value


class Report(NamedTuple):
    """The result of checking one function: the labels that passed and the first finding (or None)."""

    function: str
    passed: tuple[str, ...]
    finding: Finding | None


class _Stop(Exception):
    """Raised by :class:`Caller` to end a property whose call already went wrong."""

    def __init__(self, problem: Problem, outcome: Outcome):
        super().__init__(problem.text)
        self.problem, self.outcome = problem, outcome


@dataclasses.dataclass(frozen=True, eq=False)
class Graded:
    """Everything about one graded function.

    Attributes
    ----------
    name : str
        The function's name in the notebook ("stack_backward").
    reference : callable
        The reference implementation.
    source : str
        A correct implementation written as a learner would (NumPy and the
        names in ``namespace``); the mistakes are edits of it.
    visible : callable
        ``visible() -> list[Case]``: the cases the learner's check runs.
    outputs : optional
        Names of the outputs (see :func:`stablegrad.checking.comparison.compare`).
    tolerance : Tolerance
    check_dtype : bool
        Require float32 outputs for float32 inputs.
    properties : sequence of Property
        Run after every case agrees with the reference.
    mistakes : sequence of Mistake
    forbid : sequence of callables
        Functions the learner's function must not call (default: the reference).
    substitute : mapping
        Names in the learner's globals bound to the reference during the call
        (so that a function built on an earlier answer is graded on its own).
    namespace : mapping
        Globals the learner-style source and the mistakes run in (``np``,
        ``layers``...), as the notebook's import cell provides them.
    view : callable, optional
        Applied to both outputs before comparing (e.g. a cache record as a dict).
    diagnose : callable, optional
        ``diagnose(case, value) -> str | None``: for a wrong value, a line naming the likely
        cause read from the value itself (which branch of a gradient is missing), for answers
        that match no catalogued mistake.
    new_arrays : bool
        Outputs must not share memory with the inputs.
    quiet_numpy : bool
        False: a NumPy floating-point warning (overflow...) fails the check.
    """

    name: str
    reference: Callable
    source: str
    visible: Callable[[], Sequence[Case]]
    outputs: object = None
    tolerance: Tolerance = Tolerance()
    check_dtype: bool = False
    properties: Sequence[Property] = ()
    mistakes: Sequence[Mistake] = ()
    forbid: Sequence[Callable] | None = None
    substitute: Mapping[str, Callable] = dataclasses.field(default_factory=dict)
    namespace: Mapping[str, object] = dataclasses.field(default_factory=dict)
    view: Callable | None = None
    diagnose: Callable | None = None
    new_arrays: bool = False
    quiet_numpy: bool = True

    # -- the learner-style source and its edits
    def mistake_source(self, mistake: Mistake) -> str:
        """The source of a mistake: the edited learner-style source, or the mistake's own."""
        if mistake.source is not None:
            return mistake.source
        edits = mistake.edit if mistake.edit and isinstance(mistake.edit[0], tuple) else (mistake.edit,)
        text = self.source
        for old, new in edits:
            if text.count(old) != 1:
                raise ValueError(f"{self.name}: the mistake {mistake.cause!r} edits {old!r}, which occurs "
                                 f"{text.count(old)} times in the source (it must occur once)")
            text = text.replace(old, new)
        return text

    def compile(self, source: str) -> Callable:
        """The function ``name`` defined by ``source`` in the declaration's namespace."""
        scope = dict(self.namespace)
        exec(compile(source, f"<{self.name}>", "exec"), scope)  # noqa: S102 - the package's own sources
        return scope[self.name]

    def mistake_functions(self) -> list[tuple[Mistake, Callable]]:
        return [(m, self.compile(self.mistake_source(m))) for m in self.mistakes]

    # -- checking
    def check(self, func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
        """Check ``func``; print a summary, or raise the first finding as its ``CheckFailure`` class.

        Returns None on purpose: nbgrader reads a number displayed by a test
        cell as partial credit, so a check must not end a cell with a value.
        """
        report = run(self, func, cases)
        if report.finding is not None:
            raise KINDS[report.finding.kind](render(report.finding)) from None
        if not quiet:
            print(summary(report))


    def checker(self, doc: str) -> Callable:
        """The notebook's ``check_<name>(func, cases=None, *, quiet=False)``: :meth:`check` under its own name."""
        def check(func: Callable, cases: Sequence[Case] | None = None, *, quiet: bool = False) -> None:
            self.check(func, cases, quiet=quiet)
        check.__name__ = check.__qualname__ = f"check_{self.name}"
        check.__doc__ = doc
        return check

class Caller:
    """Calls one function the way a check does (copied inputs, delegation guard), for properties."""

    def __init__(self, decl: Graded, func: Callable, guarded: bool = True):
        self.decl, self.func, self.guarded = decl, func, guarded

    def outcome(self, *args, names: Sequence[str] = (), **kwargs) -> Outcome:
        forbid = _forbidden(self.decl) if self.guarded else ()
        return run_learner(self.func, args, kwargs, forbid=forbid, names=names,
                           substitute=self.decl.substitute)

    def __call__(self, *args, names: Sequence[str] = (), **kwargs):
        outcome = self.outcome(*args, names=names, **kwargs)
        problem = _call_problem(self.decl, outcome)
        if problem is not None:
            raise _Stop(problem, outcome)
        return outcome.value


# =========================================================================== running a declaration

def _forbidden(decl: Graded) -> list:
    return [decl.reference] if decl.forbid is None else list(decl.forbid)


def _low_precision(case: Case) -> bool:
    return any(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float16)
               for _, a in leaves((case.args, case.kwargs)))


def _call_problem(decl: Graded, outcome: Outcome) -> Problem | None:
    """What is wrong with a call before its value is looked at (delegation, exceptions, side effects)."""
    if outcome.delegated:
        return Problem("delegation", "", f"called the reference implementation {outcome.delegated}. This "
                                         f"exercise asks you to write it yourself (other stablegrad functions "
                                         f"are fine)")
    if outcome.tampered:
        return Problem("delegation", "", "changed the profiler (sys.setprofile) that checks it does not call "
                                         "the reference implementation")
    if outcome.raised is not None:
        if outcome.raised.is_a("builtins.NotImplementedError"):
            return Problem("not_implemented", "", "is not implemented yet: replace `raise "
                                                  "NotImplementedError()` with your code")
        return Problem("raised", "", f"raised {outcome.raised.type}: {outcome.raised.message}")
    if outcome.modified:
        return Problem("modified", "", f"modified its input {outcome.modified[0]} in place")
    return None


def _value_problem(decl: Graded, case: Case, expected, outcome: Outcome) -> Problem | None:
    if outcome.delegated or outcome.tampered:
        return _call_problem(decl, outcome)
    if isinstance(expected, _Raises):
        if outcome.raised is not None and outcome.raised.is_a(expected.qualified):
            return None
        if outcome.raised is None:
            return Problem("value", "", f"returned a result; it should raise {expected.type} "
                                        f"({expected.message})")
        if outcome.raised is not None and outcome.raised.type == expected.type:
            return Problem("raised", "", f"raised a class of its own named {expected.type}, not "
                                         f"{expected.qualified} ({expected.message})")
    problem = _call_problem(decl, outcome)
    if isinstance(expected, _Raises) and problem is not None and problem.kind == "raised":
        return problem._replace(text=f"{problem.text}; it should raise {expected.type} ({expected.message})")
    if problem is not None:
        return problem
    got, want = outcome.value, expected
    if decl.view is not None:
        try:
            got = decl.view(got)
        except Exception as exc:  # noqa: BLE001 - a malformed output is a type problem
            return Problem("type", "output", f"cannot be read: {exc}")
        want = decl.view(want)
    tol = decl.tolerance.resolved(_low_precision(case))
    bad = compare(got, want, spec=decl.outputs, tol=tol, check_dtype=decl.check_dtype)
    if bad is not None:
        return Problem(bad.kind, bad.what, bad.text)
    if decl.new_arrays and outcome.shared:
        return Problem("shared", "", f"returned memory shared with its input ({outcome.shared[0]}); the "
                                     f"contract asks for new arrays")
    if not decl.quiet_numpy and outcome.warnings:
        return Problem("warning", "", f"made NumPy warn: {'; '.join(outcome.warnings)}")
    return None


class _Raises(NamedTuple):
    """The reference raised on this case: the learner's function must raise the same class."""

    type: str
    qualified: str
    message: str


def _expected(decl: Graded, case: Case):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return decl.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception as exc:  # noqa: BLE001 - a case on which the contract is to raise
            cls = type(exc)
            return _Raises(cls.__name__, f"{cls.__module__}.{cls.__qualname__}", str(exc))


def _same_problem(a: Problem, b: Problem, got, wrong, decl: Graded, case: Case) -> bool:
    if (a.kind, a.what) != (b.kind, b.what):
        return False
    if a.kind == "raised":
        return a.text == b.text
    if a.kind in ("value", "type", "shape"):
        tol = decl.tolerance.resolved(_low_precision(case))
        if decl.view is not None:
            try:
                got, wrong = decl.view(got), decl.view(wrong)
            except Exception:  # noqa: BLE001
                return False
        return compare(got, wrong, tol=tol, check_dtype=decl.check_dtype) is None
    return True


def _case_mistakes(decl: Graded, case: Case, expected, outcome: Outcome, problem: Problem) -> tuple[str, ...]:
    matched = []
    for mistake, fn in decl.mistake_functions():
        theirs = run_learner(fn, case.args, case.kwargs, names=case.names, substitute=decl.substitute)
        their_problem = _value_problem(decl, case, expected, theirs)
        if their_problem is not None and _same_problem(problem, their_problem, outcome.value, theirs.value,
                                                       decl, case):
            matched.append(mistake.cause)
    return tuple(matched)


def _notes(decl: Graded, case: Case, outcome: Outcome, problem: Problem) -> tuple[str, ...]:
    if decl.diagnose is None or problem.kind != "value":
        return ()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            note = decl.diagnose(case, outcome.value)
    except Exception:  # noqa: BLE001 - a value too malformed to read has nothing more to say
        return ()
    return (note,) if note else ()


def _run_property(prop: Property, call: Caller) -> Problem | None:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return prop.check(call)
    except _Stop as stop:
        return stop.problem


def _passes(decl: Graded, fn: Callable, cases: Sequence[Case]) -> bool:
    for case in cases:
        outcome = run_learner(fn, case.args, case.kwargs, names=case.names, substitute=decl.substitute)
        if _value_problem(decl, case, _expected(decl, case), outcome) is not None:
            return False
    return True


def _property_mistakes(decl: Graded, prop: Property, problem: Problem, cases: Sequence[Case]) -> tuple[str, ...]:
    """Mistakes that pass the cases, as the learner's function did, and fail the property the same way."""
    matched = []
    for mistake, fn in decl.mistake_functions():
        if not _passes(decl, fn, cases):
            continue
        theirs = _run_property(prop, Caller(decl, fn, guarded=False))
        if theirs is not None and (theirs.kind, theirs.what, theirs.evidence) == \
                (problem.kind, problem.what, problem.evidence) \
                and (problem.kind != "raised" or theirs.text == problem.text):
            matched.append(mistake.cause)
    return tuple(matched)


def run(decl: Graded, func: Callable, cases: Sequence[Case] | None = None) -> Report:
    """Check ``func`` against ``decl`` on ``cases`` (default: the visible ones), then the properties."""
    cases = list(decl.visible() if cases is None else cases)
    passed = []
    for case in cases:
        expected = _expected(decl, case)
        outcome = run_learner(func, case.args, case.kwargs, forbid=_forbidden(decl), names=case.names,
                              substitute=decl.substitute)
        problem = _value_problem(decl, case, expected, outcome)
        if problem is not None:
            return Report(decl.name, tuple(passed), Finding(
                problem.kind, decl.name, problem.what, problem.text, case.label,
                outcome.raised.where if problem.kind == "raised" else "",
                _case_mistakes(decl, case, expected, outcome, problem), _notes(decl, case, outcome, problem)))
        passed.append(case.label)
    for prop in decl.properties:
        problem = _run_property(prop, Caller(decl, func))
        if problem is not None:
            return Report(decl.name, tuple(passed), Finding(
                problem.kind, decl.name, problem.what, problem.text, prop.label, "",
                _property_mistakes(decl, prop, problem, cases)))
        passed.append(prop.label)
    return Report(decl.name, tuple(passed), None)


# =========================================================================== text

def render(finding: Finding) -> str:
    """The message a learner reads for a finding."""
    head = f"{finding.function}: {finding.what} {finding.text}" if finding.what \
        else f"{finding.function} {finding.text}"
    lines = [head.rstrip(".") + "."]
    if finding.case:
        lines.append(f"  case: {finding.case}")
    if finding.where:
        lines.append(f"  in your code, {finding.where}")
    lines += [f"  {note}" for note in finding.notes]
    if finding.mistakes:
        lines.append("  This matches a common mistake: " + "; or ".join(finding.mistakes) + ".")
    return "\n".join(lines)


def summary(report: Report) -> str:
    """The lines printed when every check passes."""
    lines = [f"{report.function}: all {len(report.passed)} checks passed"]
    lines += [f"  ok  {label}" for label in report.passed]
    return "\n".join(lines)
