"""Execute an exercise's real test cells against many answer sets, one forked process each.

Autograding a notebook starts a kernel and costs seconds; a catalogue mistake
only needs its test cells executed against its answer. This driver imports
NumPy and stablegrad once, then forks one child per student: the child runs
the notebook's code cells in order (the imports, the student's answers, the
source notebook's test cells with their hidden tests, exactly as autograde
restores them), each test cell with its own time limit, and reports which
test cells raised. Run as a script: reads a JSON job on stdin, writes JSON on
stdout::

    {"cells": [{"kind": "code"|"show"|"answer"|"test", "id": str, "source": str}, ...],
     "students": {"m00": {"<answer id>": "<source>", ...}, ...}, "timeout": 10, "probe": ["m00"],
     "tests": {"m00": ["<test id>", ...]}}
    -> {"m00": {"<test id>": "" (passed) or "<ExceptionType: message>", ...}, ...}

For the students listed in ``probe``, a profiler also records every case the
checking engine runs (visible and hidden) and the child checks that each, and
its reference output, survives encoding to plain data and back bit for bit
(``"__encoding__": {"problems": [...], "counts": {function: cases}}``).

A student's answers default to the cell's own source (the solution). The
children share nothing: a mutant that patches a module or loops forever
costs only its own result. A student listed in ``tests`` runs only those test
cells, and skips the "show" cells (ungraded cells a learner runs to look at
an output): the setup and every answer cell still run, in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import sys


class CellTimeout(BaseException):
    """A test cell ran past its time limit (BaseException: a learner's `except Exception` cannot hide it)."""


def _alarm(signum, frame):
    raise CellTimeout()


def _probe_cases(seen: list):
    """A profiler that records every (declaration, cases) the checking engine runs, hidden ones included."""
    from stablegrad.checking import engine

    code = engine.run.__code__

    def hook(frame, event, arg):
        if event == "call" and frame.f_code is code:
            decl, cases = frame.f_locals["decl"], frame.f_locals["cases"]
            seen.append((decl, list(decl.visible() if cases is None else cases)))
    return hook


def _identical(a, b) -> bool:
    """Same types and bits all the way down (nan equals nan, -0.0 differs from 0.0)."""
    import numpy as np

    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray) or isinstance(a, np.generic):
        return a.dtype == b.dtype and np.shape(a) == np.shape(b) and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if isinstance(a, np.random.Generator):
        return _identical(a.bit_generator.state, b.bit_generator.state)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_identical(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):  # a record such as network.MLP compares by identity otherwise
        return all(_identical(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b
    if callable(a) and not hasattr(a, "_fields"):
        return a is b or getattr(a, "name", None) == getattr(b, "name", object())
    return a == b


def check_encoding(seen: list) -> dict:
    """Every recorded case and its reference output survive encode -> JSON -> decode exactly."""
    import copy

    from stablegrad.checking.encoding import decode, encode

    problems, counts = [], {}
    for decl, cases in seen:
        for case in cases:
            counts[decl.name] = counts.get(decl.name, 0) + 1
            try:
                for label, value in (("inputs", (case.args, case.kwargs)),):
                    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
                    if not _identical(value, back):
                        problems.append(f"{decl.name} / {case.label}: {label} differ after the round trip")
                    try:
                        out = decl.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
                    except Exception:  # noqa: BLE001 - a case on which the reference raises by contract
                        continue
                    again = decode(json.loads(json.dumps(encode(out), allow_nan=False)))
                    if not _identical(out, again):
                        problems.append(f"{decl.name} / {case.label}: the reference output differs after "
                                        f"the round trip")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{decl.name} / {case.label}: {type(exc).__name__}: {exc}")
    return {"problems": problems, "counts": counts}


def run_student(cells: list[dict], answers: dict[str, str], timeout: int, probe: bool = False,
                tests: list[str] | None = None) -> dict:
    namespace: dict = {"__name__": "__main__"}
    results: dict = {}
    seen: list = []
    if probe:
        sys.setprofile(_probe_cases(seen))
    signal.signal(signal.SIGALRM, _alarm)
    for cell in cells:
        if tests is not None and (cell["kind"] == "test" and cell["id"] not in tests or cell["kind"] == "show"):
            continue
        source = answers.get(cell["id"], cell["source"]) if cell["kind"] == "answer" else cell["source"]
        signal.alarm(timeout)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(compile(source, f"<cell {cell['id']}>", "exec"), namespace)  # noqa: S102
            error = ""
        except CellTimeout:
            error = f"CellTimeout: the cell ran longer than {timeout} s"
        except BaseException as exc:  # noqa: BLE001 - what a test cell raises is its verdict
            error = f"{type(exc).__name__}: {exc}"
        finally:
            signal.alarm(0)
        if cell["kind"] == "test":
            results[cell["id"]] = error
    if probe:
        sys.setprofile(None)
        results["__encoding__"] = check_encoding(seen)
    return results


def main() -> None:
    job = json.load(sys.stdin)
    import numpy  # noqa: F401 - paid once, before forking
    import stablegrad.checking  # noqa: F401

    out = {}
    for student, answers in job["students"].items():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, report, exit without cleanup handlers
            os.close(read)
            try:
                payload = json.dumps(run_student(job["cells"], answers, int(job.get("timeout", 10)),
                                                 probe=student in job.get("probe", ()),
                                                 tests=job.get("tests", {}).get(student)))
            except BaseException as exc:  # noqa: BLE001
                payload = json.dumps({"": f"driver: {type(exc).__name__}: {exc}"})
            with os.fdopen(write, "w") as pipe:
                pipe.write(payload)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
        out[student] = json.loads(text) if text else {"": f"driver: child exited with status {status}"}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
