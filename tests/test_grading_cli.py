"""``course release``, ``course collect`` and ``course check`` as an instructor and a learner run them."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

import grading
import zoo

pytestmark = pytest.mark.xdist_group("grading-cli")
A = "ex01_chain_rule"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return grading.CourseCopy(directory=tmp_path_factory.mktemp("cli") / "course")


def test_release_regenerates_the_committed_exercise(course):
    proc = grading.run_course(course, "release", A)
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = nbformat.read(course.path / "exercises" / A / f"{A}.ipynb", as_version=4)
    committed = nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    assert grading.signature(made) == grading.signature(committed)
    bad = grading.run_course(course, "release", "ex99_nope")
    assert bad.returncode == 2 and "unknown assignment" in bad.stderr


def test_collect_validates_names_and_keeps_corrupt_files(course, tmp_path):
    release = nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    inbox = tmp_path / "inbox"
    for student, folder, name in [("alice", A, f"{A}.ipynb"), ("bob", A, "my_work.ipynb"),
                                  ("carol", "ex99_nope", f"{A}.ipynb"), ("bad name", A, f"{A}.ipynb")]:
        (inbox / student / folder).mkdir(parents=True)
        nbformat.write(release, inbox / student / folder / name)
    (inbox / "dave" / A).mkdir(parents=True)
    (inbox / "dave" / A / f"{A}.ipynb").write_text("{ corrupt")
    proc = grading.run_course(course, "collect", str(inbox))
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.relative_to(course.path / "submitted").as_posix() for p in (course.path / "submitted").rglob("*.ipynb"))
    assert got == [f"alice/{A}/{A}.ipynb", f"dave/{A}/{A}.ipynb"]
    assert (course.path / "submitted" / "dave" / A / f"{A}.ipynb").read_text() == "{ corrupt"
    out = proc.stdout
    assert "collected 2 submission(s)" in out
    assert "bob/ex01_chain_rule/my_work.ipynb: expected the name ex01_chain_rule.ipynb" in out
    assert "carol/ex99_nope: unknown assignment" in out
    assert "bad name: not a valid student id" in out


def _check(course, nb) -> subprocess.CompletedProcess:
    path = course.path / "learner" / f"{A}.ipynb"
    path.parent.mkdir(exist_ok=True)
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    else:
        nbformat.write(nb, path)
    return subprocess.run([sys.executable, "-m", "coursegrade.cli", "check", str(path)], cwd=path.parent,
                          env=grading.course_env(course), capture_output=True, text=True, timeout=300)


def test_check_passes_a_correct_notebook(course):
    release = nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    case = zoo.basic_cases(A, release, course.source(A))[0]
    proc = _check(course, case.notebook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 3 visible tests passed" in proc.stdout


def test_check_fails_and_names_the_failing_test(course):
    release = nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    wrong = zoo.basic_cases(A, release, course.source(A))[2]
    proc = _check(course, wrong.notebook)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  test_stack_backward" in proc.stdout
    assert "This matches a common mistake" in proc.stdout  # the checker's message, not a bare error
    assert "ok    test_numerical_gradient" in proc.stdout
    assert _check(course, b"{ not json").returncode == 2


def test_check_fails_when_the_kernel_dies_in_the_last_test_cell(course):
    release = nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    answers = {**grading.perfect_answers(course.source(A)), "chain_gradient_norms": (
        "import os\n\ndef chain_gradient_norms(x, params, activation, dout=None):\n    os._exit(1)\n")}
    proc = _check(course, grading.fill(release, answers))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  test_chain_gradient_norms" in proc.stdout
    assert "ok    test_stack_backward" in proc.stdout


def test_collect_follows_no_symlink(course, tmp_path):
    """A linked student or assignment folder, notebook or timestamp is skipped with its reason."""
    release = nbformat.read(grading.REPO_ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    secret = tmp_path / "secret.txt"
    secret.write_text("2026-01-01 00:00:00 root only")
    secret.chmod(0o600)
    inbox = tmp_path / "inbox"
    (inbox / "erin" / A).mkdir(parents=True)
    nbformat.write(release, inbox / "erin" / A / f"{A}.ipynb")
    (inbox / "erin" / A / "timestamp.txt").symlink_to(secret)
    (inbox / "frank").mkdir()
    (inbox / "frank" / A).symlink_to(course.path / "solutions" / A)              # the solutions, as a submission
    (inbox / "gina" / A).mkdir(parents=True)
    (inbox / "gina" / A / f"{A}.ipynb").symlink_to(inbox / "erin" / A / f"{A}.ipynb")
    (inbox / "hank").symlink_to(inbox / "erin")
    submitted = course.path / "submitted"
    before = {p for p in submitted.rglob("*")} if submitted.exists() else set()
    proc = grading.run_course(course, "collect", str(inbox))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = {p for p in submitted.rglob("*")} - before
    assert {p.relative_to(submitted).as_posix() for p in made if p.is_file()} == {f"erin/{A}/{A}.ipynb"}
    out = proc.stdout
    assert f"frank/{A}: a symlink" in out
    assert f"gina/{A}: {A}.ipynb is not a regular file" in out
    assert "hank: a symlink" in out
    assert f"erin/{A}/timestamp.txt: timestamp.txt is not a regular file" in out
    assert not any(p.is_symlink() for p in submitted.rglob("*"))
