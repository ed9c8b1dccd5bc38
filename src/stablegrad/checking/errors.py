"""What can be wrong with a learner's answer: one exception class per kind of failure.

A check produces a :class:`stablegrad.checking.engine.Finding` (plain data: a
kind name, the output, the case, the text); the notebook sees it raised as the
class registered here for its kind, so ``except WrongShapeError`` works and the
class names in nbgrader's feedback say what went wrong. Every class is an
``AssertionError``: nbgrader counts a failing test cell the same either way.
"""

from __future__ import annotations

__all__ = [
    "CheckFailure", "NotImplementedYetError", "LearnerError", "WrongTypeError", "WrongShapeError",
    "WrongValueError", "InputModifiedError", "SharedMemoryError", "DelegationError",
    "NumericalWarningError", "StatisticalTestError", "KINDS",
]


class CheckFailure(AssertionError):
    """A learner's function gave a wrong answer; the message says what and where."""


class NotImplementedYetError(CheckFailure):
    """The function still raises ``NotImplementedError``."""


class LearnerError(CheckFailure):
    """The learner's function raised an exception on a valid input (or the wrong one on an invalid input)."""


class WrongTypeError(CheckFailure):
    """An output has the wrong type, dtype or number of items."""


class WrongShapeError(CheckFailure):
    """An output array has the wrong shape."""


class WrongValueError(CheckFailure):
    """An output has the right shape but wrong (or non-finite) values, or breaks a stated property."""


class InputModifiedError(CheckFailure):
    """The learner's function changed one of its input arrays in place."""


class SharedMemoryError(CheckFailure):
    """An output shares memory with an input where the contract asks for a new array."""


class DelegationError(CheckFailure):
    """The learner's function called the reference implementation it should replace."""


class NumericalWarningError(CheckFailure):
    """The learner's function made NumPy warn (overflow, invalid value, division by zero)."""


class StatisticalTestError(CheckFailure):
    """A random output (or a closed form against a simulation) fails a test far beyond sampling noise."""


#: A finding's ``kind`` -> the class it is raised as. Kinds are plain strings so that a finding
#: can cross a process boundary as data.
KINDS: dict[str, type[CheckFailure]] = {
    "not_implemented": NotImplementedYetError,
    "raised": LearnerError,
    "type": WrongTypeError,
    "shape": WrongShapeError,
    "value": WrongValueError,
    "modified": InputModifiedError,
    "shared": SharedMemoryError,
    "delegation": DelegationError,
    "warning": NumericalWarningError,
    "statistics": StatisticalTestError,
}
