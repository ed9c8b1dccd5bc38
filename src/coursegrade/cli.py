"""``course``: one command per step of the instructor's workflow (and ``check`` for learners).

::

    course release [ID...]                regenerate exercises/<id> from solutions/<id>
    course collect DIR                    DIR/<student>/<assignment>/*.ipynb -> submitted/
    course grade [ID...] [--jobs N]       autograde what is not graded yet (in parallel, sandboxed),
                                          export grades.csv, generate feedback, print a summary
    course check NOTEBOOK                 run a notebook's visible tests; exit 1 if one fails

Every command finds the course root (the directory holding ``nbgrader_config.py``) from the
current directory upwards and runs there, with this interpreter's ``bin/`` first on PATH
(nbgrader calls ``alembic`` and starts ``python3`` from PATH).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import gradebook as gbmod
from . import sandbox

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")


def find_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "nbgrader_config.py").exists():
            return d
    sys.exit("course: no nbgrader_config.py here or in any parent directory (run it inside the course)")


def enter(root: Path) -> None:
    os.chdir(root)
    bindir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    for key, value in (("JUPYTER_PLATFORM_DIRS", "1"), ("PYDEVD_DISABLE_FILE_VALIDATION", "1"),
                       ("MPLBACKEND", "Agg"), ("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1")):
        os.environ.setdefault(key, value)


def course_config(root: Path):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def db_url(root: Path) -> str:
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=course_config(root)).db_url


def assignments(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


def run_app(app_class, argv: list[str]) -> bool:
    app = app_class()
    try:
        app.initialize([*argv, "--log-level=WARN"])
        app.start()
    except SystemExit as exc:
        return not exc.code
    return True


# --------------------------------------------------------------------------- release

def release(root: Path, ids: list[str]) -> int:
    from nbgrader.apps.generateassignmentapp import GenerateAssignmentApp

    known = assignments(root)
    ids = ids or known
    unknown = [i for i in ids if i not in known]
    if unknown:
        print(f"course release: unknown assignment(s) {unknown}; known: {known}", file=sys.stderr)
        return 2
    for assignment in ids:
        if not run_app(GenerateAssignmentApp, [assignment, "--force"]) \
                or not (root / "exercises" / assignment / f"{assignment}.ipynb").exists():
            # A failed --force generation can leave exercises/<id> deleted: restore the committed one.
            subprocess.run(["git", "checkout", "--", f"exercises/{assignment}"], cwd=root,
                           stderr=subprocess.DEVNULL, check=False)
            print(f"course release: {assignment} failed; exercises/{assignment} restored from git", file=sys.stderr)
            return 1
    print(f"released: {' '.join(ids)}")
    return 0


# --------------------------------------------------------------------------- collect

def _kind(path: Path) -> str:
    """'folder', 'file', 'symlink' or 'other', without following a symlink."""
    import stat

    try:
        mode = path.lstat().st_mode
    except OSError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def collect(root: Path, source: Path) -> int:
    """Copy ``source/<student>/<assignment>/<assignment>.ipynb`` into ``submitted/``; say what was skipped.

    Nothing is followed through a symlink: a linked student folder, assignment folder, notebook or
    ``timestamp.txt`` is skipped with its reason, so a submission cannot point the collector at
    files outside it (another student's work, the solutions, a root-only file).
    """
    from .scoring import MAX_BYTES, clean
    from .worker import TIMESTAMP_BYTES, Unreadable, read_regular

    known = set(assignments(root))
    copied, skipped = 0, []
    if _kind(source) != "folder":
        print(f"course collect: {source} is not a directory", file=sys.stderr)
        return 2
    for student_dir in sorted(source.iterdir()):
        shown = clean(student_dir.name, 80)
        if _kind(student_dir) != "folder":
            skipped.append(f"{shown}: {'a symlink' if _kind(student_dir) == 'symlink' else 'not a folder'}")
            continue
        if not NAME.match(student_dir.name):
            skipped.append(f"{shown}: not a valid student id (letters, digits, _ . @ + -)")
            continue
        for adir in sorted(student_dir.iterdir()):
            where = f"{student_dir.name}/{clean(adir.name, 80)}"
            if adir.name not in known:
                skipped.append(f"{where}: unknown assignment (known: {', '.join(sorted(known))})")
                continue
            if _kind(adir) != "folder":
                skipped.append(f"{where}: {'a symlink' if _kind(adir) == 'symlink' else 'not a folder'}")
                continue
            expected = f"{adir.name}.ipynb"
            for nb in sorted(adir.glob("*.ipynb")):
                if nb.name != expected:
                    skipped.append(f"{where}/{clean(nb.name, 80)}: expected the name {expected}")
            try:
                data = read_regular(adir / expected, MAX_BYTES)
            except Unreadable as exc:
                skipped.append(f"{where}: {exc}")
                continue
            target = root / "submitted" / student_dir.name / adir.name
            if _kind(target.parent) == "symlink" or _kind(target) == "symlink":
                skipped.append(f"{where}: submitted/ holds a symlink there; remove it first")
                continue
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            # Written as bytes: a corrupt notebook is collected too, and grading reports it.
            (target / expected).write_bytes(data)
            if os.path.lexists(adir / "timestamp.txt"):
                try:
                    (target / "timestamp.txt").write_bytes(read_regular(adir / "timestamp.txt", TIMESTAMP_BYTES))
                except Unreadable as exc:
                    skipped.append(f"{where}/timestamp.txt: {exc}")
            copied += 1
    print(f"collected {copied} submission(s) into {root / 'submitted'}")
    for line in skipped:
        print(f"  skipped {line}")
    return 0 if copied else 1


# --------------------------------------------------------------------------- grade

def submissions(root: Path, ids: list[str], students: list[str] | None) -> list[tuple[str, str]]:
    known = set(assignments(root))
    out = []
    for sdir in sorted((root / "submitted").glob("*/*")):
        student, assignment = sdir.parent.name, sdir.name
        if sdir.is_dir() and assignment in known and (not ids or assignment in ids) \
                and (not students or student in students) and NAME.match(student):
            out.append((student, assignment))
    return out


def _reason(result: dict) -> str:
    from .scoring import clean
    from .worker import summarize_reasons

    parts = [summarize_reasons(result.get("reasons") or [])] + list(result.get("notes") or [])
    return clean("; ".join(p for p in parts if p), 500)


def grade(root: Path, ids: list[str], jobs: int, use_sandbox: bool, force: bool, wall_limit: float,
          students: list[str] | None = None, shard: str | None = None, feedback: bool = True,
          memory_mb: int | None = None, quiet: bool = False) -> int:
    from nbgrader.apps.exportapp import ExportApp
    from nbgrader.apps.generateassignmentapp import GenerateAssignmentApp
    from nbgrader.apps.generatefeedbackapp import GenerateFeedbackApp

    from .worker import submission_hash
    from .parallel import Pool
    from .summary import Progress, table

    if use_sandbox:
        try:
            sandbox.probe()
        except sandbox.SandboxUnavailable as exc:
            print(f"course grade: refusing to grade: {exc}", file=sys.stderr)
            return 3
    else:
        print("course grade: WARNING: --no-sandbox: student code runs with your rights, network and files",
              file=sys.stderr)
    todo = submissions(root, ids, students)
    if shard:
        k, n = (int(x) for x in shard.split("/"))
        todo = [t for t in todo if int(gbmod.hashlib_key(t[0]), 16) % n == k - 1]
    if not todo:
        print("course grade: nothing in submitted/<student>/<assignment>/ to grade", file=sys.stderr)
        return 1
    url = db_url(root)
    needed = sorted({a for _, a in todo})
    with gbmod.open_gradebook(url) as gb:
        missing = [a for a in needed if not _has_assignment(gb, a)]
    for assignment in missing:  # the gradebook learns an assignment's cells at release time
        if not run_app(GenerateAssignmentApp, [assignment, "--force"]):
            subprocess.run(["git", "checkout", "--", f"exercises/{assignment}"], cwd=root,
                           stderr=subprocess.DEVNULL, check=False)
            print(f"course grade: cannot release {assignment}", file=sys.stderr)
            return 1
    status = gbmod.load_status(root)
    with gbmod.open_gradebook(url) as gb:
        definitions = {a: gbmod.assignment_definition(gb, a) for a in needed}
        graded_subs = {(s.student.id, a) for a in needed for s in gb.assignment_submissions(a)}
    tasks = []
    for student, assignment in todo:
        entry = status.get(gbmod.status_key(student, assignment))
        current = submission_hash(root / "submitted" / student / assignment, assignment)
        if force or entry is None or entry.get("sha256") != current or (student, assignment) not in graded_subs:
            tasks.append((student, assignment))
    skipped = len(todo) - len(tasks)
    if not quiet:
        print(f"course grade: {len(tasks)} to grade, {skipped} already graded "
              f"({'sandboxed' if use_sandbox else 'NOT sandboxed'}, {jobs} jobs)", file=sys.stderr)
        if use_sandbox:
            memory = {"memory_bytes": memory_mb * 2**20} if memory_mb else {}
            print(f"course grade: sandbox limits: {sandbox.limits_report(sandbox.Limits(**memory))}", file=sys.stderr)
    manual_feedback, retried = [], []
    if tasks:
        progress = Progress(len(tasks))
        with gbmod.open_gradebook(url) as gb:
            def on_result(result: dict) -> None:
                student, assignment = result["student"], result["assignment"]
                if result.get("retry"):   # the grader failed, not the learner: keep the old grade, grade again
                    status.pop(gbmod.status_key(student, assignment), None)
                    gbmod.save_status(root, status)
                    retried.append((student, assignment, _reason(result)))
                    progress.advance(f"{student}/{assignment}")
                    return
                score = gbmod.merge(gb, assignment, student, result.get("notebooks"),
                                    timestamp=_parse_time(result.get("timestamp")))
                if result.get("notebooks") is None:
                    shutil.rmtree(root / "autograded" / student / assignment, ignore_errors=True)
                if score["manual"] and feedback:
                    manual_feedback.append((student, assignment))
                status[gbmod.status_key(student, assignment)] = {
                    "sha256": result.get("sha256") or submission_hash(root / "submitted" / student / assignment,
                                                                       assignment),
                    "salt": result.get("salt"),
                    "reason": _reason(result), "ok": bool(result.get("ok")), "seconds": result.get("seconds")}
                gbmod.save_status(root, status)
                progress.advance(f"{student}/{assignment}")

            limits = {"memory_bytes": memory_mb * 2**20} if memory_mb else {}
            Pool(root, definitions, jobs, use_sandbox, wall_limit, limits=limits, feedback=feedback).run(
                tasks, on_result)
    for student, assignment in manual_feedback:  # feedback must show the manual grade, from the course gradebook
        run_app(GenerateFeedbackApp, [assignment, f"--student={student}", "--force"])
    run_app(ExportApp, ["--to=grades.csv"])
    rows = []
    with gbmod.open_gradebook(url) as gb:
        for student, assignment in todo:
            try:
                score = gbmod.submission_score(gb, assignment, student)
            except Exception:  # noqa: BLE001 - not in the gradebook (should not happen)
                score = {"score": 0.0, "max_score": gbmod.max_score(definitions[assignment]), "manual": False}
            entry = status.get(gbmod.status_key(student, assignment), {})
            rows.append({"student": student, "assignment": assignment, **score, "reason": entry.get("reason", "")})
    print(table(rows))
    for student, assignment, why in retried:
        print(f"NOT GRADED {student}/{assignment}: {why}")
    print(f"\nGrades: {root / 'grades.csv'}   Feedback: {root / 'feedback'}/<student>/<assignment>/")
    return 4 if retried else 0


def _has_assignment(gb, assignment: str) -> bool:
    try:
        gb.find_assignment(assignment)
    except Exception:  # noqa: BLE001 - nbgrader.api.MissingEntry
        return False
    return True


def _parse_time(value):
    from datetime import datetime

    return datetime.fromisoformat(value) if value else None


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    import warnings

    # nbgrader's update_or_create_submission trips a harmless SQLAlchemy autoflush warning.
    warnings.filterwarnings("ignore", message=".*not in session.*")
    parser = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate exercises/<id> from solutions/<id>")
    p.add_argument("ids", nargs="*")
    p = sub.add_parser("collect", help="copy DIR/<student>/<assignment>/*.ipynb into submitted/")
    p.add_argument("dir", type=Path)
    p = sub.add_parser("grade", help="autograde, export grades.csv, generate feedback, print a summary")
    p.add_argument("ids", nargs="*", help="assignments (default: every submitted one)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="submissions graded in parallel (default: cores)")
    p.add_argument(sandbox.OVERRIDE_FLAG, dest="sandbox", action="store_false",
                   help="run student code without the sandbox (only for trusted submissions)")
    p.add_argument("--force", action="store_true", help="re-grade submissions already graded")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--shard", help="K/N: grade only the K-th of N shards of the students (several machines)")
    p.add_argument("--wall-limit", type=float, default=600.0, help="seconds per submission in all (default 600)")
    p.add_argument("--memory-mb", type=int, default=None,
                   help="memory of a learner's sandbox: per process, and in all where cgroups allow (default 3072)")
    p.add_argument("--no-feedback", dest="feedback", action="store_false", help="skip the feedback HTML")
    p = sub.add_parser("check", help="run a notebook's visible tests; exit 1 when one fails")
    p.add_argument("notebook", type=Path)
    p.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)

    if args.command == "check":
        from .check import check

        return check(args.notebook.resolve(), timeout=args.timeout)
    root = find_root()
    if args.command == "collect":
        source = args.dir.resolve()
        enter(root)
        return collect(root, source)
    enter(root)
    if args.command == "release":
        return release(root, args.ids)
    return grade(root, args.ids, args.jobs, args.sandbox, args.force, args.wall_limit, students=args.student,
                 shard=args.shard, feedback=args.feedback, memory_mb=args.memory_mb)


if __name__ == "__main__":
    sys.exit(main())
