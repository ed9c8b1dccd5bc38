"""A pool of grading workers: one submission at a time each, a hard wall-time limit per submission.

Each worker is a separate process (``spawn``) holding a :class:`coursegrade.worker.Worker`;
it grades one submission at a time and sends back plain data. The main process hands out
submissions, merges results as they come (the single writer of the course gradebook), and
kills a worker that exceeds the wall-time limit (its learners' processes die with it: bubblewrap's
``--die-with-parent``; without the sandbox, the worker's descendants are killed too), then
starts a fresh worker in its slot.

Throughput scales with the number of workers up to the number of cores: a submission's cost
is almost all CPU (the sandboxes' start-up, the tests, the feedback page), and workers
share nothing but the disk.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable


def _worker_main(conn, options: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    os.environ.update(options["env"])
    import warnings

    warnings.filterwarnings("ignore")  # nbformat id and SQLAlchemy autoflush warnings, per submission
    from .worker import Worker, grade_safely

    try:
        worker = Worker(Path(options["course"]), Path(options["scratch"]), options["definitions"],
                        slot=options["slot"], sandboxed=options["sandboxed"], extra_config=options["extra_config"],
                        limits=options["limits"])
    except Exception as exc:  # noqa: BLE001
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            worker.runner.close()
            return
        student, assignment = task
        conn.send(("done", grade_safely(worker, student, assignment, feedback=options["feedback"])))


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class _Slot:
    def __init__(self, index: int):
        self.index = index
        self.process = None
        self.conn = None
        self.scratch = None
        self.task = None
        self.deadline = None
        self.ready = False


class Pool:
    """Grade ``(student, assignment)`` tasks with ``jobs`` workers; call ``on_result`` for each.

    Parameters
    ----------
    course : Path
    definitions : dict
        ``{assignment: definition}`` (see :mod:`coursegrade.gradebook`).
    jobs : int
    sandboxed : bool
    wall_limit : float
        Seconds one submission may take in all (its sandboxes, every test cell, feedback).
    extra_config : str
        Appended to each worker's nbgrader config.
    """

    def __init__(self, course: Path, definitions: dict, jobs: int, sandboxed: bool, wall_limit: float,
                 extra_config: str = "", limits: dict | None = None, feedback: bool = True):
        self.course = Path(course)
        self.definitions = definitions
        self.jobs = max(1, jobs)
        self.sandboxed = sandboxed
        self.wall_limit = wall_limit
        self.extra_config = extra_config
        self.limits = limits or {}
        self.feedback = feedback
        self.ctx = multiprocessing.get_context("spawn")
        self.root = Path(tempfile.mkdtemp(prefix="coursegrade-"))
        os.chmod(self.root, 0o711)

    def _start(self, slot: _Slot) -> None:
        slot.scratch = Path(tempfile.mkdtemp(prefix=f"w{slot.index}-", dir=self.root))
        options = {"course": str(self.course), "scratch": str(slot.scratch), "definitions": self.definitions,
                   "slot": slot.index, "sandboxed": self.sandboxed, "extra_config": self.extra_config,
                   "limits": self.limits, "feedback": self.feedback,
                   "env": {"PYTHONDONTWRITEBYTECODE": "1"}}
        parent, child = self.ctx.Pipe()
        slot.process = self.ctx.Process(target=_worker_main, args=(child, options), daemon=True)
        slot.process.start()
        child.close()
        slot.conn, slot.ready, slot.task, slot.deadline = parent, False, None, None

    def _kill(self, slot: _Slot) -> None:
        if slot.process is not None and slot.process.pid:
            victims = _descendants(slot.process.pid)
            for pid in [slot.process.pid, *victims]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            slot.process.join(5)
        if slot.conn is not None:
            slot.conn.close()
        if slot.scratch is not None:
            shutil.rmtree(slot.scratch, ignore_errors=True)
        slot.process = slot.conn = None

    def run(self, tasks: list[tuple[str, str]], on_result: Callable[[dict], None]) -> None:
        pending = deque(tasks)
        slots = [_Slot(i) for i in range(min(self.jobs, len(tasks)))]
        for slot in slots:
            self._start(slot)
        try:
            while pending or any(s.task for s in slots):
                for slot in slots:
                    if slot.ready and slot.task is None and pending:
                        slot.task = pending.popleft()
                        slot.deadline = time.monotonic() + self.wall_limit
                        slot.conn.send(slot.task)
                if not pending and not any(s.task for s in slots):
                    break
                conns = [s.conn for s in slots if s.conn is not None]
                for conn in wait(conns, timeout=0.5):
                    slot = next(s for s in slots if s.conn is conn)
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):
                        self._lost(slot, on_result, "grader crashed")
                        continue
                    if kind == "ready":
                        slot.ready = True
                    elif kind == "failed":
                        raise RuntimeError(f"a grading worker could not start: {payload}")
                    else:
                        slot.task = None
                        on_result(payload)
                now = time.monotonic()
                for slot in slots:
                    if slot.task is not None and now > slot.deadline:
                        self._lost(slot, on_result, f"timeout: wall-time limit of {self.wall_limit:g} s per submission")
                    elif slot.process is not None and not slot.process.is_alive() and slot.conn is not None \
                            and not slot.conn.poll():
                        self._lost(slot, on_result, "grader crashed")
        finally:
            for slot in slots:
                if slot.conn is not None and slot.process is not None and slot.process.is_alive():
                    try:
                        slot.conn.send(None)
                    except OSError:
                        pass
            for slot in slots:
                if slot.process is not None:
                    slot.process.join(10)
                self._kill(slot)
            shutil.rmtree(self.root, ignore_errors=True)
            if self.sandboxed:
                from .sandbox import Cgroup

                Cgroup.remove_stale()

    def _lost(self, slot: _Slot, on_result, reason: str) -> None:
        task = slot.task
        self._kill(slot)
        if task is not None:
            student, assignment = task
            on_result({"student": student, "assignment": assignment, "notebooks": None, "ok": False,
                       "reasons": [reason], "notes": [], "timestamp": None, "sha256": None,
                       "retry": reason == "grader crashed"})
        self._start(slot)
