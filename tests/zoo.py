"""The submission zoo: good, bad and hostile submissions made from the real releases.

Every exercise gets a correct, a blank (the untouched release) and a wrong submission (the
first mutant of ``tests/mutants/<id>.py``). The hostile cases are built on ``ex01_chain_rule``,
whose three graded functions are worth 4, 3 and 3 points; they cover every attack of issue 12:
display before an error, frames walked for the expected values, patched checks and NumPy, an
ndarray subclass, delegation by every route, files read or written outside the sandbox (the
solutions, the gradebook, other students, ``/root``, ``/home``, PostgreSQL sockets, canary
files), symlinks planted in the sandbox and in ``submitted/``, disk, file-count, memory, output
and time bombs, forged summary rows, tampered metadata, oversized and corrupt notebooks.

Each attack is self-verifying: its function returns the right answer only when the attack
worked (it read the solutions, reached the reference, wrote outside...) and ``None``
otherwise, so a working attack would score more than the :class:`Case` expects. Prints prove
nothing here: the learner's output is dropped, only return values are graded.

Each :class:`Case` says the score it must get and a regular expression its row of ``course
grade``'s summary must match. :func:`build` writes them into ``submitted/`` of a course copy.
"""

from __future__ import annotations

import copy
import glob
import importlib.util
import json
import re
from pathlib import Path
from typing import NamedTuple

import nbformat

import grading

HOSTILE = "ex01_chain_rule"
SB, NG, CN = "stack_backward", "numerical_gradient", "chain_gradient_norms"
T_SB, T_NG, T_CN = "test_stack_backward", "test_numerical_gradient", "test_chain_gradient_norms"
#: Honest students graded in the same run: attacks read (VICTIM_READ) or write (VICTIM_WRITE) their files.
VICTIM_READ, VICTIM_WRITE = "victim-read", "victim-write"
VICTIMS = ("ex01-correct", VICTIM_READ, VICTIM_WRITE)
#: What a forged summary row would start with (the exception-name and cell-id attack).
FORGED = "forged-student"
NOT_TIMEOUT = r"^(?!.*timeout)"
#: The solutions' answers may be the package's own source: the instructor is told, no point is lost.
COPY_NOTE = r"^(copies the package's source \(look at it\): [\w, ]+)?$"


class Link(NamedTuple):
    """A symlink written into ``submitted/`` instead of a file or folder (``level``: notebook, assignment,
    student or timestamp)."""

    target: Path
    level: str = "notebook"


class Case(NamedTuple):
    """One submission and what grading it must give.

    ``notebook`` is a NotebookNode, bytes written as they are (a corrupt file), or a :class:`Link`;
    ``timestamp`` (optional) is the submission's ``timestamp.txt``: bytes or a :class:`Link`.
    ``reason`` is a regular expression searched in the summary's "why" column ("" means the
    column must be empty). ``seconds`` bounds the time grading it may take (from the status file).
    """

    student: str
    assignment: str
    notebook: object
    score: float
    reason: str
    timestamp: object = None
    seconds: float | None = None
    needs_cgroup: bool = False     # the score holds only where the sandbox has a cgroup (memory for all)


class Targets(NamedTuple):
    """What the attacks aim at: the course copy, the checkout, canary files outside the course."""

    course: Path
    repo: Path
    canaries: tuple[Path, ...]


def load_mutants(assignment: str) -> list:
    path = Path(__file__).parent / "mutants" / f"{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"zoo_mutants_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def basic_cases(assignment: str, release, source_nb) -> list[Case]:
    """correct, blank and wrong for one exercise."""
    points = grading.max_points(source_nb)
    total = sum(points.values())
    perfect = grading.perfect_answers(source_nb)
    mutant = next(m for m in load_mutants(assignment) if m.edit is None and m.caught_by == "visible")
    lost_cell = grading.graded_by(source_nb)[mutant.cell]
    short = assignment.split("_")[0]
    return [
        Case(f"{short}-correct", assignment, grading.fill(release, perfect), total, COPY_NOTE),
        Case(f"{short}-blank", assignment, release, 0.0, "not implemented"),
        Case(f"{short}-wrong", assignment, grading.fill(release, {**perfect, mutant.cell: mutant.source}),
             total - points[lost_cell], f"wrong answer: {lost_cell}"),
    ]


# --------------------------------------------------------------------------- attack sources

def honest(perfect: dict, name: str) -> str:
    """The correct answer, renamed ``_honest_<name>``: what an attack returns when it worked."""
    return perfect[name].replace(f"def {name}(", f"def _honest_{name}(")


def _sb(perfect: dict, body: str) -> str:
    """An answer cell for stack_backward: the honest answer under another name, then the attack."""
    return honest(perfect, SB) + "\n\n" + body.strip() + "\n"


def _steals(perfect: dict, paths: list[str], sockets: tuple = ()) -> str:
    """stack_backward built from a file read outside the sandbox (the solutions' or a student's cell), or the
    honest answer if any file or socket was reached at all; None when nothing was."""
    return _sb(perfect, f'''
import json, socket
_PATHS = {paths!r}
_SOCKETS = {list(sockets)!r}

def _stolen():
    for path in _PATHS:
        try:
            with open(path, "rb") as f:
                data = f.read(2**23)
        except OSError:
            continue
        try:
            for cell in json.loads(data)["cells"]:
                source = "".join(cell["source"])
                if "def stack_backward" in source:
                    ns = {{"np": np, "layers": layers}}
                    exec(source, ns)
                    return ns["stack_backward"]
        except Exception:
            pass
        return _honest_stack_backward          # the file was read: the attack worked
    for where in _SOCKETS:
        try:
            if isinstance(where, str):
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(1)
                s.connect(where)
            else:
                s = socket.create_connection(tuple(where), timeout=1)
            return _honest_stack_backward
        except OSError:
            pass
    return None

def stack_backward(dout, caches):
    found = _stolen()
    return None if found is None else found(dout, caches)
''')


def _writes(perfect: dict, paths: list[str]) -> str:
    """stack_backward that is right only if it could write, chmod or re-date a file outside the sandbox."""
    return _sb(perfect, f'''
import os
_DONE = []
for _p in {paths!r}:
    for _how in ("append", "chmod", "utime", "truncate"):
        try:
            if _how == "append":
                with open(_p, "ab") as _f:
                    _f.write(b"owned")
            elif _how == "chmod":
                os.chmod(_p, 0o666)
            elif _how == "utime":
                os.utime(_p, (0, 0))
            else:
                os.truncate(_p, 0)
            _DONE.append((_p, _how))
        except OSError:
            pass

def stack_backward(dout, caches):
    return _honest_stack_backward(dout, caches) if _DONE else None
''')


def _plants_symlinks(perfect: dict, targets: list[str]) -> str:
    """Symlinks to the canaries, a victim and the solutions planted under every name the grader might write or
    copy back, written through; the answers stay right (nothing from the sandbox may be followed)."""
    names = [f"{HOSTILE}.ipynb", "timestamp.txt", "gradebook.db", "feedback", "autograded", f"{HOSTILE}.html",
             ".coursegrade-status.json", "grades.csv", "nbgrader_config.py"]
    return _sb(perfect, f'''
import os
for _dir in ("/home/learner", "/tmp", "."):
    for _k, _target in enumerate({targets!r}):
        for _name in {names!r}:
            _link = os.path.join(_dir, f"{{_k}}-{{_name}}" if _k else _name)
            try:
                os.symlink(_target, _link)
            except OSError:
                continue
            try:
                with open(_link, "w") as _f:
                    _f.write("{{}}")
            except OSError:
                pass
    try:
        os.symlink("/", os.path.join(_dir, "root-of-host"))
    except OSError:
        pass

def stack_backward(dout, caches):
    return _honest_stack_backward(dout, caches)
''')


def hostile_cases(release, source_nb, targets: Targets) -> list[Case]:
    """The hostile zoo on ex01 (10 points: stack_backward 4, numerical_gradient 3, norms 3)."""
    perfect = grading.perfect_answers(source_nb)
    good = grading.fill(release, perfect)
    wrong_sb = next(m for m in load_mutants(HOSTILE) if m.cell == SB and m.edit is None).source
    wrong_cn = next(m for m in load_mutants(HOSTILE) if m.cell == CN and m.edit is None).source
    a = HOSTILE
    course, repo = str(targets.course), str(targets.repo)
    canaries = [str(c) for c in targets.canaries]
    nb_path = f"{a}/{a}.ipynb"

    def answers(**changes):
        return grading.fill(release, {**perfect, **changes})

    def sb(body: str):
        return answers(stack_backward=_sb(perfect, body))

    def delegates(name: str, body: str):
        return answers(**{name: body.strip() + "\n"})

    home_files = sorted({*glob.glob("/root/.*rc"), *glob.glob("/root/.profile"), *glob.glob("/home/*/.*rc"),
                         *glob.glob("/home/*/.profile"), "/root/.bashrc", "/root/.ssh/id_rsa"})
    lost_sb = rf"wrong answer: {T_SB}$"
    cases = [
        # ------------------------------------------------------------------ errors, loops, resources
        Case("syntax-error", a, answers(stack_backward="def stack_backward(dout, caches):\n    return (dout,"),
             6.0, r"syntax error"),
        Case("loop-in-function", a, answers(numerical_gradient=(
            "def numerical_gradient(f, x, eps=1e-6):\n    while True:\n        pass\n")),
             7.0, rf"^timeout: {T_NG}$"),
        # A loop at the top of an answer cell, deaf to every signal: only the functions of that cell lose.
        Case("loop-in-cell-ignores-signals", a, answers(numerical_gradient=perfect[NG] + (
            "\nimport signal\nfor _s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGHUP):\n"
            "    signal.signal(_s, signal.SIG_IGN)\nwhile True:\n    pass\n")),
             7.0, rf"^timeout: {T_NG}$"),
        Case("allocates-50gb", a, answers(chain_gradient_norms=(
            "def chain_gradient_norms(x, params, activation, dout=None):\n"
            "    big = np.ones(50 * 2**30 // 8)\n    return big[:len(params)]\n")),
             7.0, rf"^memory limit: {T_CN}$"),
        # 4 processes of 1 GB each: the sandbox's memory is limited as a whole, so they cannot all live.
        Case("forks-4x1gb", a, sb('''
import os, time

def stack_backward(dout, caches):
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                block = np.ones(2**27)         # 1 GB, touched
                time.sleep(2)
                os._exit(0 if block[-1] == 1 else 1)
            except BaseException:
                os._exit(1)
        pids.append(pid)
    held = all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    return _honest_stack_backward(dout, caches) if held else None
'''), 6.0, rf"^(timeout|wrong answer|killed kernel|memory limit): {T_SB}$", needs_cgroup=True),
        # 1 GB and 20,000 files in the working folder (at the top of a cell: in every sandboxed process).
        Case("fills-disk-and-inodes", a, sb('''
import os
_written = 0
for _where in ("/home/learner/big.bin", "/tmp/big.bin", "big2.bin"):
    try:
        with open(_where, "wb") as _f:
            for _ in range(1024):
                _f.write(b"x" * 2**20)
                _written += 2**20
    except OSError:
        pass
for _i in range(20000):
    try:
        open(f"/home/learner/f{_i}.ipynb", "w").close()
    except OSError:
        break

def stack_backward(dout, caches):
    return None if _written >= 2**30 else _honest_stack_backward(dout, caches)
'''), 10.0, "", seconds=30.0),
        Case("prints-200mb", a, answers(stack_backward=perfect[SB] + (
            "\nimport os, sys\nfor _ in range(2000):\n    print('x' * 100_000)\n"
            "for _fd in (1, 2):\n    os.write(_fd, b'{\"value\": null}\\n' * 1000)\n")),
             10.0, ""),
        Case("returns-100mb", a, answers(chain_gradient_norms=(
            "def chain_gradient_norms(x, params, activation, dout=None):\n    return np.ones(7_000_000)\n")),
             7.0, rf"^output limit: {T_CN}$"),
        Case("os-exit", a, answers(chain_gradient_norms=(
            "import os\n\ndef chain_gradient_norms(x, params, activation, dout=None):\n    os._exit(1)\n")),
             7.0, rf"^killed kernel: {T_CN}$"),
        Case("keyboard-interrupt", a, answers(
            stack_backward="def stack_backward(dout, caches):\n    raise KeyboardInterrupt\n",
            numerical_gradient=perfect[NG] + "\nraise KeyboardInterrupt\n",
            chain_gradient_norms="def chain_gradient_norms(x, params, activation, dout=None):\n"
                                 "    raise SystemExit(0)\n"),
             3.0, NOT_TIMEOUT + rf".*{T_SB}.*{T_CN}"),
        # ------------------------------------------------------------------ the notebook itself
        Case("corrupt-json", a, b'{"cells": [ this is not json', 0.0, r"^corrupt file"),
        Case("deep-json", a, b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 0.0, r"^corrupt file"),
        Case("too-large-80mb", a, b'{"cells": [], "pad": "' + b"x" * (80 * 2**20) + b'"}', 0.0, r"^too large",
             seconds=5.0),
        Case("too-many-cells", a, (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ['
                                   + b",".join([b'{"cell_type": "raw", "metadata": {}, "source": ""}'] * 100_000)
                                   + b"]}"), 0.0, r"^too many cells", seconds=5.0),
        Case("test-edited", a, _tamper(answers(stack_backward=wrong_sb), T_SB, "assert True"),
             6.0, rf"^wrong answer: {T_SB}; tampered cells: {T_SB}$"),
        Case("test-deleted", a, _delete(answers(chain_gradient_norms=wrong_cn), T_CN),
             7.0, rf"^wrong answer: {T_CN}; test cell deleted: {T_CN}$"),
        Case("cells-duplicated", a, _duplicate(good), 10.0, r"^duplicated cells: "),
        # Metadata flipped on all three test cells; the one marked as a solution holds a right
        # chain_gradient_norms, which would count if a submitted test cell ever ran.
        Case("test-metadata-flipped", a, _flip(answers(chain_gradient_norms=(
            "def chain_gradient_norms(x, params, activation, dout=None):\n    return None\n")),
            {T_SB: {"grade": False}, T_NG: {"points": 100}, T_CN: {"solution": True}},
            {T_CN: perfect[CN]}),
             7.0, rf"^wrong answer: {T_CN}; tampered cells: {T_SB}, {T_NG}, {T_CN}$"),
        # An exception class and cell ids whose names hold escapes and a newline + a forged summary row.
        Case("forges-summary-rows", a, _evil_ids(sb(f'''
Forged = type("\\x1b[2J\\x1b[31mEvil\\n{FORGED}  {a}  10/10  \\x1b[0m", (Exception,), {{}})

def stack_backward(dout, caches):
    raise Forged("\\x1b[1m\\r\\n{FORGED}  {a}  10/10")
''')), 6.0, rf"^wrong answer: {T_SB}; duplicated cells: "),
        # ------------------------------------------------------------------ the grader's outputs and checks
        Case("display-then-raise", a, sb('''
import sys

def stack_backward(dout, caches):
    print("passed")
    sys.stdout.write("passed\\n")
    try:
        from IPython.display import display
        display({"text/plain": "passed"}, raw=True)
    except Exception:
        pass
    raise AssertionError("after the output")
'''), 6.0, lost_sb),
        Case("walks-frames-for-expected", a, sb('''
import gc, sys

def _found():
    names = ("expected", "want", "reference", "_expected", "ref", "truth")
    frame = sys._getframe(1)
    while frame is not None:
        if any(n in frame.f_locals for n in names):
            return True
        frame = frame.f_back
    return any(isinstance(o, dict) and any(n in o for n in names[:3]) for o in gc.get_objects())

def stack_backward(dout, caches):
    return _honest_stack_backward(dout, caches) if _found() else None
'''), 6.0, lost_sb),
        Case("patches-numpy-and-reload", a, answers(stack_backward=wrong_sb + '''
import importlib, numpy, numpy.testing
importlib.reload = lambda module: module
numpy.abs = numpy.absolute = lambda *a, **k: numpy.zeros(numpy.shape(a[0]))
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda a, b, *r, **k: numpy.ones(numpy.broadcast(a, b).shape, bool)
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
numpy.max = numpy.amax = lambda *a, **k: 0.0
'''), 6.0, lost_sb),
        Case("patches-checking-and-channel", a, answers(stack_backward=wrong_sb + '''
import sys
import stablegrad.checking, stablegrad.checking.guard, stablegrad.checking.encoding
for _name in ("compare", "check_stack_backward", "engine", "fresh", "chain_rule", "comparison"):
    setattr(stablegrad.checking, _name, lambda *a, **k: None)
_real_run = stablegrad.checking.guard.run_learner
def _quiet_run(func, *args, **kwargs):
    outcome = _real_run(func, *args, **kwargs)
    return outcome._replace(raised=None) if hasattr(outcome, "_replace") else outcome
stablegrad.checking.guard.run_learner = _quiet_run
_main = sys.modules.get("__main__")
if _main is not None and hasattr(_main, "call"):
    _real_call = _main.call
    def _call(request, namespace):
        reply = _real_call(request, namespace)
        reply["raised"], reply["modified"], reply["shared"], reply["warnings"] = None, [], [], []
        return reply
    _main.call = _call
'''), 6.0, lost_sb),
        Case("ndarray-subclass-zero-diff", a, sb('''
class _Zero(np.ndarray):
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        shape = np.broadcast(*[np.asarray(i) for i in inputs if hasattr(i, "shape")]).shape
        return np.zeros(shape)
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return np.zeros(self.shape)
    __rsub__ = __sub__

def stack_backward(dout, caches):
    dx, grads = _honest_stack_backward(dout, caches)
    zero = lambda a: np.zeros_like(a).view(_Zero)
    return zero(dx), [(zero(dW), zero(db)) for dW, db in grads]
'''), 6.0, lost_sb),
        # ------------------------------------------------------------------ delegation, by every route
        Case("delegates-direct-importlib-sysmodules", a, answers(
            stack_backward="def stack_backward(dout, caches):\n    return layers.stack_backward(dout, caches)\n",
            numerical_gradient=("import importlib\n\ndef numerical_gradient(f, x, eps=1e-6):\n"
                                "    return importlib.import_module('stablegrad.gradcheck')"
                                ".numerical_gradient(f, x, eps)\n"),
            chain_gradient_norms=("import sys\nimport stablegrad.diagnostics\n\n"
                                  "def chain_gradient_norms(x, params, activation, dout=None):\n"
                                  "    return sys.modules['stablegrad.diagnostics'].chain_gradient_norms("
                                  "x, params, activation, dout)\n")),
             0.0, rf"^delegation: {T_SB}, {T_NG}, {T_CN}$"),
        Case("delegates-alias", a, delegates(SB, '''
from stablegrad.layers import stack_backward as _mine

def stack_backward(dout, caches):
    return _mine(dout, caches)
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-setprofile-toggled", a, delegates(SB, '''
import sys

def stack_backward(dout, caches):
    saved = sys.getprofile()
    sys.setprofile(None)
    try:
        return layers.stack_backward(dout, caches)
    finally:
        sys.setprofile(saved)
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-setprofile-ctypes", a, delegates(SB, '''
import ctypes

def stack_backward(dout, caches):
    ctypes.pythonapi.PyEval_SetProfile(None, None)
    ctypes.pythonapi.PyEval_SetTrace(None, None)
    return layers.stack_backward(dout, caches)
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-setprofile-replaced", a, delegates(SB, '''
import sys, threading
sys.setprofile = threading.setprofile = lambda *a, **k: None
sys.settrace = lambda *a, **k: None

def stack_backward(dout, caches):
    return layers.stack_backward(dout, caches)
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-start-new-thread", a, delegates(SB, '''
import _thread, time

def stack_backward(dout, caches):
    box = []
    def work():
        try:
            box.append(("ok", layers.stack_backward(dout, caches)))
        except BaseException as exc:
            box.append(("err", exc))
    _thread.start_new_thread(work, ())
    while not box:
        time.sleep(0.001)
    kind, value = box[0]
    if kind == "err":
        raise value
    return value
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-pool-started-at-import", a, delegates(SB, '''
from concurrent.futures import ThreadPoolExecutor
_pool = ThreadPoolExecutor(2)
_pool.submit(int).result()

def stack_backward(dout, caches):
    return _pool.submit(layers.stack_backward, dout, caches).result()
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-os-fork", a, delegates(SB, '''
import os, pickle

def stack_backward(dout, caches):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = ("ok", layers.stack_backward(dout, caches))
        except BaseException as exc:
            out = ("err", exc)
        with os.fdopen(w, "wb") as f:
            pickle.dump(out, f)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        kind, value = pickle.load(f)
    os.waitpid(pid, 0)
    if kind == "err":
        raise value
    return value
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-multiprocessing-fork", a, delegates(NG, '''
import multiprocessing
from stablegrad import gradcheck

def _child(conn, f, x, eps):
    try:
        conn.send(("ok", gradcheck.numerical_gradient(f, x, eps)))
    except BaseException as exc:
        conn.send(("err", exc))

def numerical_gradient(f, x, eps=1e-6):
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    p = ctx.Process(target=_child, args=(there, f, x, eps))
    p.start()
    kind, value = here.recv()
    p.join()
    if kind == "err":
        raise value
    return value
'''), 7.0, rf"^delegation: {T_NG}$"),
        Case("delegates-code-replace", a, delegates(CN, '''
from stablegrad import diagnostics

_ref = diagnostics.chain_gradient_norms
_copy = type(_ref)(_ref.__code__.replace(co_firstlineno=1, co_filename="<my notebook>", co_name="mine"),
                   _ref.__globals__, "chain_gradient_norms", _ref.__defaults__)

def chain_gradient_norms(x, params, activation, dout=None):
    return _copy(x, params, activation, dout)
'''), 7.0, rf"^delegation: {T_CN}$"),
        Case("delegates-getsource-exec", a, delegates(SB, '''
import inspect

_ns = dict(vars(layers))
exec(compile(inspect.getsource(layers.stack_backward), "<my notebook>", "exec"), _ns)

def stack_backward(dout, caches):
    return _ns["stack_backward"](dout, caches)
'''), 6.0, rf"^delegation: {T_SB}$"),
        Case("delegates-package-file-exec", a, delegates(SB, '''
_ns = {"__name__": "mine"}
exec(compile(open(layers.__file__).read(), "<my notebook>", "exec"), _ns)

def stack_backward(dout, caches):
    return _ns["stack_backward"](dout, caches)
'''), 6.0, rf"^delegation: {T_SB}$"),
        # ------------------------------------------------------------------ files outside the sandbox
        Case("steals-checkout-solutions", a, answers(stack_backward=_steals(perfect, [
            f"{repo}/solutions/{nb_path}", f"/proc/1/root{repo}/solutions/{nb_path}",
            f"/proc/self/root{repo}/solutions/{nb_path}", f"{repo}/src/stablegrad/checking/chain_rule.py",
            f"{repo}/exercises/../solutions/{nb_path}"])), 6.0, lost_sb),
        Case("steals-course-solutions", a, answers(stack_backward=_steals(perfect, [
            f"{course}/solutions/{nb_path}", f"../../../solutions/{nb_path}", f"../../../../solutions/{nb_path}",
            f"{course}/source/{nb_path}", f"{course}/release/{nb_path}"])), 6.0, lost_sb),
        Case("steals-other-student", a, answers(stack_backward=_steals(perfect, [
            f"{course}/submitted/{VICTIM_READ}/{nb_path}", f"{course}/autograded/{VICTIM_READ}/{nb_path}",
            f"../../{VICTIM_READ}/{nb_path}", f"../{VICTIM_READ}/{nb_path}",
            f"{course}/submitted/ex01-correct/{nb_path}"])), 6.0, lost_sb),
        Case("steals-gradebook", a, answers(stack_backward=_steals(perfect, [
            f"{course}/gradebook.db", f"{repo}/gradebook.db", "../../../gradebook.db", "../../../../gradebook.db",
            f"{course}/autograded/.coursegrade-status.json", f"{course}/grades.csv"])), 6.0, lost_sb),
        Case("steals-root-and-home", a, answers(stack_backward=_steals(perfect, home_files)), 6.0, lost_sb),
        Case("reaches-postgres-sockets", a, answers(stack_backward=_steals(perfect, [], sockets=(
            "/run/postgresql/.s.PGSQL.5432", "/var/run/postgresql/.s.PGSQL.5432", "/tmp/.s.PGSQL.5432",
            ("127.0.0.1", 5432), ("::1", 5432)))), 6.0, lost_sb),
        # Every readable file of the sandbox but the system and Python's libraries (4 s at most) searched for
        # hidden tests, solutions or a canary.
        Case("searches-the-sandbox", a, sb(r'''
import os, re, time

# ex01's hidden tests, its solution's body, the canaries (nbgrader's own hidden-test markers are in its docs)
_WANTED = re.compile(rb"_checks\.(stack|chain)_case\(|hidden_rng\(\d+\)|canary-[0-9a-f]{48}|d = dz @ W\.T")

def _search(limit=4.0):
    start = time.monotonic()
    for root, dirs, files in os.walk("/"):
        system = root.startswith(("/usr", "/proc", "/sys", "/dev")) or "/lib/python3" in root
        if system or time.monotonic() - start > limit:
            dirs[:] = []
            continue
        for name in files:
            if not name.endswith((".ipynb", ".py", ".db", ".txt", ".json", ".csv", ".html")):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    if _WANTED.search(f.read(2**20)):
                        return path
            except OSError:
                pass
    return None

def stack_backward(dout, caches):
    return _honest_stack_backward(dout, caches) if _search() else None
'''), 6.0, lost_sb),
        Case("reads-canaries", a, answers(stack_backward=_steals(perfect, canaries)), 6.0, lost_sb),
        Case("writes-canaries-gradebook-victim", a, answers(stack_backward=_writes(perfect, [
            *canaries, f"{course}/gradebook.db", f"{course}/submitted/{VICTIM_WRITE}/{nb_path}",
            f"{course}/autograded/{VICTIM_WRITE}/{nb_path}", f"../../{VICTIM_WRITE}/{nb_path}",
            f"{course}/solutions/{nb_path}", f"{course}/nbgrader_config.py"])), 6.0, lost_sb),
        Case("plants-symlinks", a, answers(stack_backward=_plants_symlinks(perfect, [
            *canaries, f"{course}/submitted/{VICTIM_WRITE}/{nb_path}", f"{course}/solutions/{nb_path}",
            f"{course}/gradebook.db"])), 10.0, ""),
        # ------------------------------------------------------------------ symlinks in submitted/
        Case("notebook-links-solutions", a, Link(targets.course / "solutions" / nb_path), 0.0,
             r"^\S+\.ipynb is not a regular file"),
        Case("notebook-links-victim", a, Link(targets.course / "submitted" / VICTIM_WRITE / nb_path), 0.0,
             r"^\S+\.ipynb is not a regular file"),
        Case("folder-links-solutions", a, Link(targets.course / "solutions" / a, level="assignment"), 0.0,
             rf"^submitted/folder-links-solutions/{a} is a symlink \(not followed\)$"),
        Case("student-links-victim", a, Link(targets.course / "submitted" / VICTIM_READ, level="student"), 0.0,
             r"^submitted/student-links-victim is a symlink \(not followed\)$"),
        Case("timestamp-links-canary", a, good, 10.0, r"^timestamp\.txt ignored",
             timestamp=Link(targets.canaries[0], level="timestamp")),
        # ------------------------------------------------------------------ honest victims
        Case(VICTIM_READ, a, good, 10.0, ""),
        Case(VICTIM_WRITE, a, good, 10.0, "", timestamp=b"2026-01-15 10:00:00"),
    ]
    return cases


# --------------------------------------------------------------------------- notebook edits

def _tamper(nb, test_id: str, source: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if grading.grade_id(cell) == test_id:
            cell.source = source
    return nb


def _delete(nb, test_id: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if grading.grade_id(c) != test_id]
    return nb


def _duplicate(nb):
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        twin = copy.deepcopy(cell)
        if "id" in twin:
            twin["id"] = f"{twin['id']}-twin"
        cells.append(twin)
    nb.cells = cells
    return nb


def _flip(nb, flags: dict[str, dict], sources: dict[str, str]):
    """Test cells with their nbgrader metadata changed (and, for some, their source)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        gid = grading.grade_id(cell)
        if gid in flags:
            cell.metadata["nbgrader"].update(flags[gid])
        if gid in sources:
            cell.source = sources[gid]
    return nb


def _evil_ids(nb):
    """Two code cells sharing a grade_id that holds escapes, a newline and a forged row."""
    nb = copy.deepcopy(nb)
    gid = f"\x1b[2J\x1b[H\x1b]0;owned\x07\n{FORGED}  {HOSTILE}  10/10  \u202e"
    for k in range(2):
        cell = nbformat.v4.new_code_cell("x = 1")
        cell.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": gid,
                                     "schema_version": 3, "task": False}
        cell["id"] = f"evil-{k}"
        nb.cells.append(cell)
    return nb


# --------------------------------------------------------------------------- writing the zoo

def write(course_path: Path, case: Case) -> None:
    folder = course_path / "submitted" / case.student / case.assignment
    target = folder / f"{case.assignment}.ipynb"
    if isinstance(case.notebook, Link) and case.notebook.level == "student":
        folder.parent.parent.mkdir(parents=True, exist_ok=True)
        folder.parent.symlink_to(case.notebook.target, target_is_directory=True)
        return
    if isinstance(case.notebook, Link) and case.notebook.level == "assignment":
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(case.notebook.target, target_is_directory=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(case.notebook, Link):
        target.symlink_to(case.notebook.target)
    elif isinstance(case.notebook, bytes):
        target.write_bytes(case.notebook)
    else:
        nbformat.write(case.notebook, target)
    if isinstance(case.timestamp, Link):
        (folder / "timestamp.txt").symlink_to(case.timestamp.target)
    elif case.timestamp is not None:
        (folder / "timestamp.txt").write_bytes(case.timestamp)


def build(course: grading.CourseCopy, assignments: list[str], canaries: tuple[Path, ...] = (),
          hostile: bool = True) -> list[Case]:
    """Release every assignment in the course copy and write the zoo into its submitted/.

    ex01 gets correct, blank and wrong; the other exercises a correct submission each (one run grades
    several assignments at once); their blank releases and wrong answers go through the same
    ``course grade`` path in tests/test_exercises.py.
    """
    cases = []
    for assignment in assignments:
        release = course.release(assignment)
        basic = basic_cases(assignment, release, course.source(assignment))
        cases += basic if assignment == HOSTILE else basic[:1]
    if hostile:
        targets = Targets(course.path.resolve(), grading.REPO_ROOT.resolve(), tuple(canaries))
        cases += hostile_cases(course.release(HOSTILE), course.source(HOSTILE), targets)
    # Honest students first, so that the links to them resolve when they are written.
    for case in sorted(cases, key=lambda c: isinstance(c.notebook, Link)):
        write(course.path, case)
    return cases


def autograded_text(course_path: Path, case: Case) -> str:
    """Every string of the autograded notebook (sources and outputs), decoded from its JSON."""
    path = course_path / "autograded" / case.student / case.assignment / f"{case.assignment}.ipynb"
    if not path.is_file() or path.is_symlink():
        return ""
    strings = []

    def walk(x):
        if isinstance(x, str):
            strings.append(x)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)

    walk(json.loads(path.read_text(encoding="utf-8")))
    return "\n".join(strings)


def matches(pattern: str, text: str) -> bool:
    return (text == "") if pattern == "" else re.search(pattern, text) is not None


def notebook_text(case: Case) -> str:
    """The submission as text (for "did the student write this line themselves")."""
    if isinstance(case.notebook, bytes):
        return case.notebook[:2**20].decode("utf-8", "replace")
    if isinstance(case.notebook, Link):
        return ""
    return json.dumps(case.notebook)
