"""The learner's side of grading: runs inside the sandbox, defines the answers, answers calls.

This file is copied next to the sandbox's copy of the package (see
:mod:`coursegrade.withhold`) and started as ``python -I -S learner.py``; it
imports nothing from ``coursegrade``. It reads one JSON request per line on
its standard input and writes one JSON reply per line on its standard
output, then points file descriptors 0, 1 and 2 at ``/dev/null`` so that
nothing the learner's code prints can reach the channel by accident:

``{"op": "run", "cells": [{"source": ..., "answer": true}, ...]}``
    Execute the cells in one namespace, as a notebook would. Answer cells run
    as written; other cells (the release's "look at the output" cells, cells
    the learner added) run only their definitions: imports, ``def``,
    ``class`` and assignments. Reply ``{"cells": [{"error": null | [ename, evalue]}, ...]}``.
``{"op": "call", "name": ..., "args": ..., "kwargs": ..., "names": [...], "substitute": {...}}``
    Call the learner's function on the decoded inputs through
    :func:`stablegrad.checking.guard.run_learner` and reply with the
    :class:`~stablegrad.checking.guard.Outcome` as plain data.

Everything here runs in the learner's process, so it is trusted with
nothing: the grader believes a reply only as the learner's answer, and the
comparison with the reference happens on the grader's side.
"""

import ast
import importlib
import io
import json
import os
import re
import sys

MAX_STDOUT = 64 * 1024   # per cell; the rest is dropped
_MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)
_GENERATORS = {}   # token -> the Generator that stands for one generator of the grader's
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                ast.AnnAssign)


class _Capped(io.TextIOBase):
    """A stdout that keeps the first MAX_STDOUT characters and drops the rest."""

    def __init__(self):
        self.parts, self.size = [], 0

    def write(self, s):
        s = str(s)
        if self.size < MAX_STDOUT:
            self.parts.append(s[:MAX_STDOUT - self.size])
        self.size += len(s)
        return len(s)


def _definitions_only(source: str, avoid) -> str:
    """The cell's imports, definitions and assignments, except assignments that call one of ``avoid``
    (the notebook's own functions: a "look at the output" cell calls the answers, which is no definition)."""
    def calls_avoided(node) -> bool:
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in avoid
                   for n in ast.walk(node))

    tree = ast.parse(source)
    tree.body = [node for node in tree.body if isinstance(node, _DEFINITIONS)
                 and not (isinstance(node, (ast.Assign, ast.AnnAssign)) and calls_avoided(node))]
    return ast.unparse(tree)


def run_cells(cells, namespace) -> list:
    replies = []
    for cell in cells:
        source = _MAGIC.sub(r"\1pass", cell.get("source", ""))
        error = None
        sys.stdout = sys.stderr = _Capped()
        try:
            if not cell.get("answer"):
                source = _definitions_only(source, set(cell.get("avoid") or ()))
            exec(compile(source, f"<cell {len(replies) + 1}>", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - a cell's error is data, even SystemExit
            error = [type(exc).__name__, str(exc)[:2000]]
        replies.append({"error": error})
    return replies


# What this side uses to observe a call (and could be patched by the learner's cells to hide a warning or an
# in-place change): recorded before any learner code runs, put back before every call. Defense in depth only:
# in its own process, determined code can reach anything; the grader trusts these reports no more than the value.
_WATCHED = ("builtins", "copy", "warnings", "inspect", "traceback", "json", "base64", "math", "dataclasses",
            "numpy", "numpy.random", "stablegrad.containers", "stablegrad.checking.guard",
            "stablegrad.checking.encoding", "stablegrad.checking.records")
_RECORDED = []


def _record() -> None:
    import types

    for name in _WATCHED:
        module = importlib.import_module(name)
        values = {k: v for k, v in vars(module).items() if callable(v) or isinstance(v, types.ModuleType)}
        codes = [(v, v.__code__, v.__defaults__, v.__kwdefaults__) for v in values.values()
                 if isinstance(v, types.FunctionType)]
        _RECORDED.append((module, values, codes))


def _put_back() -> None:
    for module, values, codes in _RECORDED:
        sys.modules[module.__name__] = module
        current = vars(module)
        for key, value in values.items():
            if current.get(key) is not value:
                current[key] = value
        for fn, code, defaults, kwdefaults in codes:
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults


def _resolve(qualified: str):
    module, _, name = qualified.partition(":")
    return getattr(importlib.import_module(module), name)


def call(request, namespace) -> dict:
    from stablegrad.checking.encoding import EncodingError, decode, encode
    from stablegrad.checking.guard import run_learner

    func = namespace.get(request["name"])
    args, kwargs = decode(request["args"]), decode(request["kwargs"])
    if not callable(func):
        return {"raised": ["NameError", ["builtins.NameError", "builtins.Exception"],
                           f"name {request['name']!r} is not defined as a function", ""]}
    import numpy as np

    args = list(args)
    positions = [i for i, a in enumerate(args) if isinstance(a, np.random.Generator)]
    for i, token in zip(positions, request.get("generators") or ()):
        kept = _GENERATORS.setdefault(token, args[i])     # the grader's same generator: the same object here
        kept.bit_generator.state = args[i].bit_generator.state
        args[i] = kept
    substitute = {k: _resolve(v) for k, v in (request.get("substitute") or {}).items()}
    _put_back()
    sys.stdout = sys.stderr = _Capped()
    outcome = run_learner(func, tuple(args), kwargs, names=tuple(request.get("names") or ()),
                          substitute=substitute, copy_inputs=bool(request.get("copy", True)))
    reply = {"raised": list(outcome.raised) if outcome.raised else None, "modified": list(outcome.modified),
             "shared": list(outcome.shared), "warnings": list(outcome.warnings), "global_rng": outcome.global_rng,
             "generators": encode(list(outcome.generators))}
    if outcome.raised is None:
        try:
            reply["value"] = encode(outcome.value, "the returned value")
        except (EncodingError, RecursionError) as exc:
            reply["unencodable"], reply["type"] = str(exc)[:500], type(outcome.value).__name__[:60]
    return reply


def main() -> None:
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = io.StringIO("")
    sys.path[:0] = [p for p in sys.argv[1:] if p]
    importlib.import_module("stablegrad.checking.records")   # registers the callables that cases pass
    _record()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    replies.write('{"ready": true}\n')   # before any learner code: tells a failed launch from a failed answer
    replies.flush()
    for line in requests:
        request = json.loads(line)
        try:
            if request["op"] == "run":
                reply = {"cells": run_cells(request["cells"], namespace)}
            elif request["op"] == "call":
                reply = call(request, namespace)
            else:
                break
        except BaseException as exc:  # noqa: BLE001 - reported, never fatal
            reply = {"failed": f"{type(exc).__name__}: {str(exc)[:500]}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
