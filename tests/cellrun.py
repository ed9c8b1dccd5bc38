"""Execute an exercise's real test cells against many answer sets, one forked process each.

Autograding a notebook starts a kernel and costs seconds; a catalogue mistake
only needs its test cells executed against its answer. This driver imports
NumPy and stablegrad once, then forks one child per student: the child runs
the notebook's code cells in order (the imports, the student's answers, the
source notebook's test cells with their hidden tests, exactly as autograde
restores them), each test cell with its own time limit, and reports which
test cells raised. Run as a script: reads a JSON job on stdin, writes JSON on
stdout::

    {"cells": [{"kind": "code"|"answer"|"test", "id": str, "source": str}, ...],
     "students": {"m00": {"<answer id>": "<source>", ...}, ...}, "timeout": 10}
    -> {"m00": {"<test id>": "" (passed) or "<ExceptionType: message>", ...}, ...}

A student's answers default to the cell's own source (the solution). The
children share nothing: a mutant that patches a module or loops forever
costs only its own result.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys


class CellTimeout(BaseException):
    """A test cell ran past its time limit (BaseException: a learner's `except Exception` cannot hide it)."""


def _alarm(signum, frame):
    raise CellTimeout()


def run_student(cells: list[dict], answers: dict[str, str], timeout: int) -> dict[str, str]:
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, str] = {}
    signal.signal(signal.SIGALRM, _alarm)
    for cell in cells:
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
                payload = json.dumps(run_student(job["cells"], answers, int(job.get("timeout", 10))))
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
