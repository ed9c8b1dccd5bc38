"""The submission zoo through one real ``course grade`` run (sandboxed, 2 workers in parallel).

One course copy holds every zoo case (``tests/zoo.py``): correct, blank and wrong for ex01 and a
correct submission of every other exercise, the hostile cases on ex01 and the honest victims they aim at. Canary files (mode
0600, root, random content) live outside the course: in ``/var/tmp`` and next to the course in
pytest's scratch. One ``course grade`` run grades everything; the tests then read its summary,
the status file, the gradebook, ``grades.csv``, the feedback pages and the autograded
notebooks, and check that the canaries, the victims' files and the solutions did not change.
Afterwards the same course is graded again (idempotent, keeps a manual grade), and two
submissions alone (same scores as in the zoo).

Calls are cut short here (``c.Execute.timeout = 10``; the real config says 60): every zoo case
that does not hang answers well under a second.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

import grading
import zoo

pytestmark = pytest.mark.xdist_group("zoo")

ROOT = grading.REPO_ROOT
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "solutions").glob("ex*/ex*.ipynb") if p.stem == p.parent.name)
EXTRA_CONFIG = "c.Execute.timeout = 10"
WALL_LIMIT = "60"
ZOO_SECONDS = 240          # the whole run, 2 workers (about 100 s when no case waits for a timeout twice)
CORRECT = "ex01-correct"
HOSTILE_NAMES = [
    "syntax-error", "loop-in-function", "loop-in-cell-ignores-signals", "allocates-50gb", "forks-4x1gb",
    "fills-disk-and-inodes", "prints-200mb", "returns-100mb", "os-exit", "keyboard-interrupt",
    "corrupt-json", "deep-json", "too-large-80mb", "too-many-cells", "test-edited", "test-deleted",
    "cells-duplicated", "test-metadata-flipped", "forges-summary-rows",
    "display-then-raise", "walks-frames-for-expected", "patches-numpy-and-reload", "patches-checking-and-channel",
    "ndarray-subclass-zero-diff",
    "delegates-direct-importlib-sysmodules", "delegates-alias", "delegates-setprofile-toggled",
    "delegates-setprofile-ctypes", "delegates-setprofile-replaced", "delegates-start-new-thread",
    "delegates-pool-started-at-import", "delegates-os-fork", "delegates-multiprocessing-fork",
    "delegates-code-replace", "delegates-getsource-exec", "delegates-package-file-exec",
    "steals-checkout-solutions", "steals-course-solutions", "steals-other-student", "steals-gradebook",
    "steals-root-and-home", "reaches-postgres-sockets", "searches-the-sandbox", "reads-canaries",
    "writes-canaries-gradebook-victim",
    "plants-symlinks",
    "notebook-links-solutions", "notebook-links-victim", "folder-links-solutions", "student-links-victim",
    "timestamp-links-canary",
    zoo.VICTIM_READ, zoo.VICTIM_WRITE,
]


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


def file_state(path: Path) -> tuple:
    info = os.lstat(path)
    return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_mtime_ns


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


class ZooRun:
    def __init__(self, base: Path):
        # Canaries outside the course: root-only files whose content an attack would have to read.
        self.canary_dir = Path(f"/var/tmp/coursegrade-canary-{secrets.token_hex(6)}")
        self.canary_dir.mkdir(mode=0o700)
        self.canaries = (self.canary_dir / "canary.txt", base / "canary-outside-course.txt")
        self.secrets = {}
        for path in self.canaries:
            token = f"canary-{secrets.token_hex(24)}"
            path.write_text(token)
            os.chmod(path, 0o600)
            self.secrets[path] = token
        self.canary_before = {p: file_state(p) for p in self.canaries}
        self.course = grading.CourseCopy(directory=base / "course", extra_config=EXTRA_CONFIG)
        self.cases = zoo.build(self.course, ASSIGNMENTS, canaries=self.canaries)
        self.submitted_before = self.submitted_digests()
        self.solutions_before = tree_digest(self.course.path / "solutions")
        start = time.monotonic()
        self.proc = run_course(self.course, "grade", "--jobs", "2", "--wall-limit", WALL_LIMIT)
        self.seconds = time.monotonic() - start
        self.rows = summary_rows(self.proc.stdout)
        status_file = self.course.path / "autograded" / ".coursegrade-status.json"
        self.status = json.loads(status_file.read_text()) if status_file.exists() else {}
        self.scores = {a: self.course.scores(a) for a in ASSIGNMENTS}

    def submitted_digests(self) -> dict[str, str]:
        """The honest students' submitted files (the victims first)."""
        out = {}
        for case in self.cases:
            if case.student in zoo.VICTIMS or case.student.endswith("-correct"):
                folder = self.course.path / "submitted" / case.student / case.assignment
                out.update({f"{case.student}/{k}": v for k, v in tree_digest(folder).items()})
        return out

    def case(self, student: str) -> zoo.Case:
        return next(c for c in self.cases if c.student == student)

    def total(self, case: zoo.Case) -> float | None:
        cells = self.scores[case.assignment].get(case.student)
        return None if cells is None else sum(cells.values())

    def seconds_of(self, case: zoo.Case) -> float | None:
        from coursegrade.gradebook import status_key

        return self.status.get(status_key(case.student, case.assignment), {}).get("seconds")

    def explain(self) -> str:
        return f"exit {self.proc.returncode}\n{self.proc.stdout[-4000:]}\n{self.proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    zoo_run = ZooRun(tmp_path_factory.mktemp("zoo"))
    yield zoo_run
    shutil.rmtree(zoo_run.canary_dir, ignore_errors=True)


def _case_names() -> list[str]:
    names = [f"{a.split('_')[0]}-{kind}" for a in ASSIGNMENTS
             for kind in (("correct", "blank", "wrong") if a == zoo.HOSTILE else ("correct",))]
    return names + HOSTILE_NAMES


def test_the_run_completes(run):
    assert run.proc.returncode == 0, run.explain()
    assert sorted(c.student for c in run.cases) == sorted(_case_names())
    assert {(c.student, c.assignment) for c in run.cases} == set(run.rows), run.explain()
    assert "grading [" in run.proc.stderr  # the progress bar
    print(f"zoo: {len(run.cases)} submissions graded in {run.seconds:.0f} s")
    assert run.seconds < ZOO_SECONDS, f"the zoo took {run.seconds:.0f} s"


@pytest.mark.parametrize("student", _case_names())
def test_case_gets_its_score_and_reason(run, student):
    case = run.case(student)
    if case.needs_cgroup and "no cgroups here" in run.proc.stderr:
        pytest.skip("no cgroup on this host: the sandbox's memory is limited per process only (README)")
    got = run.total(case)
    score, why = run.rows.get((case.student, case.assignment), ("?", "?"))
    assert got == case.score, f"{student}: scored {got}, expected {case.score}; summary says {score} {why!r}"
    assert score.split()[0] == f"{case.score:g}/{score.split('/')[1].split()[0]}"
    assert zoo.matches(case.reason, why), f"{student}: the summary says {why!r}; expected /{case.reason}/"
    if case.seconds is not None:
        took = run.seconds_of(case)
        assert took is not None and took < case.seconds, f"{student}: graded in {took} s (limit {case.seconds})"


def test_canaries_outside_the_course_are_untouched(run):
    for path in run.canaries:
        assert file_state(path) == run.canary_before[path], f"{path} changed (content, mode, owner or mtime)"
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600 and os.lstat(path).st_uid == 0
    leaked = []
    for path in run.course.path.rglob("*"):
        if path.is_file() and not path.is_symlink() and "submitted" not in path.relative_to(run.course.path).parts:
            data = path.read_bytes()
            leaked += [str(path) for token in run.secrets.values() if token.encode() in data]
    assert not leaked, f"canary content copied into the course: {leaked}"


def test_victims_keep_full_marks_and_their_files(run):
    for student in zoo.VICTIMS:
        assert run.total(run.case(student)) == 10.0, student
        assert run.rows[(student, zoo.HOSTILE)][0] == "10/10"
    assert run.submitted_digests() == run.submitted_before
    assert tree_digest(run.course.path / "solutions") == run.solutions_before


def test_outputs_are_regular_files_of_the_grader(run):
    for folder in ("autograded", "feedback"):
        for path in (run.course.path / folder).rglob("*"):
            assert not path.is_symlink(), path
            assert path.is_dir() or path.is_file(), path
    for case in run.cases:   # refused submissions leave nothing behind
        if isinstance(case.notebook, (zoo.Link, bytes)):
            assert not zoo.autograded_text(run.course.path, case), case.student


def test_the_summary_has_no_escapes_and_no_forged_rows(run):
    out = run.proc.stdout
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out and "\x07" not in out
    assert not [line for line in out.splitlines() if line.lstrip().startswith(zoo.FORGED)], out[-3000:]
    table = [line for line in out.splitlines() if re.match(r"\S+\s{2,}ex\d\d_\w+\s{2,}[\d.]+/", line)]
    assert len(table) == len(run.cases)


def test_hidden_tests_never_reach_a_student(run):
    for assignment in ASSIGNMENTS:
        hidden = grading.hidden_test_lines(run.course.source(assignment))
        assert hidden, assignment
        feedback = run.course.feedback(assignment, generate=False)
        own = {c.student: zoo.notebook_text(c) for c in run.cases if c.assignment == assignment}
        assert set(feedback) <= set(own)
        graded = {c.student for c in run.cases if c.assignment == assignment and run.total(c)}
        assert not graded - feedback.keys(), f"graded submissions without feedback: {graded - feedback.keys()}"
        for case in (c for c in run.cases if c.assignment == assignment):
            texts = [grading.visible_text(feedback.get(case.student, "")), zoo.autograded_text(run.course.path, case)]
            for text in texts:
                leaked = [line for line in hidden if line in text and line not in own[case.student]]
                assert not leaked, f"{case.student} ({assignment}) sees hidden tests: {leaked[:2]}"


def test_grades_csv_matches_the_gradebook(run):
    with open(run.course.path / "grades.csv", newline="") as f:
        rows = {(r["student_id"], r["assignment"]): float(r["raw_score"]) for r in csv.DictReader(f)}
    for case in run.cases:
        assert rows[(case.student, case.assignment)] == run.total(case), case.student


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
