"""Grading one submission: a function of (submission bytes, assignment) that returns scores, feedback, reasons.

The learner's notebook runs in the sandbox only to define its functions
(:mod:`coursegrade.learner`); the grader executes each graded test cell of
the *source* notebook (visible and hidden tests) in its own process, with the
learner's functions bound to :class:`~coursegrade.channel.RemoteFunction`
stand-ins. So the hidden tests, the references and the expected values never
enter the sandbox; hidden inputs are drawn with a salt the learner never sees
(:mod:`stablegrad.checking.salt`); and a cell's points depend only on what the
learner's functions returned, never on what the notebook printed, patched or
raised. Each forbidden set gets its own sandboxed process and package copy
(:mod:`coursegrade.withhold`), started only when a check calls a function of it.
"""

from __future__ import annotations

import ast
import compileall
import contextlib
import copy
import functools
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
import nbformat
from nbgrader import utils as nbutils

from stablegrad.checking import errors as check_errors
from stablegrad.checking.engine import _forbidden
from stablegrad.checking.salt import SALT_VARIABLE

from . import sandbox, withhold
from .summary import clean
from .channel import LearnerGone, LearnerProcess, RemoteFunction

MAX_BYTES = 8 * 2**20        # a submitted notebook larger than this is not parsed at all
MAX_CELLS = 400
CELL_BUDGET = 3              # a test cell's calls may take this many call timeouts in all
_MARKER = re.compile(r"((?:BEGIN|END) HIDDEN TESTS)")
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.M | re.S)
# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class CellScore:
    """One graded test cell: its points and, when it lost them, why (``reason``) and the check's message."""

    grade_id: str
    points: float
    max_points: float
    reason: str = ""           # "" (passed), "wrong answer", "not implemented", "delegation", "timeout"...
    message: str = ""


@dataclass(frozen=True)
class SubmissionResult:
    """Everything grading one submission produces, as plain data."""

    cells: tuple[CellScore, ...] = ()
    notes: tuple[str, ...] = ()           # for the instructor: tampering, duplicated cells...
    fatal: str = ""                       # why nothing could be graded (corrupt, too large)
    feedback_notebook: dict | None = None  # the learner's notebook with the test results, hidden tests left out
    retry: bool = False                    # the grader failed (a sandbox that did not start): grade it again

    @property
    def score(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def reasons(self) -> list[str]:
        out = [f"{c.reason}: {c.grade_id}" for c in self.cells if c.reason]
        return ([self.fatal] if self.fatal else []) + out


# --------------------------------------------------------------------------- the assignment

@dataclass
class Assignment:
    """The source notebook of an assignment, read once: which cells are answers, tests, set-up."""

    name: str
    source: nbformat.NotebookNode
    tests: dict = field(default_factory=dict)      # grade_id -> (full source, points)
    answers: set = field(default_factory=set)      # grade_ids of answer cells
    setup: dict = field(default_factory=dict)      # grade_id -> source of locked set-up cells (imports)

    @classmethod
    def load(cls, path: Path) -> "Assignment":
        nb = nbformat.read(path, as_version=4)
        self = cls(Path(path).stem, nb)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if not gid or cell.cell_type != "code":
                continue
            if nbutils.is_grade(cell) and not nbutils.is_solution(cell):
                self.tests[gid] = (cell.source, float(cell.metadata['nbgrader'].get('points', 0)))
            elif nbutils.is_solution(cell):
                self.answers.add(gid)
            elif nbutils.is_locked(cell):
                self.setup[gid] = cell.source
        return self

    @functools.cached_property
    def functions(self) -> dict[str, object]:
        """The graded functions the tests call: name -> its engine declaration."""
        declared = _declarations()
        names = set()
        for source, _ in self.tests.values():
            names |= {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        return {n: declared[n] for n in sorted(names & set(declared))}


def _declarations() -> dict:
    import importlib
    import pkgutil

    import stablegrad.checking as checking

    out = {}
    for info in pkgutil.iter_modules(checking.__path__):
        module = importlib.import_module(f"stablegrad.checking.{info.name}")
        for decl in getattr(module, "DECLARATIONS", ()):
            out[decl.name] = decl
    return out


def _visible(source: str) -> str:
    return _HIDDEN.sub("", source).rstrip()


# --------------------------------------------------------------------------- reading a submission

def parse(data: bytes) -> tuple[nbformat.NotebookNode | None, str]:
    """The submitted notebook, or None and why not; sizes are checked before anything is parsed."""
    if len(data) > MAX_BYTES:
        return None, f"too large ({len(data) // 2**20} MB; the limit is {MAX_BYTES // 2**20} MB)"
    try:
        raw = json.loads(data.decode("utf-8", errors="replace"))
        if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
            return None, "corrupt file (not a notebook)"
        if len(raw["cells"]) > MAX_CELLS:
            return None, f"too many cells ({len(raw['cells'])}; the limit is {MAX_CELLS})"
        if not all(isinstance(c, dict) for c in raw["cells"]):
            return None, "corrupt file (a cell that is not a notebook cell)"
        nb = nbformat.from_dict(raw)
        if nb.get("nbformat") != 4:
            nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as exc:  # noqa: BLE001 - whatever fails to read is a corrupt file, never a crash
        return None, f"corrupt file ({type(exc).__name__})"
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            return None, "corrupt file (a cell that is not a notebook cell)"
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else str(source)
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = nbformat.NotebookNode()
    return nb, ""


def _gid(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def structure_notes(assignment: Assignment, nb) -> list[str]:
    """What the instructor should know: deleted, duplicated, edited or re-labelled cells."""
    seen: dict[str, list] = {}
    for cell in nb.cells:
        if (gid := _gid(cell)) is not None:
            seen.setdefault(gid, []).append(cell)
    source_meta = {_gid(c): c.metadata.get("nbgrader", {}) for c in assignment.source.cells if _gid(c)}
    deleted = sorted(g for g in assignment.tests if g not in seen)
    duplicated = sorted(g for g, cells in seen.items() if len(cells) > 1)
    tampered = []
    for gid, cells in seen.items():
        if gid not in source_meta:
            continue
        meta, want = cells[0].get("metadata", {}).get("nbgrader", {}), source_meta[gid]
        flags = ("grade", "solution", "locked", "points")
        relabelled = any(meta.get(k) != want.get(k) for k in flags if k in want or k in meta)
        edited = gid in assignment.tests and _normal(_visible(assignment.tests[gid][0])) != _normal(cells[0].source)
        if relabelled or edited:
            tampered.append(gid)
    notes = []
    if deleted:
        notes.append("test cell deleted: " + ", ".join(clean(g, 60) for g in deleted))
    if duplicated:
        notes.append("duplicated cells: " + ", ".join(clean(g, 60) for g in duplicated))
    if tampered:
        notes.append("tampered cells: " + ", ".join(clean(g, 60) for g in tampered))
    return notes


def _normal(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().split("\n"))


def _body_shape(fn_node) -> str:
    body = fn_node.body[1:] if ast.get_docstring(fn_node) is not None else fn_node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)


def copied_references(assignment: Assignment, nb) -> list[str]:
    """Answers whose function body is the package's reference, statement for statement (comments,
    docstrings and formatting aside): a flag for the instructor to look at, never a score."""
    import inspect
    import textwrap

    flagged = []
    functions = assignment.functions
    for cell in nb.cells:
        if cell.get("cell_type") != "code" or _gid(cell) not in assignment.answers:
            continue
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            decl = functions.get(getattr(node, "name", None))
            if not isinstance(node, ast.FunctionDef) or decl is None:
                continue
            try:
                reference = ast.parse(textwrap.dedent(inspect.getsource(decl.reference))).body[0]
            except (OSError, TypeError, SyntaxError, IndexError):
                continue
            if isinstance(reference, ast.FunctionDef) and _body_shape(reference) == _body_shape(node):
                flagged.append(node.name)
    return flagged


def learner_cells(assignment: Assignment, nb) -> list[dict]:
    """The cells the sandbox runs: answers as written, set-up as released, others for their definitions only.

    Test cells (the submitted ones, whatever their metadata says) never run there.
    """
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = _gid(cell)
        if gid in assignment.tests:
            continue
        if gid in assignment.setup:
            cells.append({"source": _visible(assignment.setup[gid]), "answer": False})
        else:
            cells.append({"source": cell.source, "answer": gid in assignment.answers})
    avoid = set(assignment.functions) | {name for c in cells for name in _defined(c["source"])}
    return [{**c, "avoid": sorted(avoid)} for c in cells]


def _defined(source: str) -> set[str]:
    try:
        return {n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    except (SyntaxError, ValueError):
        return set()


# --------------------------------------------------------------------------- grading

class Runner:
    """How learner processes are started: sandboxed or not, limits, where package copies live."""

    def __init__(self, scratch: Path, *, sandboxed: bool = True, uid: int = 60000,
                 limits: sandbox.Limits | None = None, call_timeout: float = 20.0, run_timeout: float = 60.0):
        self.scratch, self.sandboxed, self.uid = Path(scratch), sandboxed, uid
        self.limits = limits or sandbox.Limits()
        self.call_timeout, self.run_timeout = call_timeout, run_timeout
        self.cgroup = sandbox.Cgroup(f"coursegrade-{os.getpid()}-{uid}", self.limits) if sandboxed else None
        self._packages: dict[str, Path] = {}

    def package(self, decl) -> Path:
        forbid = _forbidden(decl)
        key = withhold.key(forbid)
        if key not in self._packages:
            dest = self.scratch / f"pkg-{key}"
            dest.mkdir(parents=True, exist_ok=True)
            withhold.build(dest, forbid, decl.name)
            sandbox.install_learner(dest)
            # compiled once here: every sandbox then imports the copy from bytecode (it cannot write any)
            compileall.compile_dir(str(dest), quiet=1)
            for root, _, _ in os.walk(dest):
                os.chmod(root, 0o755)
            self._packages[key] = dest
        return self._packages[key]

    def process(self, decl, cells: list[dict], stuck: dict | None = None) -> LearnerProcess:
        argv = sandbox.command(self.package(decl), self.uid, self.limits, sandboxed=self.sandboxed)
        cwd = None
        if not self.sandboxed:   # still never the grader's own folders: an empty one of its own
            (self.scratch / "learners").mkdir(parents=True, exist_ok=True)
            cwd = tempfile.mkdtemp(dir=self.scratch / "learners")
        env = sandbox.ENV if self.sandboxed else {**sandbox.ENV, "HOME": cwd}
        return LearnerProcess(argv, cells, call_timeout=self.call_timeout, run_timeout=self.run_timeout, env=env,
                              preexec=self.cgroup.join if self.cgroup and self.cgroup.dirs else None, cwd=cwd,
                              stuck=stuck)

    def sweep(self) -> None:
        """Kill whatever a submission left running in this slot's cgroup, before the next one starts."""
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()


def _reason(exc: BaseException, message: str) -> str:
    if isinstance(exc, LearnerGone):
        return exc.reason
    if isinstance(exc, check_errors.NotImplementedYetError):
        return "not implemented"
    if isinstance(exc, check_errors.DelegationError):
        return "delegation"
    if isinstance(exc, check_errors.LearnerError) and "MemoryError" in message:
        return "memory limit"
    if isinstance(exc, check_errors.CheckFailure):
        return "wrong answer"
    return f"error ({type(exc).__name__})"


def grade_notebook(assignment: Assignment, data: bytes, runner: Runner, salt: int) -> SubmissionResult:
    """Grade one submitted notebook (its bytes) against ``assignment``."""
    nb, why = parse(data)
    if nb is None:
        return SubmissionResult(fatal=why)
    notes = structure_notes(assignment, nb)
    copies = copied_references(assignment, nb)
    if copies:
        notes.append("copies the package's source (look at it): " + ", ".join(copies))
    cells = learner_cells(assignment, nb)
    processes: dict[str, LearnerProcess] = {}
    stuck: dict = {}            # cells that never finished, shared by the submission's processes
    namespace: dict = {"__name__": "__grader__"}
    for source in assignment.setup.values():
        exec(compile(_visible(source), "<set-up>", "exec"), namespace)
    for name, decl in assignment.functions.items():
        key = withhold.key(_forbidden(decl))
        if key not in processes:
            processes[key] = runner.process(decl, cells, stuck)
        namespace[name] = RemoteFunction(name, processes[key])
    results = []
    previous_salt = os.environ.get(SALT_VARIABLE)
    os.environ[SALT_VARIABLE] = str(salt)
    try:
        for gid, (source, points) in assignment.tests.items():
            for process in processes.values():   # one test cell's calls, together, get a few call timeouts
                process.deadline = time.monotonic() + CELL_BUDGET * runner.call_timeout
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(source, f"<{gid}>", "exec"), namespace)
            except BaseException as exc:  # noqa: BLE001 - a failing test cell is data
                if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, LearnerGone):
                    raise
                message = clean(str(exc), 4000) if not isinstance(exc, check_errors.CheckFailure) else str(exc)[:4000]
                results.append(CellScore(gid, 0.0, points, _reason(exc, message), message))
            else:
                results.append(CellScore(gid, points, points, "", out.getvalue()[-4000:]))
    finally:
        if previous_salt is None:
            os.environ.pop(SALT_VARIABLE, None)
        else:
            os.environ[SALT_VARIABLE] = previous_salt
        for process in processes.values():
            process.close()
        runner.sweep()
    if any(r.reason == "sandbox failed" for r in results):
        return SubmissionResult(notes=tuple(notes), fatal="not graded: a sandbox could not start "
                                "(the grader's problem; run course grade again)", retry=True)
    errors = [e for p in processes.values() for e in p.cell_errors if e]
    if any(e[0] in ("SyntaxError", "IndentationError", "TabError") for e in errors):
        results = [r if not r.reason else CellScore(r.grade_id, r.points, r.max_points,
                                                      "syntax error", r.message) for r in results]
    return SubmissionResult(tuple(results), tuple(notes), "", feedback_notebook(nb, assignment, results))


def feedback_notebook(nb, assignment: Assignment, results: list[CellScore]) -> dict:
    """The learner's notebook with each test cell's visible source and its result; no hidden test, no output
    of the learner's own cells (those never ran here)."""
    nb = copy.deepcopy(nb)
    by_id = {r.grade_id: r for r in results}
    source_cells = {_gid(c): c for c in assignment.source.cells if _gid(c)}
    kept, placed = [], set()
    for cell in nb.cells:
        gid = _gid(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if gid not in assignment.tests:   # markers nbgrader's ClearHiddenTests would choke on
            cell["source"] = _MARKER.sub(lambda m: m.group(1).replace(" TESTS", "-TESTS"), cell.get("source", ""))
        if gid not in source_cells:
            cell.get("metadata", {}).pop("nbgrader", None)      # only the source's cells are graded cells
        elif gid in assignment.answers and gid not in placed:
            cell.metadata["nbgrader"] = copy.deepcopy(source_cells[gid].metadata["nbgrader"])
        if gid in source_cells and gid not in placed:
            placed.add(gid)
            if gid in assignment.tests or gid in assignment.setup:
                cell = copy.deepcopy(source_cells[gid])
                cell.source = _visible(cell.source)
                cell["outputs"], cell["execution_count"] = [], None
        elif gid in source_cells:
            cell.metadata.pop("nbgrader", None)        # a duplicate: graded once
        if gid in by_id and gid in assignment.tests:
            r = by_id[gid]
            cell["outputs"] = ([nbformat.v4.new_output("stream", name="stdout", text=r.message or "passed\n")]
                               if not r.reason else
                               [nbformat.v4.new_output("error", ename=r.reason, evalue=r.message,
                                                       traceback=[r.message])])
        kept.append(cell)
    for gid in assignment.tests:               # a deleted test cell comes back, with its result
        if gid not in placed:
            cell = copy.deepcopy(source_cells[gid])
            cell.source = _visible(cell.source)
            r = by_id[gid]
            cell["outputs"] = [nbformat.v4.new_output("error", ename=r.reason or "passed", evalue=r.message,
                                                      traceback=[r.message])] if r.reason else []
            kept.append(cell)
    nb.cells = kept
    return nb


def nbgrader_grades(assignment: Assignment, definition: dict, result: SubmissionResult) -> list[dict] | None:
    """The result in the form :func:`coursegrade.gradebook.merge` takes (None when nothing was graded)."""
    if result.fatal:
        return None
    by_id = {r.grade_id: r for r in result.cells}
    out = []
    for nb in definition["notebooks"]:
        grades = [{"name": c["name"], "auto_score": by_id[c["name"]].points if c["name"] in by_id else 0.0,
                   "needs_manual_grade": False, "max_score": c["max_score"]} for c in nb["grade_cells"]]
        out.append({"name": nb["name"], "grades": grades, "comments": []})
    return out

