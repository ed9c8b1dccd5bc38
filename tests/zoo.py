"""The submission zoo: good, bad and hostile submissions made from the real releases.

Every exercise gets a correct, a blank (the untouched release) and a wrong submission (the
first mutant of ``tests/mutants/<id>.py``). The hostile cases (timeouts, a kernel that ignores
SIGINT, 50 GB allocations, 200 MB of output, a dying kernel, corrupt JSON, tampered, deleted
and duplicated cells, delegation by every route, monkeypatched checkers and traceback
display, attacks on the gradebook, the solutions and another student's files) are built on
``ex01_chain_rule``, whose three graded functions are worth 4, 3 and 3 points.

Each :class:`Case` says the score it must get and the words its row of ``course grade``'s
summary must contain. :func:`build` writes them into ``submitted/`` of a course copy.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Callable, NamedTuple

import nbformat

import grading

HOSTILE = "ex01_chain_rule"
SB, NG, CN = "stack_backward", "numerical_gradient", "chain_gradient_norms"
T_SB, T_NG, T_CN = "test_stack_backward", "test_numerical_gradient", "test_chain_gradient_norms"
# Printed by attack code that ran; a submission prints LEAK/WROTE only if an attack worked.
RAN = "ATTACK-RAN"


class Case(NamedTuple):
    """One submission and what grading it must give.

    ``reason`` is a regular expression searched in the summary's "why" column ("" means the
    column must be empty); ``check(course_path, autograded_text)`` asserts anything else.
    """

    student: str
    assignment: str
    notebook: object          # a NotebookNode, or bytes written as they are (a corrupt file)
    score: float
    reason: str
    check: Callable | None = None


def load_mutants(assignment: str) -> list:
    path = Path(__file__).parent / "mutants" / f"{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"zoo_mutants_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def _with_cell(nb, grade_id: str, source: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if grading.grade_id(cell) == grade_id:
            cell.source = source
    return nb


def basic_cases(assignment: str, release, source_nb) -> list[Case]:
    """correct, blank and wrong for one exercise."""
    points = grading.max_points(source_nb)
    total = sum(points.values())
    perfect = grading.perfect_answers(source_nb)
    mutant = next(m for m in load_mutants(assignment) if m.edit is None and m.caught_by == "visible")
    lost_cell = grading.graded_by(source_nb)[mutant.cell]
    short = assignment.split("_")[0]
    return [
        Case(f"{short}-correct", assignment, grading.fill(release, perfect), total, ""),
        Case(f"{short}-blank", assignment, release, 0.0, "not implemented"),
        Case(f"{short}-wrong", assignment, grading.fill(release, {**perfect, mutant.cell: mutant.source}),
             total - points[lost_cell], f"wrong answer: {lost_cell}"),
    ]


def hostile_cases(release, source_nb, course_path: Path) -> list[Case]:
    """The hostile zoo on ex01 (10 points: stack_backward 4, numerical_gradient 3, norms 3)."""
    perfect = grading.perfect_answers(source_nb)
    good = grading.fill(release, perfect)
    wrong_sb = next(m for m in load_mutants(HOSTILE) if m.cell == SB and m.edit is None).source
    wrong_cn = next(m for m in load_mutants(HOSTILE) if m.cell == CN and m.edit is None).source

    def answers(**changes):
        return grading.fill(release, {**perfect, **changes})

    def append(cell: str, code: str):
        return answers(**{cell: perfect[cell] + "\n\n" + code})

    root = str(course_path)
    a = HOSTILE
    cases = [
        Case("syntax-error", a, answers(stack_backward="def stack_backward(dout, caches):\n    return (dout,"),
             6.0, r"syntax error"),
        Case("loop-in-function", a, answers(numerical_gradient=(
            "def numerical_gradient(f, x, eps=1e-6):\n    while True:\n        pass\n")),
             7.0, r"timeout: test_numerical_gradient"),
        Case("loop-ignores-sigint", a, append(NG, (
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n")),
             4.0, r"timeout"),
        Case("allocates-50gb", a, answers(chain_gradient_norms=(
            "def chain_gradient_norms(x, params, activation, dout=None):\n"
            "    big = np.ones(50 * 2**30 // 8)\n    return big[:len(params)]\n")),
             7.0, r"memory limit: test_chain_gradient_norms"),
        Case("prints-200mb", a, append(SB, "for _ in range(2000):\n    print('x' * 100_000)\n"),
             10.0, r"output limit"),
        Case("os-exit", a, answers(chain_gradient_norms=(
            "import os\n\ndef chain_gradient_norms(x, params, activation, dout=None):\n    os._exit(1)\n")),
             7.0, r"killed kernel"),
        Case("corrupt-json", a, b'{"cells": [ this is not json', 0.0, r"corrupt file"),
        Case("test-edited", a, _tamper(answers(stack_backward=wrong_sb), T_SB, "assert True"),
             6.0, r"wrong answer: test_stack_backward.*tampered cells: test_stack_backward"),
        Case("test-deleted", a, _delete(answers(chain_gradient_norms=wrong_cn), T_CN),
             7.0, r"wrong answer: test_chain_gradient_norms.*test cell deleted: test_chain_gradient_norms"),
        Case("cells-duplicated", a, _duplicate(good), 10.0, r"duplicated cells"),
        Case("delegates-direct-importlib-sysmodules", a, answers(
            stack_backward="def stack_backward(dout, caches):\n    return layers.stack_backward(dout, caches)\n",
            numerical_gradient=("import importlib\n\ndef numerical_gradient(f, x, eps=1e-6):\n"
                                "    return importlib.import_module('stablegrad.gradcheck')"
                                ".numerical_gradient(f, x, eps)\n"),
            chain_gradient_norms=("import sys\n\ndef chain_gradient_norms(x, params, activation, dout=None):\n"
                                  "    return sys.modules['stablegrad.diagnostics'].chain_gradient_norms("
                                  "x, params, activation, dout)\n")),
             0.0, r"delegation: test_stack_backward, test_numerical_gradient, test_chain_gradient_norms"),
        Case("delegates-alias", a, answers(stack_backward=(
            "from stablegrad.layers import stack_backward as _mine\n\n"
            "def stack_backward(dout, caches):\n    return _mine(dout, caches)\n")),
             6.0, r"delegation: test_stack_backward"),
        Case("patches-numpy-testing", a, answers(stack_backward=wrong_sb + (
            "\nimport numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
            "numpy.testing.assert_array_equal = lambda *a, **k: None\n"
            "np.allclose = lambda *a, **k: True\n")),
             6.0, r"wrong answer: test_stack_backward"),
        Case("patches-checking", a, answers(stack_backward=wrong_sb + (
            "\nimport stablegrad.checking\nchecks.check_stack_backward = lambda *a, **k: None\n"
            "stablegrad.checking.compare = lambda *a, **k: None\n"
            "import stablegrad.checking.engine\nstablegrad.checking.engine.run = lambda *a, **k: None\n")),
             6.0, r"test_stack_backward"),
        Case("patches-traceback-display", a, answers(stack_backward=wrong_sb + (
            "\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "InteractiveShell.showtraceback = lambda self, *a, **k: None\n"
            "InteractiveShell.showsyntaxerror = lambda self, *a, **k: None\n"
            "import sys\nsys.excepthook = lambda *a: None\n")),
             6.0, r"test_stack_backward"),
        Case("writes-gradebook", a, append(SB, _attack_write(
            [f"{root}/gradebook.db", "../../../gradebook.db", "../../../../gradebook.db"],
            "not a database")), 10.0, ""),
        Case("reads-solutions", a, append(SB, _attack_read(
            [f"{root}/solutions/{a}/{a}.ipynb", f"../../../solutions/{a}/{a}.ipynb",
             f"../../../../solutions/{a}/{a}.ipynb"])), 10.0, ""),
        Case("edits-other-student", a, append(SB, _attack_write(
            [f"{root}/submitted/ex01-correct/{a}/{a}.ipynb", f"../../ex01-correct/{a}/{a}.ipynb",
             f"{root}/autograded/ex01-correct/{a}/{a}.ipynb"], "{}")), 10.0, ""),
    ]
    return cases


def _attack_write(paths: list[str], text: str) -> str:
    return (f"print('{RAN}')\nfor _p in {paths!r}:\n    try:\n        with open(_p, 'w') as _f:\n"
            f"            _f.write({text!r})\n        print('WROTE', _p)\n"
            f"    except OSError as _e:\n        print('blocked:', type(_e).__name__)\n")


def _attack_read(paths: list[str]) -> str:
    return (f"print('{RAN}')\nfor _p in {paths!r}:\n    try:\n        with open(_p) as _f:\n"
            f"            print('LEAK', _f.read())\n"
            f"    except OSError as _e:\n        print('blocked:', type(_e).__name__)\n")


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


def write(course_path: Path, case: Case) -> Path:
    target = course_path / "submitted" / case.student / case.assignment / f"{case.assignment}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(case.notebook, bytes):
        target.write_bytes(case.notebook)
    else:
        nbformat.write(case.notebook, target)
    return target


def build(course: grading.CourseCopy, assignments: list[str], hostile: bool = True) -> list[Case]:
    """Release every assignment in the course copy and write the zoo into its submitted/."""
    cases = []
    for assignment in assignments:
        release = course.release(assignment)
        cases += basic_cases(assignment, release, course.source(assignment))
    if hostile:
        cases += hostile_cases(course.release(HOSTILE), course.source(HOSTILE), course.path)
    for case in cases:
        write(course.path, case)
    return cases


def autograded_text(course_path: Path, case: Case) -> str:
    path = course_path / "autograded" / case.student / case.assignment / f"{case.assignment}.ipynb"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def autograded_outputs(course_path: Path, case: Case) -> str:
    """The text every cell of the autograded notebook printed (not its sources)."""
    path = course_path / "autograded" / case.student / case.assignment / f"{case.assignment}.ipynb"
    if not path.exists():
        return ""
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or "")
            texts.extend(str(v) for v in out.get("data", {}).values())
            texts.extend(out.get("traceback", []))
    return "\n".join(texts)


def matches(pattern: str, text: str) -> bool:
    return (text == "") if pattern == "" else re.search(pattern, text) is not None
