"""Run the real nbgrader pipeline in a scratch course directory.

The grading tests and ``tests/benchmarks/course_speed.py`` use this module to
release an assignment from ``solutions/``, submit notebooks as students,
autograde them in one ``nbgrader autograde`` run, render feedback and read the
scores back from the gradebook (never from ``nbgrader validate``'s exit code,
which is 0 even when validation fails).

A course copy holds the repository's ``nbgrader_config.py`` and ``solutions/``;
the config derives ``CourseDirectory.root`` from its own location, so
everything nbgrader writes (``exercises/``, ``submitted/``, ``autograded/``,
``feedback/``, ``gradebook.db``) stays in the scratch directory.

:meth:`CourseCopy.nbgrader` runs one ``nbgrader`` CLI command; :func:`run_course`
runs the course's own ``course`` command (``course grade``: the real grading path).

Exercises plug in by adding ``solutions/<id>/<id>.ipynb`` and
``tests/mutants/<id>.py`` (a ``MUTANTS`` list of :class:`Mutant`).
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


# --------------------------------------------------------------------------- notebooks

def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def answer_cells(nb) -> list:
    """Cells a learner writes in (``solution: true``), in notebook order."""
    return [c for c in nb.cells if nbgrader_meta(c).get("solution")]


def test_cells(nb) -> list:
    """Autograded test cells (``grade: true``, not a solution), in notebook order."""
    return [c for c in nb.cells
            if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]


def graded_by(nb) -> dict[str, str]:
    """Map each answer cell's grade_id to the first test cell after it (the cell that grades it)."""
    mapping, pending = {}, []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            pending.append(meta["grade_id"])
        elif meta.get("grade"):
            for answer in pending:
                mapping[answer] = meta["grade_id"]
            pending = []
    return mapping


def max_points(nb) -> dict[str, float]:
    """Points of each test cell."""
    return {grade_id(c): float(nbgrader_meta(c)["points"]) for c in test_cells(nb)}


def strip_solution_markers(source: str) -> str:
    """An answer cell as a perfect learner would leave it: the solution, without the markers."""
    return "\n".join(line for line in source.split("\n")
                     if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def hidden_test_lines(nb, min_length: int = 12) -> list[str]:
    """Distinctive lines (stripped, at least ``min_length`` characters) of every hidden-test region."""
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.split("\n"):
            text = line.strip()
            if BEGIN_HIDDEN in text:
                inside = True
            elif END_HIDDEN in text:
                inside = False
            elif inside and len(text) >= min_length:
                lines.append(text)
    return lines


def solution_lines(nb, min_length: int = 12) -> list[str]:
    """Distinctive lines (stripped, at least ``min_length`` characters) of every solution region."""
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.split("\n"):
            text = line.strip()
            if text == BEGIN_SOLUTION:
                inside = True
            elif text == END_SOLUTION:
                inside = False
            elif inside and len(text) >= min_length:
                lines.append(text)
    return lines


def signature(nb) -> dict:
    """What a release is made of: kernel, and per cell its type, source and nbgrader metadata."""
    return {
        "kernelspec": nb.metadata.get("kernelspec", {}).get("name"),
        "cells": [(c.cell_type, c.source, nbgrader_meta(c)) for c in nb.cells],
    }


# --------------------------------------------------------------------------- submissions

class Mutant(NamedTuple):
    """A wrong submission for one answer cell.

    Parameters
    ----------
    cell : str
        grade_id of the answer cell it replaces.
    name : str
        What is wrong, in a learner's words (the pytest id).
    source : str
        The full source of the answer cell.
    edit : callable, optional
        ``edit(nb)`` changes other cells of the notebook (e.g. deletes a test cell).
    caught_by : str
        "visible" or "hidden": which part of the test cell should catch it (documentation).
    autograde : bool
        Grade it with a real ``nbgrader autograde`` run (tampering, delegation, anything that
        touches the kernel or the notebook). Catalogue mistakes are plain wrong answers: their
        test cells are executed against them by :func:`run_cells`, which proves the same thing
        (the real test cell fails, the others pass) without a kernel per submission.
    """

    cell: str
    name: str
    source: str
    edit: Callable | None = None
    caught_by: str = "visible"
    autograde: bool = True


def from_mistakes(cell: str, decl) -> list[Mutant]:
    """One :class:`Mutant` per common mistake of a ``checking.Graded`` declaration, defining ``cell``'s function.

    Each mistake's source is the declaration's learner-style source with the mistake's edit: exactly the
    text the diagnosis compiles, so the catalogue, the mutants and the diagnosis read the same code.
    """
    return [Mutant(cell, m.cause, decl.mistake_source(m), autograde=False) for m in decl.mistakes]


def delete_test_cell(test_id: str) -> Callable:
    """A :class:`Mutant` ``edit`` that deletes the test cell ``test_id`` (tampering nbgrader must undo)."""
    def edit(nb):
        nb.cells = [c for c in nb.cells if grade_id(c) != test_id]
    return edit


def rewrite_test_cell(test_id: str) -> Callable:
    """A :class:`Mutant` ``edit`` that replaces the locked test cell ``test_id`` with ``pass`` and unlocks it."""
    def edit(nb):
        for cell in test_cells(nb):
            if grade_id(cell) == test_id:
                cell.source = "pass  # tests removed"
                cell.metadata["nbgrader"]["locked"] = False
    return edit


def fill(release, answers: dict[str, str]):
    """A copy of the release notebook with answer cells replaced by ``answers[grade_id]``."""
    nb = copy.deepcopy(release)
    for cell in answer_cells(nb):
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


def perfect_answers(source_nb) -> dict[str, str]:
    """Every answer cell filled with the instructor's solution."""
    return {grade_id(c): strip_solution_markers(c.source) for c in answer_cells(source_nb)}


class Student(NamedTuple):
    """One scratch student: an id, the mutants they carry and the notebook they submit."""

    id: str
    mutants: tuple
    notebook: object


def pack(release, source_nb, mutants: list[Mutant], prefix: str = "m") -> list[Student]:
    """Put the mutants into as few students as possible: at most one mutant per answer cell.

    Answer cells are graded by separate test cells that do not use each
    other's functions, so one notebook can carry a wrong answer in every cell;
    cells without a mutant get the perfect answer and must keep full marks.
    """
    by_cell: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_cell.setdefault(m.cell, []).append(m)
    perfect = perfect_answers(source_nb)
    students = []
    for k in range(max((len(v) for v in by_cell.values()), default=0)):
        carried = tuple(v[k] for v in by_cell.values() if k < len(v))
        nb = fill(release, {**perfect, **{m.cell: m.source for m in carried}})
        for m in carried:
            if m.edit is not None:
                m.edit(nb)
        students.append(Student(f"{prefix}{k:02d}", carried, nb))
    return students


def run_visible_tests(release, answers: dict[str, str], test_id: str, timeout: float = 120):
    """Run what a learner runs before submitting, in a fresh Python process.

    Executes the release's read-only code cells and its answer cells (replaced
    by ``answers``), in order, up to and including test cell ``test_id`` as
    released (its visible part). Returns the ``CompletedProcess``; a non-zero
    return code means the visible tests failed.
    """
    chunks = []
    for cell in release.cells:
        if cell.cell_type != "code":
            continue
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            chunks.append(answers.get(meta.get("grade_id"), cell.source))
        elif meta.get("grade_id") == test_id:
            chunks.append(cell.source)
            break
        elif meta.get("locked") and not meta.get("grade"):
            chunks.append(cell.source)
    else:
        raise KeyError(f"no test cell {test_id!r} in the release")
    return subprocess.run([sys.executable, "-c", "\n\n".join(chunks)], capture_output=True, text=True,
                          timeout=timeout, env=nbgrader_env())


def affected_tests(source_nb, changed: Iterable[str]) -> list[str]:
    """The test cells a change to these answer cells can affect.

    The test cell grading each changed cell, and every later test cell whose source, or whose answer
    cell's source, names one of the changed functions (answer cells define the function of their
    grade_id). An earlier test cell runs before the changed answer exists, and a later one that never
    names it cannot reach it, so neither can change its verdict.
    """
    changed = set(changed)
    by = graded_by(source_nb)
    answers = {grade_id(c): c.source for c in answer_cells(source_nb)}
    tests = {grade_id(c): c.source for c in test_cells(source_nb)}
    first = min((list(tests).index(by[c]) for c in changed), default=len(tests))
    affected = []
    for test_id in list(tests)[first:]:
        sources = [tests[test_id]] + [answers[a] for a, t in by.items() if t == test_id and a not in changed]
        if test_id in {by[c] for c in changed} or any(
                re.search(rf"\b{re.escape(name)}\b", text) for name in changed for text in sources):
            affected.append(test_id)
    return affected


def run_cells(source_nb, students: dict[str, dict[str, str]], timeout: int = 10,
              probe: Sequence[str] = (), tests: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """Execute the notebook's code cells for each student (answers replaced), one forked process each.

    Test cells are the source notebook's, hidden tests included, as autograde restores them.
    Returns, per student, each test cell's verdict: "" when it passed, else the exception it raised;
    students in ``probe`` also get the encoding round trip of every case; a student in ``tests`` runs
    only the test cells listed there (see ``tests/cellrun.py``).
    """
    cells = []
    for cell in source_nb.cells:
        if cell.cell_type != "code":
            continue
        meta = nbgrader_meta(cell)
        kind = ("answer" if meta.get("solution") else "test" if meta.get("grade")
                else "code" if meta.get("locked") else "show")
        source = strip_solution_markers(cell.source) if kind == "answer" else cell.source
        cells.append({"kind": kind, "id": meta.get("grade_id") or cell.get("id", ""), "source": source})
    job = json.dumps({"cells": cells, "students": students, "timeout": timeout, "probe": list(probe),
                      "tests": tests or {}})
    env = nbgrader_env()
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("cellrun.py"))], input=job,
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT / "solutions",
                          timeout=60 + 4 * timeout * max(1, len(students)))
    if proc.returncode != 0:
        raise RuntimeError(f"tests/cellrun.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- the course copy

def nbgrader_env(base: dict | None = None, config_dir: Path | None = None) -> dict:
    """The environment nbgrader needs: this interpreter's bin/ first on PATH (alembic, python3)."""
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    if not env.get("PATH", "").startswith(bindir + os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("MPLBACKEND", "Agg")
    if config_dir is not None:  # ignore ~/.jupyter/nbgrader_config.py and friends
        env["JUPYTER_CONFIG_DIR"] = str(config_dir)
    return env


class NbgraderError(RuntimeError):
    pass


# Runs several nbgrader subcommands in one Python process: each is the same application class the
# `nbgrader <subcommand>` CLI starts, initialised from the same argv (config read from the working
# directory), but nbgrader's imports (about 5 s) are paid once instead of once per command.
class CourseCopy:
    """A scratch nbgrader course made from the repository's config and solutions.

    Use as a context manager (the directory is deleted on exit unless
    ``directory`` was given); ``extra_config`` is appended to the copied
    ``nbgrader_config.py``::

        with CourseCopy() as course:
            course.submit("alice", "ex01_chain_rule", notebook)
            course.autograde("ex01_chain_rule")
            course.scores("ex01_chain_rule")   # {"alice": {"test_stack_backward": 4.0, ...}}
    """

    def __init__(self, root: Path | str = REPO_ROOT, env: dict | None = None,
                 directory: Path | str | None = None, extra_config: str = ""):
        self.root = Path(root)
        self._owned = directory is None
        self.path = Path(tempfile.mkdtemp(prefix="course-")) if directory is None else Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        config = (self.root / "nbgrader_config.py").read_text(encoding="utf-8")
        if extra_config:  # e.g. a shorter Execute.timeout, so a runaway submission is cheap to test
            config += "\n# --- added by tests/grading.py for this scratch course\n" + extra_config + "\n"
        (self.path / "nbgrader_config.py").write_text(config, encoding="utf-8")
        shutil.copytree(self.root / "solutions", self.path / "solutions", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        self.env = nbgrader_env(env, config_dir=self.path / ".jupyter")
        self._released: set[str] = set()
        self.log: list[str] = []

    def __enter__(self) -> "CourseCopy":
        return self

    def __exit__(self, *exc) -> None:
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)

    # -- running nbgrader
    def nbgrader(self, *args: str, timeout: float = 900) -> str:
        exe = shutil.which("nbgrader", path=self.env["PATH"])
        cmd = [exe] if exe else [sys.executable, "-m", "nbgrader"]
        proc = subprocess.run([*cmd, *args, "--log-level=WARN"], cwd=self.path, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
        self.log.append(f"$ nbgrader {' '.join(args)}\n{proc.stdout}")
        if proc.returncode != 0:
            raise NbgraderError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n"
                                f"{proc.stdout[-6000:]}")
        return proc.stdout

    def release(self, assignment: str):
        """``nbgrader generate_assignment`` (once); returns the release notebook."""
        if assignment not in self._released:
            self.nbgrader("generate_assignment", assignment, "--force")
            self._released.add(assignment)
        return nbformat.read(self.path / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)

    def source(self, assignment: str):
        return nbformat.read(self.path / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)

    def submit(self, student: str, assignment: str, notebook, release: bool = True) -> Path:
        """Place a notebook (a path or a NotebookNode) in submitted/<student>/<assignment>/.

        The gradebook must know the assignment before autograding: by default the
        first submission releases it (pass ``release=False`` to release it later,
        once for all submissions).
        """
        if release:
            self.release(assignment)
        if not isinstance(notebook, nbformat.NotebookNode):
            notebook = nbformat.read(notebook, as_version=4)
        target = self.path / "submitted" / student / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        return target

    def autograde(self, assignment: str) -> None:
        """Autograde every submission of the assignment in one nbgrader run."""
        self.nbgrader("autograde", assignment, "--force")

    def feedback(self, assignment: str, generate: bool = True) -> dict[str, str]:
        """Generate feedback (unless ``generate`` is False); return each student's HTML."""
        if generate:
            self.nbgrader("generate_feedback", assignment, "--force")
        out = {}
        for page in sorted((self.path / "feedback").glob(f"*/{assignment}/*.html")):
            out[page.parts[-3]] = page.read_text(encoding="utf-8")
        return out

    def scores(self, assignment: str) -> dict[str, dict[str, float]]:
        """Each student's score per test cell, read from the gradebook."""
        from nbgrader.api import Gradebook

        result: dict[str, dict[str, float]] = {}
        with Gradebook(f"sqlite:///{self.path / 'gradebook.db'}") as gb:
            for submission in gb.assignment_submissions(assignment):
                cells = result.setdefault(submission.student.id, {})
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        if grade.max_score > 0:
                            cells[grade.name] = float(grade.score)
        return result


def visible_text(page: str) -> str:
    """Feedback HTML with entities decoded, so that code can be searched for verbatim."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# --------------------------------------------------------------------------- the course CLI (src/coursegrade)

def course_env(course: CourseCopy) -> dict:
    """The course copy's environment with ``src/`` importable (``coursegrade``) and no external gradebook."""
    env = dict(course.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.pop("COURSE_DB_URL", None)
    return env


def run_course(course: CourseCopy, *args: str, env: dict | None = None, timeout: float = 600):
    """Run ``course ARGS...`` (``python -m coursegrade.cli``) in the course copy; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "coursegrade.cli", *args], cwd=course.path,
                          env=env or course_env(course), capture_output=True, text=True, timeout=timeout)
