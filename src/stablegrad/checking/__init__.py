"""Check a learner's function against the reference and say precisely what is wrong.

The exercises' test cells call ``check_<function>`` helpers, one per graded
function, from one module per exercise topic (:mod:`.chain_rule`,
:mod:`.saturation`, :mod:`.initialization`, :mod:`.batchnorm`,
:mod:`.clipping`). Each helper is one line over a declaration run by one
engine:

* :mod:`.engine`: :class:`Graded` (a graded function declared as data:
  reference, learner-style source, cases, outputs, tolerance, properties,
  common mistakes as edits of the source), :func:`run` (a structured
  :class:`Report`) and :func:`render` (the text);
* :mod:`.guard`: the learner's side, one call recorded as an
  :class:`Outcome` (value or exception, delegation to the reference, inputs
  changed, memory shared, NumPy warnings, random state used);
* :mod:`.compare`: outputs against the expected ones, with per-entry
  tolerances and a dtype-aware floor;
* :mod:`.encoding`: inputs and outputs as plain data, for checks whose
  learner runs in another process;
* :mod:`.pristine`: a hidden-test cell's checker, with whatever a submission
  patched put back, and the exception classes unchanged;
* :mod:`.salt`: hidden-test inputs drawn with a grading run's secret salt;
* :mod:`.records`: callables that cases pass (test functions, initializers) as data;
* :mod:`.errors`: the ``CheckFailure`` class of each kind of finding.

A failing check raises, e.g.::

    WrongValueError: stack_backward: dx (output[0]) is off: error 1.23351 at index (1, 4)
    (yours 1.28262, expected 0.0491126, 25.1159 relative); tolerance 1e-06 of each entry.
      case: tanh, 2 layers of widths (5, 4, 3), N=4, weight scale 1
      This matches a common mistake: the activation derivative is left out.
"""

from __future__ import annotations

from stablegrad.checking.comparison import Out, Tolerance, compare
from stablegrad.checking.engine import Case, Finding, Graded, Mistake, Problem, Property, Report, render, run
from stablegrad.checking.errors import (
    KINDS, CheckFailure, DelegationError, InputModifiedError, LearnerError, NotImplementedYetError,
    NumericalWarningError, SharedMemoryError, StatisticalTestError, WrongShapeError, WrongTypeError,
    WrongValueError,
)
from stablegrad.checking.pristine import fresh, snapshot
from stablegrad.checking.salt import hidden_rng
from stablegrad.checking.guard import Outcome, functions_named, run_learner

__all__ = [
    "CheckFailure", "NotImplementedYetError", "LearnerError", "WrongTypeError", "WrongShapeError",
    "WrongValueError", "InputModifiedError", "SharedMemoryError", "DelegationError", "NumericalWarningError",
    "StatisticalTestError", "KINDS",
    "Graded", "Case", "Mistake", "Property", "Problem", "Finding", "Report", "Outcome", "Out", "Tolerance",
    "run", "render", "compare", "run_learner", "functions_named", "fresh", "hidden_rng",
]

snapshot()  # the first import, in a notebook's import cell, runs before any answer
