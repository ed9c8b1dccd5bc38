"""Every exercise, end to end through the real grading pipeline (``course grade``, nbgrader's gradebook and feedback).

For each ``solutions/<id>/<id>.ipynb`` with a ``tests/mutants/<id>.py``:

- the committed release ``exercises/<id>/`` is what ``nbgrader generate_assignment``
  produces from ``solutions/`` today (cell types, sources, nbgrader metadata);
- the release holds no solution and no hidden test; every test cell is locked;
- grading for real (one sandboxed ``course grade`` run for all scratch students)
  gives the solution full marks, the untouched release 0, and every mutant that
  needs the sandbox (delegation, tampering) 0 on the cell it targets while its
  other cells keep full marks;
- every catalogue mistake, executed against the real test cells (hidden tests
  included) in a forked process, fails its own cell with a message naming it
  and passes the others;
- the feedback sent back to students contains no hidden-test code.

A new exercise plugs in by adding its solution notebook and its mutants file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

import grading

ROOT = grading.REPO_ROOT
MUTANT_DIR = Path(__file__).parent / "mutants"
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "solutions").glob("ex*/ex*.ipynb")
                     if p.stem == p.parent.name)


LOAD_ERRORS: dict[str, str] = {}


def load_mutants(assignment: str) -> list[grading.Mutant]:
    """tests/mutants/<id>.py's MUTANTS; a broken file fails its own assignment's tests only."""
    path = MUTANT_DIR / f"{assignment}.py"
    if not path.exists():
        return []
    try:
        spec = importlib.util.spec_from_file_location(f"mutants_{assignment}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return list(module.MUTANTS)
    except Exception as exc:  # noqa: BLE001 - reported by test_source_notebook_is_well_formed
        LOAD_ERRORS[assignment] = f"{path.name}: {type(exc).__name__}: {exc}"
        return []


MUTANTS = {a: load_mutants(a) for a in ASSIGNMENTS}
# Seconds per cell in the scratch course (the real config says 60). The slowest graded cells (a short
# training run, statistical tests on 10^5 draws) take a few seconds on a loaded 2-core machine; 20 s
# leaves a wide margin against flaky timeouts while a mutant that never returns still costs little.
CELL_TIMEOUT = 20


def representative(assignment: str) -> grading.Mutant | None:
    """The first catalogue mistake: also autograded for real, so that its feedback page can be read."""
    return next((m for m in MUTANTS[assignment] if not m.autograde), None)


def autograded(assignment: str) -> list[grading.Mutant]:
    """The submissions that go through a real nbgrader run."""
    return [m for m in MUTANTS[assignment] if m.autograde or m is representative(assignment)]


MUTANT_PARAMS = [pytest.param(a, i, id=f"{a}:{m.cell}:{m.name}")
                 for a in ASSIGNMENTS for i, m in enumerate(MUTANTS[a]) if m in autograded(a)]
MISTAKE_PARAMS = [pytest.param(a, i, id=f"{a}:{m.cell}:{m.name}")
                  for a in ASSIGNMENTS for i, m in enumerate(MUTANTS[a]) if not m.autograde]
HIDDEN_PARAMS = [p for p in MUTANT_PARAMS + MISTAKE_PARAMS
                 if MUTANTS[p.values[0]][p.values[1]].caught_by == "hidden"]


def source_nb(assignment: str):
    return nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)


def committed_release(assignment: str):
    path = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `make release` and commit exercises/")
    return nbformat.read(path, as_version=4)


class Graded:
    """Everything one autograde run of an assignment produced."""

    def __init__(self, assignment: str, course: grading.CourseCopy):
        if assignment in LOAD_ERRORS:
            pytest.fail(f"cannot load the mutants: {LOAD_ERRORS[assignment]}")
        self.assignment = assignment
        self.source = course.source(assignment)
        release = committed_release(assignment)  # what learners actually open
        self.points = grading.max_points(self.source)
        self.graded_by = grading.graded_by(self.source)
        self.students = [
            grading.Student("solution", (), grading.fill(release, grading.perfect_answers(self.source))),
            grading.Student("untouched", (), release),
            *grading.pack(release, self.source, autograded(assignment)),
        ]
        for student in self.students:
            course.submit(student.id, assignment, student.notebook, release=False)
        # The real grading path: release (fills the gradebook), then `course grade` (sandboxed learners,
        # tests run by the grader, nbgrader's feedback pages).
        self.generated = course.release(assignment)
        # one worker: the suite already runs its groups in parallel
        proc = grading.run_course(course, "grade", assignment, "--force", "--jobs", "1")
        if proc.returncode != 0:
            pytest.fail(f"course grade failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        self.scores = course.scores(assignment)
        self.feedback = course.feedback(assignment, generate=False)
        self.log = "\n".join(course.log) + proc.stdout

    def student_of(self, mutant: grading.Mutant) -> grading.Student:
        return next(s for s in self.students if mutant in s.mutants)

    def expected(self, student: grading.Student) -> dict[str, float]:
        """Full marks everywhere except the cells that grade one of the student's mutants."""
        failing = {self.graded_by[m.cell] for m in student.mutants}
        return {cell: 0.0 if cell in failing else pts for cell, pts in self.points.items()}


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    cache: dict[str, Graded] = {}

    def get(assignment: str) -> Graded:
        if assignment not in cache:
            course = grading.CourseCopy(directory=tmp_path_factory.mktemp(assignment),
                                        extra_config=f"c.Execute.timeout = {CELL_TIMEOUT}")
            cache[assignment] = Graded(assignment, course)
        return cache[assignment]

    return get


@pytest.fixture(scope="session")
def executed():
    """Per assignment: every catalogue mistake's verdicts from its real test cells (tests/cellrun.py)."""
    cache: dict[str, dict] = {}

    def get(assignment: str) -> dict:
        if assignment not in cache:
            if assignment in LOAD_ERRORS:
                pytest.fail(f"cannot load the mutants: {LOAD_ERRORS[assignment]}")
            nb = source_nb(assignment)
            mistakes = {f"k{i}": m for i, m in enumerate(MUTANTS[assignment]) if not m.autograde}
            students = {"solution": {}, **{k: {m.cell: m.source} for k, m in mistakes.items()}}
            tests = {k: grading.affected_tests(nb, [m.cell]) for k, m in mistakes.items()}
            cache[assignment] = grading.run_cells(nb, students, probe=["solution"], tests=tests)
        return cache[assignment]

    return get


# --------------------------------------------------------------------------- static checks

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_is_well_formed(assignment):
    assert assignment not in LOAD_ERRORS, LOAD_ERRORS.get(assignment)
    nb = source_nb(assignment)
    answers = grading.answer_cells(nb)
    tests = grading.test_cells(nb)
    assert answers and tests, "an exercise needs answer cells and graded test cells"
    unlocked = [grading.grade_id(c) for c in tests if not grading.nbgrader_meta(c).get("locked")]
    assert not unlocked, f"test cells must be locked (else autograde does not restore them): {unlocked}"
    orphans = [grading.grade_id(c) for c in answers if grading.grade_id(c) not in grading.graded_by(nb)]
    assert not orphans, f"answer cells without a test cell after them: {orphans}"
    for cell in answers:
        assert grading.BEGIN_SOLUTION in cell.source and grading.END_SOLUTION in cell.source
    for cell in tests:
        assert grading.nbgrader_meta(cell).get("points", 0) > 0, grading.grade_id(cell)
    assert MUTANTS[assignment], f"tests/mutants/{assignment}.py must list wrong submissions"
    untested = {c for c in grading.graded_by(nb)} - {m.cell for m in MUTANTS[assignment]}
    assert not untested, f"answer cells with no mutant: {sorted(untested)}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_hides_solutions_and_hidden_tests(assignment):
    release = committed_release(assignment)
    text = nbformat.writes(release)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"the release contains {marker!r}"
    for line in grading.hidden_test_lines(source_nb(assignment)):
        assert line not in text, f"hidden test code in the release: {line!r}"
    release_answers = "\n".join(c.source for c in grading.answer_cells(release))
    leaked = [line for line in grading.solution_lines(source_nb(assignment)) if line in release_answers]
    assert not leaked, f"solution code in the release: {leaked[:3]}"
    for cell in grading.answer_cells(release):
        assert "raise NotImplementedError()" in cell.source


# --------------------------------------------------------------------------- nbgrader end to end

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_matches_generate_assignment(assignment, graded):
    """Drift: exercises/<id> is exactly what generate_assignment makes from solutions/ today."""
    g = graded(assignment)
    assert grading.signature(committed_release(assignment)) == grading.signature(g.generated), (
        f"exercises/{assignment} is stale: run `make release` and commit the result")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(assignment, graded):
    g = graded(assignment)
    assert g.scores["solution"] == g.points, g.log[-3000:]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_scores_zero(assignment, graded):
    g = graded(assignment)
    assert g.scores["untouched"] == {cell: 0.0 for cell in g.points}


@pytest.mark.parametrize("assignment, index", MUTANT_PARAMS)
def test_mutant_loses_exactly_its_cell(assignment, index, graded):
    g = graded(assignment)
    mutant = MUTANTS[assignment][index]
    student = g.student_of(mutant)
    cell = g.graded_by[mutant.cell]
    assert g.scores[student.id][cell] == 0.0, (
        f"mutant {mutant.name!r} scored {g.scores[student.id][cell]} on {cell}")
    assert g.scores[student.id] == g.expected(student), (
        f"{student.id} carries {[m.name for m in student.mutants]}")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_executed_solution_passes_every_test_cell(assignment, executed):
    """The cell runner itself: the solution passes every real test cell (else a mistake's failure proves nothing)."""
    verdicts = dict(executed(assignment)["solution"])
    verdicts.pop("__encoding__", None)
    assert set(verdicts) == set(grading.max_points(source_nb(assignment))), verdicts
    assert not any(verdicts.values()), {cell: v for cell, v in verdicts.items() if v}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_case_round_trips_as_plain_data(assignment, executed):
    """Every case the test cells run (visible and hidden) and its reference output encode and decode exactly:
    the checks are ready to run with the learner's function in another process."""
    report = executed(assignment)["solution"].get("__encoding__")
    assert report is not None, "the solution run recorded no cases"
    assert not report["problems"], report["problems"][:5]
    graded = {grading.grade_id(c) for c in grading.answer_cells(source_nb(assignment))}
    assert graded <= set(report["counts"]), f"no engine cases recorded for {sorted(graded - set(report['counts']))}"


@pytest.mark.parametrize("assignment, index", MISTAKE_PARAMS)
def test_mistake_fails_exactly_its_cell(assignment, index, executed):
    """A catalogue mistake, executed against the real test cells: its cell fails, naming it, and every
    later test cell that could reach the mistaken function (grading.affected_tests) still passes."""
    mutant = MUTANTS[assignment][index]
    verdicts = executed(assignment)[f"k{index}"]
    cell = grading.graded_by(source_nb(assignment))[mutant.cell]
    assert verdicts.get(cell), f"mistake {mutant.name!r} passes {cell}"
    assert mutant.name in verdicts[cell], f"the failure does not name the mistake: {verdicts[cell][:600]}"
    others = {c: v for c, v in verdicts.items() if c != cell and v}
    assert not others, f"mistake {mutant.name!r} also fails {others}"


@pytest.mark.parametrize("assignment, index", HIDDEN_PARAMS)
def test_hidden_tests_catch_what_the_visible_ones_miss(assignment, index):
    """Mutants marked caught_by="hidden" pass the visible tests: the hidden tests earn their keep."""
    mutant = MUTANTS[assignment][index]
    release = committed_release(assignment)
    if mutant.edit is not None:
        mutant.edit(release)
    answers = {**grading.perfect_answers(source_nb(assignment)), mutant.cell: mutant.source}
    proc = grading.run_visible_tests(release, answers, grading.graded_by(source_nb(assignment))[mutant.cell])
    assert proc.returncode == 0, f"the visible tests already catch {mutant.name!r}:\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_has_no_hidden_tests(assignment, graded):
    g = graded(assignment)
    assert set(g.feedback) == {s.id for s in g.students}
    hidden = grading.hidden_test_lines(g.source)
    assert hidden, "expected hidden tests in the source notebook"
    for student in g.students:
        text = grading.visible_text(g.feedback[student.id])
        assert "HIDDEN TESTS" not in text, student.id
        own = nbformat.writes(student.notebook)  # a submission may contain e.g. `import importlib`
        leaked = [line for line in hidden if line in text and line not in own]
        assert not leaked, f"feedback for {student.id} shows hidden test code: {leaked[:3]}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_explains_failures(assignment, graded):
    """A learner reads why a cell failed: the checker's message, not a bare AssertionError."""
    g = graded(assignment)
    text = grading.visible_text(g.feedback["untouched"])
    assert "is not implemented yet" in text
    mutant = representative(assignment)
    page = grading.visible_text(g.feedback[g.student_of(mutant).id])
    assert f"This matches a common mistake: {mutant.name}" in page.replace("\n", " ")
