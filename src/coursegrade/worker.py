"""One grading slot: reads a submission safely, grades it, records grades and feedback.

A :class:`Worker` owns a scratch course directory (the course's
``nbgrader_config.py``, its own SQLite gradebook holding the assignment
definitions, the package copies of :mod:`coursegrade.withhold`). For each
submission it

1. reads ``submitted/<student>/<assignment>/<assignment>.ipynb`` as bytes, refusing
   symlinks and anything that is not a regular file, and the size limit before parsing;
2. grades it with :func:`coursegrade.scoring.grade_notebook` (the learner's code in the
   sandbox, the tests in this process, a fresh salt for the hidden inputs);
3. writes the feedback notebook it built (visible test sources and their results) into
   its scratch ``autograded/``, records the scores in its scratch gradebook, runs
   nbgrader's own ``GenerateFeedbackApp`` there, and copies the HTML page back;
4. returns the result as plain data for :func:`coursegrade.gradebook.merge`.

Nothing from the sandbox is ever copied: the sandbox's files die with it, and the
grader writes only files it generated itself.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import time
import traceback
from datetime import datetime
from pathlib import Path

import nbformat

from . import gradebook as gbmod
from . import sandbox
from .scoring import MAX_BYTES, Assignment, Runner, clean, grade_notebook, nbgrader_grades

TIMESTAMP_BYTES = 100


class Unreadable(Exception):
    """A submitted file that is not a regular file, or too large: the reason is the message."""


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (never through a symlink) of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Unreadable(f"missing notebook {path.name}") from None
    except OSError as exc:
        raise Unreadable(f"{path.name} is not a regular file ({exc.strerror or 'refused'})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{path.name} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"too large ({info.st_size // 2**20} MB; the limit is {limit // 2**20} MB)")
    return data


def read_timestamp(folder: Path) -> tuple[datetime | None, str]:
    """The submission's ``timestamp.txt`` as a datetime, or None and a note when it is absent or invalid."""
    path = folder / "timestamp.txt"
    if not os.path.lexists(path):
        return None, ""
    try:
        text = read_regular(path, TIMESTAMP_BYTES).decode("ascii").strip()
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" UTC", "")), ""
    except (Unreadable, UnicodeDecodeError, ValueError):
        return None, "timestamp.txt ignored (not a short, valid date)"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def submission_hash(folder: Path, assignment: str) -> str | None:
    try:
        return sha256(read_regular(folder / f"{assignment}.ipynb", MAX_BYTES))
    except Unreadable:
        return None


def summarize_reasons(reasons: list[str]) -> str:
    """'timeout: test_a, test_b; wrong answer: test_c' from per-cell reasons, without control characters."""
    grouped: dict[str, list[str]] = {}
    for r in reasons:
        kind, _, where = clean(r).partition(": ")
        grouped.setdefault(kind, [])
        if where and where not in grouped[kind]:
            grouped[kind].append(where)
    return "; ".join(f"{k}: {', '.join(v)}" if v else k for k, v in grouped.items())


def _course_timeout(folder: Path) -> float:
    """``c.Execute.timeout`` from an nbgrader config: the seconds one call of a learner's function may take
    (and its notebook's definitions, together)."""
    from traitlets.config.loader import PyFileConfigLoader

    try:
        value = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config().Execute.timeout
    except Exception:  # noqa: BLE001 - no readable setting: the default
        return 60.0
    return float(value) if isinstance(value, (int, float)) and value > 0 else 60.0


class Worker:
    """One grading slot: a scratch course directory and its own gradebook.

    Parameters
    ----------
    course_root : Path
    scratch : Path
        An empty directory for this worker.
    definitions : dict
        ``{assignment: assignment_definition}`` from the course gradebook.
    slot : int
        Worker number; the sandbox uid is ``60000 + slot``.
    sandboxed : bool
    extra_config : str
        Appended to the worker's nbgrader config (e.g. ``c.Execute.timeout = 5``).
    limits : dict
        Fields of :class:`coursegrade.sandbox.Limits`.
    """

    def __init__(self, course_root: Path, scratch: Path, definitions: dict, slot: int = 0,
                 sandboxed: bool = True, extra_config: str = "", limits: dict | None = None):
        self.course = Path(course_root)
        self.path = Path(scratch)
        self.definitions = definitions
        config = (self.course / "nbgrader_config.py").read_text(encoding="utf-8") + "\n" + extra_config + "\n"
        config += f'\nc.CourseDirectory.db_url = "sqlite:///{self.path / "gradebook.db"}"\n'
        (self.path / "nbgrader_config.py").write_text(config, encoding="utf-8")
        timeout = _course_timeout(self.path)
        self.runner = Runner(self.path / "packages", sandboxed=sandboxed, uid=60000 + slot,
                             limits=sandbox.Limits(**(limits or {})), call_timeout=timeout, run_timeout=timeout)
        self.assignments = {a: Assignment.load(self.course / "solutions" / a / f"{a}.ipynb") for a in definitions}
        os.environ.update(JUPYTER_PLATFORM_DIRS="1", JUPYTER_CONFIG_DIR=str(self.path / ".jupyter"),
                          JUPYTER_DATA_DIR=str(self.path / "share"))
        os.environ.pop("COURSE_DB_URL", None)  # the worker writes only its own gradebook
        os.chdir(self.path)
        with gbmod.open_gradebook(self.db_url) as gb:
            for definition in definitions.values():
                gbmod.define_assignment(gb, definition)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.path / 'gradebook.db'}"

    def grade(self, student: str, assignment: str, feedback: bool = True) -> dict:
        """Grade ``<course>/submitted/<student>/<assignment>/``; return the result as plain data."""
        started = time.monotonic()
        folder = self.course / "submitted" / student / assignment
        result = {"student": student, "assignment": assignment, "sha256": None, "notebooks": None,
                  "reasons": [], "notes": [], "timestamp": None, "ok": False, "salt": None}
        for part in (folder.parent, folder):   # a linked student or assignment folder: someone else's files
            if part.is_symlink():
                result["reasons"] = [f"submitted/{clean(part.relative_to(self.course / 'submitted'), 160)} "
                                     "is a symlink (not followed)"]
                return self._finish(result, started)
        try:
            data = read_regular(folder / f"{assignment}.ipynb", MAX_BYTES)
        except Unreadable as exc:
            result["reasons"] = [str(exc)]
            return self._finish(result, started)
        result["sha256"] = sha256(data)
        timestamp, note = read_timestamp(folder)
        result["salt"] = salt = secrets.randbits(62)
        graded = grade_notebook(self.assignments[assignment], data, self.runner, salt)
        result["notes"] = list(graded.notes) + ([note] if note else [])
        result["reasons"] = graded.reasons
        result["retry"] = graded.retry
        if graded.fatal:
            return self._finish(result, started)
        result["notebooks"] = nbgrader_grades(self.assignments[assignment], self.definitions[assignment], graded)
        result["timestamp"] = timestamp
        result["ok"] = True
        self._record(student, assignment, graded.feedback_notebook, result, feedback)
        return self._finish(result, started)

    def _record(self, student: str, assignment: str, notebook, result: dict, feedback: bool) -> None:
        """The feedback notebook into autograded/, the scores into the scratch gradebook, the HTML back."""
        from nbgrader.apps.generatefeedbackapp import GenerateFeedbackApp

        name = self.definitions[assignment]["notebooks"][0]["name"]
        for d in ("autograded", "feedback"):
            shutil.rmtree(self.path / d, ignore_errors=True)
        auto = self.path / "autograded" / student / assignment
        auto.mkdir(parents=True)
        nbformat.write(notebook, auto / f"{name}.ipynb")
        with gbmod.open_gradebook(self.db_url) as gb:
            gbmod.merge(gb, assignment, student, result["notebooks"], timestamp=result["timestamp"])
        _replace_tree(auto, self.course / "autograded" / student / assignment)
        if feedback:
            error = _run_app(GenerateFeedbackApp, [assignment, f"--student={student}", "--force"])
            pages = self.path / "feedback" / student / assignment
            if pages.is_dir():
                _replace_tree(pages, self.course / "feedback" / student / assignment)
            elif error:
                result["notes"].append(f"no feedback ({clean(error, 100)})")

    def _finish(self, result: dict, started: float) -> dict:
        result["seconds"] = round(time.monotonic() - started, 2)
        if result["timestamp"] is not None:
            result["timestamp"] = result["timestamp"].isoformat()
        return result


def _replace_tree(src: Path, dest: Path) -> None:
    """Copy the regular files the grader generated in ``src`` to ``dest`` (which is replaced)."""
    shutil.rmtree(dest, ignore_errors=True)       # rmtree never follows symlinks
    dest.mkdir(parents=True)
    for path in src.iterdir():
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, dest / path.name, follow_symlinks=False)


def _run_app(app_class, argv: list[str]) -> str | None:
    app = app_class()
    try:
        app.initialize([*argv, "--log-level=ERROR"])
        app.start()
    except SystemExit as exc:
        if exc.code:
            return f"{app_class.__name__} exited with {exc.code}"
    except Exception as exc:  # noqa: BLE001 - reported as the submission's note
        return f"{type(exc).__name__}: {exc}"
    return None


def grade_safely(worker: Worker, student: str, assignment: str, feedback: bool = True) -> dict:
    try:
        return worker.grade(student, assignment, feedback=feedback)
    except Exception as exc:  # noqa: BLE001 - one bad submission must not stop the worker
        return {"student": student, "assignment": assignment, "notebooks": None, "ok": False, "notes": [],
                "reasons": [f"grader error: {clean(type(exc).__name__)}: {clean(exc, 200)}"], "timestamp": None,
                "sha256": None, "retry": True, "trace": traceback.format_exc()[-2000:]}
