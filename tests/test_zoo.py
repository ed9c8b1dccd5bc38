"""The submission zoo through one real ``course grade`` run (sandboxed, 2 kernels in parallel).

One course copy holds every zoo case (``tests/zoo.py``): correct, blank and wrong for every
exercise, and the hostile cases on ex01. One ``course grade`` run grades them all; the tests
then read its summary, the status file, the gradebook, ``grades.csv`` and the autograded
notebooks. Afterwards the same course is graded again (idempotent, keeps a manual grade), and
the correct submission alone (same score as in the zoo).

Cell timeouts are short here (10 s; the real config says 60): every zoo case that does not hang
finishes its cells well under a second.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

import grading
import zoo

pytestmark = pytest.mark.xdist_group("zoo")

ROOT = grading.REPO_ROOT
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "solutions").glob("ex*/ex*.ipynb") if p.stem == p.parent.name)
EXTRA_CONFIG = "c.Execute.timeout = 10\nc.GuardedExecute.interrupt_grace = 3.0"
WALL_LIMIT = "45"
CORRECT = "ex01-correct"


course_env, run_course = grading.course_env, grading.run_course


def summary_rows(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """{(student, assignment): (score, why)} from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=3)
        if len(parts) >= 3 and re.fullmatch(r"[\d.]+/[\d.]+( \(manual\))?", parts[2]):
            rows[(parts[0], parts[1])] = (parts[2], parts[3] if len(parts) > 3 else "")
    return rows


def gradebook_snapshot(course: grading.CourseCopy) -> dict:
    """Every grade row: {(student, assignment, cell): (auto, manual)}; also checks one row per cell."""
    from nbgrader.api import Gradebook

    snap = {}
    with Gradebook(f"sqlite:///{course.path / 'gradebook.db'}", "taming-unstable-gradients") as gb:
        for assignment in gb.assignments:
            for sub in gb.assignment_submissions(assignment.name):
                for nb in sub.notebooks:
                    names = [g.name for g in nb.grades]
                    assert len(names) == len(set(names)) == len(nb.notebook.grade_cells), (sub.student.id, names)
                    for g in nb.grades:
                        snap[(sub.student.id, assignment.name, g.name)] = (g.auto_score, g.manual_score)
    return snap


class ZooRun:
    def __init__(self, base: Path):
        self.course = grading.CourseCopy(directory=base / "course", extra_config=EXTRA_CONFIG)
        self.cases = zoo.build(self.course, ASSIGNMENTS)
        self.correct_before = hashlib.sha256(
            (self.course.path / "submitted" / CORRECT / zoo.HOSTILE / f"{zoo.HOSTILE}.ipynb").read_bytes()).hexdigest()
        start = time.monotonic()
        self.proc = run_course(self.course, "grade", "--jobs", "2", "--wall-limit", WALL_LIMIT)
        self.seconds = time.monotonic() - start
        self.rows = summary_rows(self.proc.stdout)
        status_file = self.course.path / "autograded" / ".coursegrade-status.json"
        self.status = json.loads(status_file.read_text()) if status_file.exists() else {}
        self.scores = {a: self.course.scores(a) for a in ASSIGNMENTS}

    def total(self, case: zoo.Case) -> float | None:
        cells = self.scores[case.assignment].get(case.student)
        return None if cells is None else sum(cells.values())

    def explain(self) -> str:
        return f"exit {self.proc.returncode}\n{self.proc.stdout[-4000:]}\n{self.proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> ZooRun:
    return ZooRun(tmp_path_factory.mktemp("zoo"))




def _case_names() -> list[str]:
    names = [f"{a.split('_')[0]}-{kind}" for a in ASSIGNMENTS for kind in ("correct", "blank", "wrong")]
    return names + ["syntax-error", "loop-in-function", "loop-ignores-sigint", "allocates-50gb", "prints-200mb",
                    "os-exit", "corrupt-json", "test-edited", "test-deleted", "cells-duplicated",
                    "delegates-direct-importlib-sysmodules", "delegates-alias", "patches-numpy-testing",
                    "patches-checking", "patches-traceback-display", "writes-gradebook", "reads-solutions",
                    "edits-other-student"]


def test_the_run_completes(run):
    assert run.proc.returncode == 0, run.explain()
    assert {c.student for c in run.cases} == set(_case_names())
    assert {(c.student, c.assignment) for c in run.cases} == set(run.rows), run.explain()
    assert "grading [" in run.proc.stderr  # the progress bar
    print(f"zoo: {len(run.cases)} submissions graded in {run.seconds:.0f} s")


@pytest.mark.parametrize("student", _case_names())
def test_case_gets_its_score_and_reason(run, student):
    case = next(c for c in run.cases if c.student == student)
    got = run.total(case)
    score, why = run.rows.get((case.student, case.assignment), ("?", "?"))
    assert got == case.score, f"{student}: scored {got}, expected {case.score}; summary says {score} {why!r}"
    assert score.split()[0] == f"{case.score:g}/{score.split('/')[1].split()[0]}"
    assert zoo.matches(case.reason, why), f"{student}: the summary says {why!r}; expected /{case.reason}/"
    if case.check is not None:
        case.check(run.course.path, zoo.autograded_text(run.course.path, case))


@pytest.mark.parametrize("student", ["writes-gradebook", "reads-solutions", "edits-other-student"])
def test_attacks_ran_and_failed(run, student):
    case = next(c for c in run.cases if c.student == student)
    text = zoo.autograded_outputs(run.course.path, case)
    assert zoo.RAN in text, "the attack code did not run: the test proves nothing"
    assert "WROTE" not in text and "LEAK" not in text, text[:3000]
    assert text.count("blocked:") == 3


def test_hidden_tests_never_reach_a_student(run):
    hidden = grading.hidden_test_lines(run.course.source(zoo.HOSTILE))
    feedback = run.course.feedback(zoo.HOSTILE, generate=False)
    assert "reads-solutions" in feedback
    notebooks = {c.student: c.notebook for c in run.cases if c.assignment == zoo.HOSTILE}
    for student, page in feedback.items():
        text = grading.visible_text(page)
        own = notebooks[student] if isinstance(notebooks[student], bytes) else nbformat.writes(notebooks[student])
        leaked = [line for line in hidden if line in text and line not in str(own)]
        assert not leaked, f"feedback for {student} shows hidden tests: {leaked[:2]}"


def test_no_other_student_is_touched(run):
    submitted = run.course.path / "submitted" / CORRECT / zoo.HOSTILE / f"{zoo.HOSTILE}.ipynb"
    assert hashlib.sha256(submitted.read_bytes()).hexdigest() == run.correct_before
    assert run.total(next(c for c in run.cases if c.student == CORRECT)) == 10.0


def test_grades_csv_matches_the_gradebook(run):
    with open(run.course.path / "grades.csv", newline="") as f:
        rows = {(r["student_id"], r["assignment"]): float(r["raw_score"]) for r in csv.DictReader(f)}
    for case in run.cases:
        assert rows[(case.student, case.assignment)] == case.score, case.student


def test_regrading_is_idempotent_and_keeps_manual_grades(run):
    from nbgrader.api import Gradebook

    course = run.course
    url = f"sqlite:///{course.path / 'gradebook.db'}"
    with Gradebook(url, "taming-unstable-gradients") as gb:  # the instructor gives 2 of 4 points by hand
        grade = gb.find_grade("test_stack_backward", zoo.HOSTILE, zoo.HOSTILE, "ex01-wrong")
        grade.manual_score = 2.0
        gb.db.commit()
    before = gradebook_snapshot(course)
    again = run_course(course, "grade", "--jobs", "2", "--wall-limit", WALL_LIMIT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"0 to grade, {len(run.cases)} already graded" in again.stderr
    assert gradebook_snapshot(course) == before
    assert summary_rows(again.stdout)[("ex01-wrong", zoo.HOSTILE)][0] == "8/10 (manual)"
    # Forced re-grade of two students, alone: the same scores, and the manual grade survives.
    forced = run_course(course, "grade", "--force", "--student", CORRECT, "--student", "ex01-wrong",
                        "--wall-limit", WALL_LIMIT)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "2 to grade" in forced.stderr
    after = gradebook_snapshot(course)
    assert after == before
    rows = summary_rows(forced.stdout)
    assert rows[(CORRECT, zoo.HOSTILE)][0] == "10/10"
    assert rows[("ex01-wrong", zoo.HOSTILE)][0] == "8/10 (manual)"


def test_grade_refuses_without_a_sandbox(run, tmp_path):
    env = course_env(run.course)
    env["PATH"] = str(Path(sys.executable).parent)  # no bwrap, setpriv, prlimit on PATH
    proc = run_course(run.course, "grade", env=env)
    assert proc.returncode == 3, proc.stderr
    assert "--no-sandbox" in proc.stderr and "bwrap" in proc.stderr
