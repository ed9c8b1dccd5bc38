"""The package as a grading sandbox sees it: the graded function's reference is not there at all.

While a learner's ``stack_backward`` is graded, the sandbox that runs it
imports a copy of :mod:`stablegrad` in which ``layers.stack_backward`` (and
every other function its declaration forbids, with the private helpers they
call) has lost its body: calling it raises :class:`WithheldError`. No
profiler, thread or fork can reach code that is not in the process, so
delegation is impossible by construction rather than detected.

The copy also leaves the checks out: ``stablegrad.checking`` keeps only the
plain-data encoding, the records that cases pass and the learner's side of a
call (:mod:`stablegrad.checking.guard`); its other modules (references,
learner-style sources, mistakes, expected values) are stubs that raise.

Functions other graded functions may use stay: each distinct forbidden set
gets its own copy (``ex01`` needs two: ``chain_gradient_norms`` may call
``layers.stack_backward``, which ``stack_backward``'s copy withholds).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import stablegrad

PACKAGE = Path(stablegrad.__file__).resolve().parent
#: What a sandbox may import from stablegrad.checking: no reference, no expected value, no mistake.
CHECKING_KEPT = ("encoding.py", "records.py", "guard.py")
WITHHELD_ERROR = "stablegrad._withheld.WithheldError"

_WITHHELD_MODULE = '''"""Raised by a package function whose body is withheld while a learner's function is graded."""


class WithheldError(RuntimeError):
    """The grading sandbox does not contain this function: the answer must not call it."""

    def __init__(self, name: str, graded: str):
        super().__init__(f"{name} is withheld while {graded} is graded")
        self.name, self.graded = name, graded

    def __reduce__(self):   # pickled by a forked child (os.fork, multiprocessing) and raised in its parent
        return type(self), (self.name, self.graded)


def withheld(name: str, graded: str):
    raise WithheldError(name, graded)
'''

_CHECKING_STUB = '''"""The checks run outside the grading sandbox: only the plain-data encoding is here."""


def __getattr__(name):
    raise AttributeError(f"stablegrad.checking.{name} is not available while grading: "
                         "the checks run outside your notebook")
'''

_TOPIC_STUB = "from stablegrad.checking import __getattr__  # noqa: F401 - every name raises\n"


def _target(fn: Callable) -> tuple[str, str, int] | None:
    """(module, qualname, first line) of a package function, or None when it is not the package's."""
    fn = inspect.unwrap(fn)
    module = getattr(fn, "__module__", "") or ""
    code = getattr(fn, "__code__", None)
    if code is None or not module.startswith("stablegrad.") or module.startswith("stablegrad.checking"):
        return None
    return module, fn.__qualname__, code.co_firstlineno


def _body(name: str, graded: str) -> list[ast.stmt]:
    return ast.parse(f"__import__('stablegrad._withheld', fromlist=['withheld']).withheld({name!r}, {graded!r})").body


class _Withhold(ast.NodeTransformer):
    """Replace the bodies of the named functions (and lambdas starting on the given lines)."""

    def __init__(self, module: str, names: set[str], lambda_lines: set[int], graded: str):
        self.module, self.names, self.lambda_lines, self.graded = module, names, lambda_lines, graded
        self.done: set[str] = set()

    def visit_FunctionDef(self, node):
        if node.name in self.names:
            self.done.add(node.name)
            doc = [node.body[0]] if ast.get_docstring(node) is not None else []
            node.body = doc + _body(f"{self.module}.{node.name}", self.graded)
            return node
        return self.generic_visit(node)

    def visit_Lambda(self, node):
        if node.lineno in self.lambda_lines:
            self.done.add(f"<lambda>:{node.lineno}")
            call = _body(f"{self.module}.<lambda> (line {node.lineno})", self.graded)[0].value
            node.args = ast.arguments(posonlyargs=[], args=[], vararg=ast.arg("args"), kwonlyargs=[],
                                      kw_defaults=[], kwarg=ast.arg("kwargs"), defaults=[])
            node.body = call
            return node
        return self.generic_visit(node)


def _private_helpers(tree: ast.Module, names: set[str]) -> set[str]:
    """The named functions, plus the module's ``_private`` functions that only they use (transitively).

    A helper that other code of the module also uses stays: withholding it would break functions the
    answer may call (``network.train`` and ``network.mlp_loss_and_grads`` share their helpers).
    """
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def used_by(node) -> set[str]:
        return {r.id for r in ast.walk(node) if isinstance(r, ast.Name) and r.id in functions}

    users: dict[str, set[str]] = {}
    for node in tree.body:
        owner = node.name if isinstance(node, ast.FunctionDef) else "<module>"
        for used in used_by(node) - {owner}:
            users.setdefault(used, set()).add(owner)
    withheld, changed = set(names), True
    while changed:
        changed = False
        for name in functions:
            if name.startswith("_") and name not in withheld and users.get(name) and users[name] <= withheld:
                withheld.add(name)
                changed = True
    return withheld


def withheld_names(forbid: Iterable[Callable]) -> dict[str, tuple[set[str], set[int]]]:
    """``{module: (function names, lambda lines)}`` to withhold for a ``forbid`` list."""
    out: dict[str, tuple[set[str], set[int]]] = {}
    for fn in forbid:
        target = _target(fn)
        if target is None:
            continue
        module, qualname, line = target
        names, lines = out.setdefault(module, (set(), set()))
        if qualname.endswith("<lambda>"):
            lines.add(line)
        else:
            names.add(qualname.split(".")[-1])
    return out


def key(forbid: Sequence[Callable]) -> str:
    """A short name for a forbidden set (the folder of its copy)."""
    parts = sorted(f"{m}:{sorted(n)}:{sorted(l)}" for m, (n, l) in withheld_names(forbid).items())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def build(dest: Path, forbid: Sequence[Callable], graded: str) -> Path:
    """Write the sandbox's copy of the package into ``dest/stablegrad``; return ``dest`` (for sys.path)."""
    target = dest / "stablegrad"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "checking"))
    checking = target / "checking"
    checking.mkdir()
    for source in (PACKAGE / "checking").glob("*.py"):
        if source.name in CHECKING_KEPT:
            shutil.copyfile(source, checking / source.name)
        elif source.name == "__init__.py":
            (checking / "__init__.py").write_text(_CHECKING_STUB, encoding="utf-8")
        else:
            (checking / source.name).write_text(_TOPIC_STUB, encoding="utf-8")
    (target / "_withheld.py").write_text(_WITHHELD_MODULE, encoding="utf-8")
    for module, (names, lines) in withheld_names(forbid).items():
        path = target.joinpath(*module.split(".")[1:]).with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _private_helpers(tree, names)
        change = _Withhold(module, names, lines, graded)
        tree = ast.fix_missing_locations(change.visit(tree))
        missing = {n for n in names if n not in change.done and not n.startswith("_")}
        if missing:
            raise RuntimeError(f"cannot withhold {sorted(missing)} in {module}: not found in its source")
        path.write_text(ast.unparse(tree) + "\n", encoding="utf-8")
    for stale in target.rglob("__pycache__"):
        shutil.rmtree(stale, ignore_errors=True)
    return dest
