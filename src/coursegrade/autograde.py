"""Autograde one submission at a time in a scratch course directory, and say why it scored so.

A :class:`Worker` owns a scratch course directory (the course's ``nbgrader_config.py``, the
assignment's non-notebook files, its own SQLite gradebook holding the assignment definitions,
a kernelspec and a runtime directory). :meth:`Worker.grade` runs nbgrader's own
``AutogradeApp`` (in-process: nbgrader's imports are paid once per worker, not per submission)
on one submission, reads the grades from the scratch gradebook, generates the feedback, copies
``autograded/`` and ``feedback/`` back into the course, and returns the grades as plain data
for :func:`coursegrade.gradebook.merge`.

:class:`GuardedExecute` replaces nbgrader's ``Execute`` preprocessor. It

- talks to the kernel over unix sockets (:class:`IpcKernelManager`), so a kernel without a
  network (see :mod:`coursegrade.sandbox`) can still be driven;
- caps the output a kernel can send (``max_output_bytes``): beyond it, output is dropped
  before it reaches memory or the notebook;
- after a cell timeout, checks that the kernel answers again; a kernel that ignores the
  interrupt (a loop that swallows SIGINT) is shut down, and so is the rest of the run: the
  remaining cells get an error and score 0, instead of each waiting for its own timeout;
- survives a kernel that dies (``os._exit``): the cells already graded keep their points.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from queue import Empty

from jupyter_client.manager import AsyncKernelManager
from nbformat import NotebookNode
from traitlets import Float, Integer

from . import gradebook as gbmod
from . import sandbox

# Events recorded by GuardedExecute while grading the current submission (one at a time per process).
EVENTS: list[tuple[str, str]] = []
COUNTED = {"stream", "display_data", "execute_result", "update_display_data", "error", "comm_msg", "comm_open"}


def runtime_dir() -> str:
    return os.environ.get("COURSEGRADE_RUNTIME_DIR") or os.environ.get("JUPYTER_RUNTIME_DIR") or "/tmp"


class IpcKernelManager(AsyncKernelManager):
    """A kernel manager that uses unix sockets in the runtime directory (works across netns)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("connection_file", os.path.join(runtime_dir(), f"k-{uuid.uuid4().hex[:10]}.json"))
        super().__init__(**kwargs)


def _size(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return 8


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


try:
    from nbgrader.preprocessors import Execute as _Execute
except ImportError:  # pragma: no cover - nbgrader is a dependency of grading
    _Execute = object


class GuardedExecute(_Execute):
    """nbgrader's Execute with an output cap, wedged-kernel and dead-kernel handling, ipc transport."""

    max_output_bytes = Integer(2 * 2**20, help="Output (bytes of text) a submission may produce in all.").tag(
        config=True)
    interrupt_grace = Float(5.0, help="Seconds a kernel has to answer after a timeout interrupt.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", IpcKernelManager)
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self._gone = None
        self._output_bytes = 0
        self._flooded = False
        self._timed_out = False
        return super().preprocess(nb, resources, km)

    # -- output cap
    def process_message(self, msg, cell, cell_index):
        kind = msg.get("msg_type")
        if kind in COUNTED and msg.get("parent_header", {}).get("msg_type") == "execute_request":
            self._output_bytes += _size(msg.get("content", {}))
            if self._output_bytes > self.max_output_bytes:
                if not self._flooded:
                    self._flooded = True
                    EVENTS.append(("output limit", f"more than {self.max_output_bytes // 2**20} MB of output"))
                    cell.outputs.append(NotebookNode(
                        output_type="stream", name="stderr",
                        text=f"[grader: output limit of {self.max_output_bytes} bytes reached; the rest of "
                             f"the output is dropped]\n"))
                if kind != "error":
                    return None
                content = msg["content"]
                content["evalue"] = str(content.get("evalue", ""))[:2000]
                content["traceback"] = [str(t)[:2000] for t in content.get("traceback", [])[:20]]
        return super().process_message(msg, cell, cell_index)

    # -- timeouts
    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True
        EVENTS.append(("timeout", _cell_name(cell)))
        return await super()._async_handle_timeout(timeout, cell)

    async def _async_responsive(self) -> bool:
        msg_id = self.kc.kernel_info()
        deadline = time.monotonic() + self.interrupt_grace
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=left)
            except Empty:
                return False
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._gone:
            cell.outputs = [_error("KernelGone", f"not run: {self._gone} in an earlier cell")]
            return cell, resources
        from jupyter_core.utils import run_sync
        from nbclient.exceptions import DeadKernelError

        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._gone = "the kernel died"
            EVENTS.append(("killed kernel", _cell_name(cell)))
            cell.outputs.append(_error("KernelDied", "the kernel died while running this cell"))
            return cell, resources
        if self._timed_out:
            self._timed_out = False
            if not run_sync(self._async_responsive)():
                self._gone = "a timeout the kernel did not recover from"
                EVENTS.append(("timeout", f"{_cell_name(cell)}: the kernel ignored the interrupt"))
                try:
                    run_sync(self.km.shutdown_kernel)(now=True)
                except Exception:  # noqa: BLE001 - it is being killed anyway
                    pass
        return cell, resources


def _cell_name(cell) -> str:
    if cell is None:
        return "?"
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {cell.get('id', '?')}"


# --------------------------------------------------------------------------- diagnosis

def sha256(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*.ipynb")) if path.is_dir() else [path]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def check_structure(definition: dict, folder: Path) -> tuple[list[str], list[str]]:
    """Problems with the submitted files before grading: (fatal, notes).

    Fatal: a notebook that is not valid JSON / nbformat. Notes: locked cells changed, graded
    cells deleted or duplicated (nbgrader restores them; the note tells the instructor).
    """
    import nbformat

    fatal, notes = [], []
    for nb_def in definition["notebooks"]:
        path = folder / f"{nb_def['name']}.ipynb"
        if not path.exists():
            fatal.append(f"missing notebook {path.name}")
            continue
        try:
            nb = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"), as_version=4)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
            fatal.append(f"corrupt file {path.name} ({type(exc).__name__})")
            continue
        seen: dict[str, list] = {}
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                seen.setdefault(gid, []).append(cell)
        graded = {c["name"] for c in nb_def["grade_cells"] + nb_def["task_cells"]}
        deleted = sorted(g for g in graded if g not in seen)
        duplicated = sorted(g for g, cells in seen.items() if len(cells) > 1)
        tampered = []
        for src in nb_def["source_cells"]:
            if src["locked"] and src["name"] in seen:
                cell = seen[src["name"]][0]
                meta = cell.get("metadata", {}).get("nbgrader", {})
                if _released_source(src["source"]) != _normalized(cell.get("source", "")) or not meta.get("locked"):
                    tampered.append(src["name"])
        if deleted:
            notes.append("test cell deleted: " + ", ".join(deleted))
        if duplicated:
            notes.append("duplicated cells: " + ", ".join(duplicated))
        if tampered:
            notes.append("tampered cells: " + ", ".join(tampered))
    return fatal, notes


def deduplicate(definition: dict, folder: Path) -> None:
    """Keep the first cell of each grade_id; drop later copies of locked cells, unmark copies of others.

    nbgrader 0.9.6 crashes on duplicated graded cells (its DeduplicateIds leaves cells that
    OverwriteCells cannot read), which would cost the whole submission; this costs nothing:
    the first copy is graded, extra copies of answer cells stay as ordinary code.
    """
    import nbformat

    for nb_def in definition["notebooks"]:
        path = folder / f"{nb_def['name']}.ipynb"
        nb = nbformat.read(path, as_version=4)
        locked = {c["name"] for c in nb_def["source_cells"] if c["locked"]}
        seen, cells = set(), []
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid and gid in seen:
                if gid in locked:
                    continue
                del cell["metadata"]["nbgrader"]
            elif gid:
                seen.add(gid)
            cells.append(cell)
        nb.cells = cells
        nbformat.write(nb, path)


def _normalized(source) -> str:
    if isinstance(source, list):
        source = "".join(source)
    return "\n".join(line.rstrip() for line in source.strip().split("\n"))


def _released_source(source: str) -> str:
    """A locked cell as learners get it: the source without its hidden-test region."""
    lines, hidden = [], False
    for line in (source or "").split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            lines.append(line)
    return _normalized("\n".join(lines))


def _check_failures() -> set[str]:
    """Names of the checker's failure classes (every subclass of CheckFailure), and AssertionError."""
    names = {"AssertionError", "CheckFailure"}
    try:
        import importlib
        import pkgutil

        import stablegrad.checking
        from stablegrad.checking import CheckFailure

        for info in pkgutil.iter_modules(stablegrad.checking.__path__):  # exercise modules define more
            importlib.import_module(f"stablegrad.checking.{info.name}")
    except ImportError:
        return names
    todo = [CheckFailure]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names - {"NotImplementedYetError", "DelegationError"}


def classify_error(ename: str, evalue: str) -> str:
    text = f"{ename}: {evalue}"
    if ename in ("CellTimeoutError", "KeyboardInterrupt") or ename == "KernelGone" and "timeout" in evalue:
        return "timeout"
    if ename in ("KernelDied",) or ename == "KernelGone":
        return "killed kernel"
    if "MemoryError" in text:
        return "memory limit"
    if ename == "DelegationError":
        return "delegation"
    if ename in ("NotImplementedYetError", "NotImplementedError"):
        return "not implemented"
    if ename in ("SyntaxError", "IndentationError", "TabError"):
        return "syntax error"
    if ename in _check_failures():
        return "wrong answer"
    return f"error ({ename})"


def diagnose(definition: dict, autograded: Path, grades: list[dict]) -> list[str]:
    """Why each failing test cell failed, from the autograded notebooks and the run's events."""
    import nbformat

    reasons: list[str] = []
    syntax = False
    for nb_def in definition["notebooks"]:
        path = autograded / f"{nb_def['name']}.ipynb"
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        scores = {g["name"]: g for d in grades if d["name"] == nb_def["name"] for g in d["grades"]}
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if meta.get("solution") and any(e.get("ename") in ("SyntaxError", "IndentationError") for e in errors):
                syntax = True
            g = scores.get(meta.get("grade_id"))
            if g is None or not meta.get("grade") or (g["auto_score"] or 0) >= g["max_score"]:
                continue
            why = classify_error(errors[-1].get("ename", ""), errors[-1].get("evalue", "")) if errors else "no credit"
            if syntax and why.startswith("error (NameError"):
                why = "syntax error"
            reasons.append(f"{why}: {meta.get('grade_id')}")
    if syntax and not any(r.startswith("syntax error") for r in reasons):
        reasons.insert(0, "syntax error")
    return reasons


def summarize_reasons(reasons: list[str]) -> str:
    """'timeout: test_a, test_b; wrong answer: test_c' from per-cell reasons."""
    grouped: dict[str, list[str]] = {}
    for r in reasons:
        kind, _, where = r.partition(": ")
        grouped.setdefault(kind, [])
        if where and where not in grouped[kind]:
            grouped[kind].append(where)
    return "; ".join(f"{k}: {', '.join(v)}" if v else k for k, v in grouped.items())


# --------------------------------------------------------------------------- the worker

WORKER_CONFIG = """
# --- added by coursegrade for this grading worker
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db")
c.Autograde.autograde_preprocessors = [
    "coursegrade.autograde.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Whatever kernel a submission names, it runs in this worker's python3 kernelspec.
c.GuardedExecute.kernel_name = "python3"
c.Execute.kernel_name = "python3"
"""


class Worker:
    """One grading slot: a scratch course directory and its own gradebook.

    Parameters
    ----------
    course_root : Path
        The course (its ``nbgrader_config.py`` and source directory are copied).
    scratch : Path
        An empty directory for this worker.
    definitions : dict
        ``{assignment: assignment_definition}`` from the course gradebook.
    slot : int
        Worker number; the sandbox uid is ``60000 + slot``.
    sandboxed : bool
        Run kernels in :mod:`coursegrade.sandbox` (else a plain kernel, over ipc too).
    extra_config : str
        Appended to the worker's nbgrader config (e.g. ``c.Execute.timeout = 5``).
    """

    def __init__(self, course_root: Path, scratch: Path, definitions: dict, slot: int = 0,
                 sandboxed: bool = True, extra_config: str = "", limits: dict | None = None):
        self.course = Path(course_root)
        self.path = Path(scratch)
        self.definitions = definitions
        self.sandboxed = sandboxed
        config = (self.course / "nbgrader_config.py").read_text(encoding="utf-8")
        (self.path / "nbgrader_config.py").write_text(config + WORKER_CONFIG + extra_config + "\n", encoding="utf-8")
        for assignment in definitions:  # autograde copies the assignment's other files from the source dir
            src = self.course / "solutions" / assignment
            shutil.copytree(src, self.path / "solutions" / assignment, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__"))
            (self.path / "solutions" / assignment).mkdir(parents=True, exist_ok=True)
        self.runtime = self.path / "run"
        self.runtime.mkdir(mode=0o755, exist_ok=True)
        data = self.path / "share"
        if sandboxed:
            policy = sandbox.default_policy(self.course, self.path, self.runtime, uid=60000 + slot, **(limits or {}))
            sandbox.install_kernelspec(data, policy.save(self.path / "sandbox-policy.json"))
        else:
            sandbox.install_plain_kernelspec(data)
        os.environ.update(JUPYTER_PATH=str(data), JUPYTER_RUNTIME_DIR=str(self.runtime),
                          COURSEGRADE_RUNTIME_DIR=str(self.runtime), JUPYTER_CONFIG_DIR=str(self.path / ".jupyter"),
                          JUPYTER_DATA_DIR=str(data), JUPYTER_PLATFORM_DIRS="1")
        os.environ.pop("COURSE_DB_URL", None)  # the worker writes only its own gradebook
        os.chdir(self.path)
        with gbmod.open_gradebook(self.db_url) as gb:
            for definition in definitions.values():
                gbmod.define_assignment(gb, definition)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.path / 'gradebook.db'}"

    def _run_app(self, app_class, argv: list[str]) -> str | None:
        app = app_class()
        try:
            app.initialize([*argv, "--log-level=ERROR"])
            app.start()
        except SystemExit as exc:
            if exc.code:
                return f"{app_class.__name__} exited with {exc.code}"
        except Exception as exc:  # noqa: BLE001 - reported as the submission's failure
            return f"{type(exc).__name__}: {exc}"
        return None

    def grade(self, student: str, assignment: str, feedback: bool = True) -> dict:
        """Autograde ``<course>/submitted/<student>/<assignment>/``; return the result as plain data."""
        from nbgrader.apps.autogradeapp import AutogradeApp
        from nbgrader.apps.generatefeedbackapp import GenerateFeedbackApp

        started = time.monotonic()
        definition = self.definitions[assignment]
        src = self.course / "submitted" / student / assignment
        result = {"student": student, "assignment": assignment, "sha256": sha256(src), "notebooks": None,
                  "reasons": [], "notes": [], "timestamp": None, "ok": False}
        for d in ("submitted", "autograded", "feedback"):
            shutil.rmtree(self.path / d, ignore_errors=True)
        fatal, notes = check_structure(definition, src)
        result["notes"] = notes
        if fatal:
            result["reasons"] = fatal
            return self._finish(result, started)
        dest = self.path / "submitted" / student / assignment
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        if any(n.startswith("duplicated cells") for n in notes):
            deduplicate(definition, dest)
        EVENTS.clear()
        log = self.course / "autograded" / ".coursegrade-logs" / f"{student}__{assignment}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as stream, contextlib.redirect_stderr(stream):
            error = self._run_app(AutogradeApp, [assignment, f"--student={student}", "--force"])
        events = list(EVENTS)
        auto = self.path / "autograded" / student / assignment
        try:
            with gbmod.open_gradebook(self.db_url) as gb:
                result["notebooks"] = gbmod.submission_grades(gb, assignment, student)
                result["timestamp"] = gb.find_submission(assignment, student).timestamp
        except Exception as exc:  # noqa: BLE001
            error = error or f"no grades ({type(exc).__name__}: {exc})"
        if error or not auto.exists():
            result["notebooks"] = None
            kinds = [k for k, _ in events]
            if "killed kernel" in kinds:
                result["reasons"] = ["killed kernel"]
            elif "timeout" in kinds:
                result["reasons"] = ["timeout"]
            else:
                result["reasons"] = [f"autograde failed: {(error or 'no autograded notebook')[:200]}"]
            return self._finish(result, started)
        reasons = diagnose(definition, auto, result["notebooks"])
        for kind, where in events:
            if kind == "output limit":
                reasons.append(f"output limit: {where}")
        result["reasons"] = reasons
        result["ok"] = True
        # Copy back what the course keeps: the autograded notebook, and the feedback.
        target = self.course / "autograded" / student / assignment
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(auto, target)
        if feedback:
            fb_error = self._run_app(GenerateFeedbackApp, [assignment, f"--student={student}", "--force"])
            fb = self.path / "feedback" / student / assignment
            if fb.exists():
                target = self.course / "feedback" / student / assignment
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(fb, target)
            elif fb_error:
                result["notes"].append(f"no feedback ({fb_error[:100]})")
        return self._finish(result, started)

    def _finish(self, result: dict, started: float) -> dict:
        result["seconds"] = round(time.monotonic() - started, 2)
        if result["timestamp"] is not None:
            result["timestamp"] = result["timestamp"].isoformat()
        for stale in self.runtime.glob("*"):  # logs and sockets of finished kernels
            try:
                stale.unlink()
            except OSError:
                pass
        return result


def grade_safely(worker: Worker, student: str, assignment: str, feedback: bool = True) -> dict:
    try:
        return worker.grade(student, assignment, feedback=feedback)
    except Exception as exc:  # noqa: BLE001 - one bad submission must not stop the worker
        return {"student": student, "assignment": assignment, "notebooks": None, "ok": False, "notes": [],
                "reasons": [f"grader error: {type(exc).__name__}: {exc}"], "timestamp": None, "sha256": None,
                "trace": traceback.format_exc()[-2000:]}
