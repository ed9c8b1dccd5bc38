"""``course grade`` with the gradebook on a real PostgreSQL server (``COURSE_DB_URL``).

The test starts its own server from Debian's packages (``initdb`` + ``pg_ctl``, as the
``postgres`` user when run as root, listening only on a unix socket in a temporary directory),
releases ex01 into it, grades three submissions in parallel and reads the scores back from
PostgreSQL. Nothing is skipped: without the server binaries or the driver the test fails and
says what to install (``.ci/run`` installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest

import grading
import zoo

pytestmark = pytest.mark.xdist_group("postgres")
ASSIGNMENT = "ex01_chain_rule"


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): "
                    "apt-get install -y postgresql (.ci/run does it)")
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str], **kwargs):
    if os.geteuid() == 0:  # the server refuses to run as root
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def postgres_url():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("the PostgreSQL driver is missing: add psycopg[binary] to the grading dependency group")
    pg = _pg_bin()
    base = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    _as_postgres([str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    _as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                  f"-k {base} -c listen_addresses='' -c fsync=off", "start"])
    try:
        _as_postgres([str(pg / "createdb"), "-h", str(base), "-U", "postgres", "gradebook"])
        yield f"postgresql+psycopg://postgres@/gradebook?host={base}"
    finally:
        subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                       + [str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_grading_into_postgresql(postgres_url, tmp_path):
    from nbgrader.api import Gradebook

    course = grading.CourseCopy(directory=tmp_path / "course", extra_config="c.Execute.timeout = 5")
    env = {**grading.course_env(course), "COURSE_DB_URL": postgres_url}
    released = grading.run_course(course, "release", ASSIGNMENT, env=env)
    assert released.returncode == 0, released.stderr[-3000:]
    release = nbformat.read(course.path / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    cases = zoo.basic_cases(ASSIGNMENT, release, course.source(ASSIGNMENT))
    for case in cases:
        zoo.write(course.path, case)
    proc = grading.run_course(course, "grade", "--jobs", "2", "--wall-limit", "60", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (course.path / "gradebook.db").exists(), "the SQLite gradebook was used instead of PostgreSQL"
    with Gradebook(postgres_url, "taming-unstable-gradients") as gb:
        got = {s.student.id: float(s.score) for s in gb.assignment_submissions(ASSIGNMENT)}
    assert got == {c.student: c.score for c in cases}
    again = grading.run_course(course, "grade", env=env)
    assert again.returncode == 0 and "0 to grade, 3 already graded" in again.stderr, again.stderr[-2000:]
