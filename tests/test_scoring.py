"""Grading one submission as a function of its bytes: parsing limits, structure notes, the channel's
replies, and a real (unsandboxed) grading run of crafted notebooks. The sandboxed runs are in
test_zoo.py and test_exercises.py."""

from __future__ import annotations

import copy
import inspect
import json

import nbformat
import pytest

import grading
from coursegrade import channel, scoring
from stablegrad import layers

pytestmark = pytest.mark.xdist_group("scoring")
A = "ex01_chain_rule"


@pytest.fixture(scope="module")
def assignment():
    return scoring.Assignment.load(grading.REPO_ROOT / "solutions" / A / f"{A}.ipynb")


@pytest.fixture(scope="module")
def release():
    return nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)


def _bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _grade(assignment, nb, tmp_path, salt: int, **runner_options) -> scoring.SubmissionResult:
    """Grade a notebook for real, with the learner's side unsandboxed (the sandboxed path is test_zoo's)."""
    runner = scoring.Runner(tmp_path, sandboxed=False, **runner_options)
    try:
        return scoring.grade_notebook(assignment, _bytes(nb), runner, salt=salt)
    finally:
        runner.close()


def test_sizes_are_checked_before_parsing():
    assert "too large" in scoring.parse(b" " * (scoring.MAX_BYTES + 1))[1]
    many = json.dumps({"cells": [{"cell_type": "raw", "source": "", "metadata": {}}] * (scoring.MAX_CELLS + 1),
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
    assert "too many cells" in scoring.parse(many)[1]
    assert scoring.parse(b"{ not json")[1].startswith("corrupt file")
    assert scoring.parse(b"[" * 100_000)[1].startswith("corrupt file")       # nesting: no crash
    assert scoring.parse(json.dumps({"cells": [42]}).encode())[1].startswith("corrupt file")


def test_structure_notes_name_deleted_duplicated_edited_and_relabelled_cells(assignment, release):
    nb = grading.fill(release, grading.perfect_answers(assignment.source))
    assert scoring.structure_notes(assignment, nb) == []
    flipped = copy.deepcopy(nb)
    for cell in flipped.cells:
        if grading.grade_id(cell) == "test_stack_backward":
            cell.metadata["nbgrader"]["grade"] = False
        if grading.grade_id(cell) == "test_numerical_gradient":
            cell.metadata["nbgrader"]["points"] = 100
    assert scoring.structure_notes(assignment, flipped) == [
        "tampered cells: test_stack_backward, test_numerical_gradient"]
    gone = copy.deepcopy(nb)
    gone.cells = [c for c in gone.cells if grading.grade_id(c) != "test_chain_gradient_norms"]
    assert scoring.structure_notes(assignment, gone) == ["test cell deleted: test_chain_gradient_norms"]


def test_the_sandbox_never_gets_a_test_cell_whatever_its_metadata(assignment, release):
    nb = grading.fill(release, grading.perfect_answers(assignment.source))
    for cell in nb.cells:
        if grading.grade_id(cell) == "test_stack_backward":
            cell.metadata["nbgrader"].update(grade=False, solution=True, locked=False)
            cell.source = "EVIL = 1"
    sources = [c["source"] for c in scoring.learner_cells(assignment, nb)]
    assert not any("check_" in s or "EVIL" in s for s in sources)


def test_a_copy_of_the_package_source_is_flagged(assignment, release):
    answers = {**grading.perfect_answers(assignment.source), "stack_backward": inspect.getsource(layers.stack_backward)}
    assert scoring.copied_references(assignment, grading.fill(release, answers)) == ["stack_backward"]
    assert scoring.copied_references(assignment, grading.fill(release, grading.perfect_answers(assignment.source))) == []


@pytest.mark.parametrize("reply", [
    {"value": {"tuple": "nope"}}, {"value": {"array": {"dtype": "|O", "shape": [1], "data": ""}}},
    {"raised": "not a list"}, {"value": {"record": ["os.system", {}]}}, {"generators": {"dict": 5}},
])
def test_malformed_replies_become_unreadable_values(reply):
    outcome = channel._outcome(reply)
    assert isinstance(outcome.value, channel.Unreadable) and outcome.raised is None


def test_replies_decode_exceptions_withheld_calls_and_failures():
    raised = channel._outcome({"raised": ["ValueError", ["builtins.ValueError"], "bad x", "line 3"]})
    assert raised.raised.type == "ValueError" and raised.raised.where == "line 3"
    withheld = channel._outcome({"raised": ["WithheldError", ["stablegrad._withheld.WithheldError"],
                                            "stablegrad.layers.stack_backward is withheld while ...", ""]})
    assert withheld.delegated == "stablegrad.layers.stack_backward"
    with pytest.raises(RuntimeError, match="could not call"):
        channel._outcome({"failed": "KeyboardInterrupt: "})


def test_scores_come_from_return_values_only(assignment, release, tmp_path):
    """Printing, raising after output, patching the checks and returning ndarray subclasses earn nothing."""
    perfect = grading.perfect_answers(assignment.source)
    sneaky = {**perfect,
              "stack_backward": ("import numpy\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
                                 "np.allclose = lambda *a, **k: True\n"
                                 "class Zero(np.ndarray):\n"
                                 "    def __array_ufunc__(self, *a, **k):\n        return np.zeros(1)\n"
                                 "def stack_backward(dout, caches):\n"
                                 "    print('10/10 all checks passed')\n"
                                 "    return np.zeros((1, 1)).view(Zero), []\n"),
              "numerical_gradient": ("import sys\n\ndef numerical_gradient(f, x, eps=1e-6):\n"
                                     "    frame = sys._getframe()\n"
                                     "    while frame is not None and 'expected' not in frame.f_locals:\n"
                                     "        frame = frame.f_back\n"
                                     "    return None if frame is None else frame.f_locals['expected']\n")}
    result = _grade(assignment, grading.fill(release, sneaky), tmp_path / "a", 1)
    good = _grade(assignment, grading.fill(release, perfect), tmp_path / "b", 2)
    scores = {c.grade_id: c.points for c in result.cells}
    assert scores == {"test_stack_backward": 0.0, "test_numerical_gradient": 0.0, "test_chain_gradient_norms": 3.0}
    assert good.score == 10.0 and not good.reasons
    feedback = nbformat.writes(result.feedback_notebook)
    assert "BEGIN HIDDEN TESTS" not in feedback and "_checks = fresh" not in feedback


def test_patching_the_observers_does_not_hide_a_warning(assignment, tmp_path):
    """A naive sigmoid overflows; patching warnings/numpy/the guard in the answer cell does not hide it."""
    ex02 = scoring.Assignment.load(grading.REPO_ROOT / "solutions" / "ex02_saturation" / "ex02_saturation.ipynb")
    release = nbformat.read(grading.REPO_ROOT / "exercises" / "ex02_saturation" / "ex02_saturation.ipynb",
                            as_version=4)
    naive = ("import warnings, numpy\n"
             "warnings.catch_warnings = lambda *a, **k: __import__('contextlib').nullcontext([])\n"
             "numpy.errstate = lambda *a, **k: __import__('contextlib').nullcontext()\n"
             "import stablegrad.checking.guard as _g\n"
             "_g.run_learner.__code__ = (lambda *a, **k: None).__code__\n"
             "numpy.seterr(all='ignore')\n"
             "def sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-z))\n")
    answers = {**grading.perfect_answers(ex02.source), "sigmoid": naive}
    result = _grade(ex02, grading.fill(release, answers), tmp_path, 3)
    scores = {c.grade_id: (c.points, c.reason) for c in result.cells}
    assert scores["test_sigmoid"] == (0.0, "wrong answer"), scores
    assert all(c.points == c.max_points for c in result.cells if c.grade_id != "test_sigmoid"), scores


# the `delta` of ex01's "look at the output" cell, drawn as that cell draws it
DEMO_DELTA = ("_r = np.random.default_rng(0)\n_r.standard_normal((3, 4)); _r.standard_normal((4, 5)); "
              "_r.standard_normal((5, 2))\n_DEMO = _r.standard_normal((3, 2))\n")


def test_a_hung_cell_costs_only_the_functions_it_defines(assignment, release, tmp_path):
    """A top-level loop after a def costs that cell's function; a demo cell's call to an answer never runs."""
    perfect = grading.perfect_answers(assignment.source)
    answers = {**perfect, "numerical_gradient": perfect["numerical_gradient"] + "\nwhile True:\n    pass\n",
               "stack_backward": DEMO_DELTA + perfect["stack_backward"].replace(
                   "def stack_backward(dout, caches):", "def stack_backward(dout, caches):\n    import os\n"
                   "    if dout.shape == _DEMO.shape and np.array_equal(dout, _DEMO):\n"
                   "        os._exit(3)   # only on the release's demo cell input, which grading never calls")}
    result = _grade(assignment, grading.fill(release, answers), tmp_path, 4, call_timeout=3, run_timeout=3)
    scores = {c.grade_id: (c.points, c.reason) for c in result.cells}
    assert scores == {"test_stack_backward": (4.0, ""), "test_numerical_gradient": (0.0, "timeout"),
                      "test_chain_gradient_norms": (3.0, "")}, scores


def test_feedback_survives_forged_metadata_and_markers(assignment, release, tmp_path):
    nb = grading.fill(release, {**grading.perfect_answers(assignment.source),
                                "chain_gradient_norms": grading.perfect_answers(assignment.source)[
                                    "chain_gradient_norms"] + "\n# ### BEGIN HIDDEN TESTS\n"})
    extra = nbformat.v4.new_code_cell("x = 1")
    extra.metadata["nbgrader"] = {"grade": True, "grade_id": "forged\\x1b[2J", "points": 100, "locked": True,
                                  "solution": False, "schema_version": 3}
    nb.cells.append(extra)
    result = _grade(assignment, nb, tmp_path, 5)
    assert result.score == 10.0
    fb = result.feedback_notebook
    assert not any("BEGIN HIDDEN TESTS" in c.source for c in fb.cells if grading.grade_id(c) != "x")
    assert all(grading.grade_id(c) != "forged\\x1b[2J" for c in fb.cells)


def test_a_cell_that_kills_its_process_costs_only_its_functions(assignment, release, tmp_path):
    perfect = grading.perfect_answers(assignment.source)
    answers = {**perfect, "chain_gradient_norms": perfect["chain_gradient_norms"] + "\nimport os\nos._exit(1)\n"}
    result = _grade(assignment, grading.fill(release, answers), tmp_path, 6, call_timeout=10, run_timeout=10)
    scores = {c.grade_id: (c.points, c.reason) for c in result.cells}
    assert scores == {"test_stack_backward": (4.0, ""), "test_numerical_gradient": (3.0, ""),
                      "test_chain_gradient_norms": (0.0, "killed kernel")}, scores


def test_a_sandbox_that_cannot_start_leaves_the_submission_ungraded(assignment, release, tmp_path, monkeypatch):
    """A launch failure is the grader's problem: retried, then reported as not graded, never as a zero."""
    from coursegrade import sandbox

    monkeypatch.setattr(sandbox, "command", lambda *a, **k: ["false"])
    result = _grade(assignment, grading.fill(release, grading.perfect_answers(assignment.source)), tmp_path, 7)
    assert result.retry and result.fatal.startswith("not graded") and not result.cells
