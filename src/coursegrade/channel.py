"""The grader's side of the channel to a learner's process: plain data both ways, nothing else.

A :class:`LearnerProcess` starts :mod:`coursegrade.learner` (sandboxed, with
the package copy of one forbidden set), sends it the answer cells, and then
one request per call. Replies are JSON lines read with a deadline and a size
cap; inputs and values travel in :mod:`stablegrad.checking.encoding`'s form
(no pickle: the grader never builds an object the learner chose).

A :class:`RemoteFunction` stands for one learner function in the grader's
namespace. The checks call it through
:func:`stablegrad.checking.guard.run_learner`, which hands the call to
:meth:`RemoteFunction.remote_outcome`; the reference, the expected values and
the comparison stay in the grader's process.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from stablegrad.checking.encoding import EncodingError, decode, encode
from stablegrad.checking.guard import Outcome, Raised

from .withhold import WITHHELD_ERROR


class LearnerGone(BaseException):
    """The learner's process stopped answering: a timeout, a crash, a memory kill.

    A BaseException, so that no ``except Exception`` inside a check turns it
    into an ordinary wrong answer: the test cell fails with ``reason``.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class Unreadable:
    """What a learner's function returned when it has no plain-data form (a set, its own class...)."""

    def __init__(self, why: str):
        self.why = why

    def __repr__(self):
        return f"<a value that cannot be checked: {self.why}>"


def _unreadable(type_name, why) -> Unreadable:
    """An :class:`Unreadable` whose class bears the learner's type name, so that messages say "is a set"."""
    name = re.sub(r"\W", "", str(type_name or ""))[:60] or "Unreadable"
    return type(name if name.isidentifier() else "Unreadable", (Unreadable,), {})(str(why)[:300])


class LearnerProcess:
    """One sandboxed process holding the learner's definitions, for one forbidden set."""

    def __init__(self, argv: Sequence[str], cells: list[dict], *, call_timeout: float = 20.0,
                 run_timeout: float = 60.0, max_reply: int = 64 * 2**20, env: Mapping[str, str] | None = None,
                 preexec: Callable | None = None, cwd: str | None = None, stuck: dict | None = None):
        self.argv, self.cells, self.cwd = list(argv), cells, cwd
        self.stuck = stuck if stuck is not None else {}   # cell index -> why it never finished
        self.call_timeout, self.run_timeout, self.max_reply = call_timeout, run_timeout, max_reply
        self.env, self.preexec = dict(env or {}), preexec
        self.proc: subprocess.Popen | None = None
        self.cell_errors: list = []
        self.gone: LearnerGone | None = None
        self._kept: dict[int, tuple] = {}
        self.deadline = float("inf")   # set by the grader per test cell: all its calls together

    # -- life cycle
    def _launch(self, attempts: int = 2) -> None:
        """Start the process; a launch that fails before any learner code runs is retried on a fresh one."""
        for attempt in range(attempts):
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=self.env, start_new_session=True,
                                         preexec_fn=self.preexec, cwd=self.cwd)
            os.set_blocking(self.proc.stdout.fileno(), False)
            self._buffer = b""
            try:
                if self._read(30.0).get("ready") is True:
                    return
            except LearnerGone:
                pass
            self.close()
        raise LearnerGone("sandbox failed", "the sandbox could not start (the grader's problem, not yours)")

    def start(self) -> None:
        """Start the process and run the learner's cells, one request each.

        A cell that does not finish (a loop, a crash, a flood) is left out (in ``self.stuck``, shared by
        every process of the submission, so each pays for it once) and the process restarts without it:
        it costs the functions that cell defines, not the whole notebook.
        """
        while True:
            self._launch()
            self.cell_errors = []
            for k, cell in enumerate(self.cells):
                if k in self.stuck:
                    self.cell_errors.append(["TimeoutError", "did not finish; left out"])
                    continue
                try:
                    reply = self._ask({"op": "run", "cells": [cell]}, self.run_timeout)
                except LearnerGone as exc:
                    if exc.reason == "sandbox failed":
                        raise
                    self.stuck[k] = exc.reason        # a loop, a crash, a flood: that cell only
                    self.close()
                    break
                self.cell_errors += [c.get("error") for c in reply.get("cells", [])[:1]]
            else:
                return

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def ensure(self) -> None:
        if self.gone is not None:
            raise self.gone
        if self.proc is None:
            try:
                self.start()
            except LearnerGone as exc:
                self.close()
                self.gone = exc
                raise

    # -- the channel
    def _ask(self, request: dict, timeout: float) -> dict:
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None
        return self._read(timeout)

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        buffer = bytearray(self._buffer)    # appended in place: a large reply is read in linear time
        end = buffer.find(b"\n")
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while end < 0:
                if len(buffer) > self.max_reply:
                    raise LearnerGone("output limit", f"a reply larger than {self.max_reply // 2**20} MB")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LearnerGone("timeout", f"no answer within {timeout:g} s")
                if not sel.select(left):
                    continue
                chunk = self.proc.stdout.read(1 << 20)
                if not chunk:
                    raise self._died()
                newline = chunk.find(b"\n")
                end = len(buffer) + newline if newline >= 0 else -1
                buffer += chunk
        if end > self.max_reply:
            raise LearnerGone("output limit", f"a reply larger than {self.max_reply // 2**20} MB")
        line, self._buffer = bytes(buffer[:end]), bytes(buffer[end + 1:])
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            raise LearnerGone("corrupt reply", "the learner's process wrote something that is not a reply") from None
        if not isinstance(reply, dict):
            raise LearnerGone("corrupt reply", "the learner's process wrote something that is not a reply")
        return reply

    def _generator_tokens(self, args) -> list:
        """One token per Generator argument: the same grader-side generator is the same object on the learner's
        side across calls (a function that keeps a reference to ``rng`` sees it again, as in a notebook)."""
        tokens = []
        for a in args:
            if isinstance(a, np.random.Generator):
                self._kept.setdefault(id(a), (a, len(self._kept)))   # holding ``a`` keeps its id unique
                tokens.append(self._kept[id(a)][1])
        return tokens

    def _died(self) -> LearnerGone:
        code = self.proc.wait(timeout=10) if self.proc else None
        if code is not None and code < 0 and -code == signal.SIGKILL:
            return LearnerGone("killed kernel", "the process was killed (memory or process limit)")
        return LearnerGone("killed kernel", f"the process exited (status {code})")

    def call(self, name: str, args: tuple, kwargs: Mapping, names: Sequence[str],
             substitute: Mapping[str, Callable] | None, copy_inputs: bool = True) -> Outcome:
        self.ensure()
        try:
            request = {"op": "call", "name": name, "args": encode(tuple(args), "the inputs"),
                       "kwargs": encode(dict(kwargs), "the inputs"), "names": list(names),
                       "substitute": {k: f"{f.__module__}:{f.__qualname__}" for k, f in (substitute or {}).items()},
                       "copy": copy_inputs, "generators": self._generator_tokens(args)}
        except EncodingError as exc:   # a check's own input: the course's bug, not the learner's
            raise RuntimeError(f"a case for {name} cannot be sent to the sandbox: {exc}") from None
        left = min(self.call_timeout, self.deadline - time.monotonic())
        if left <= 0:
            raise LearnerGone("timeout", "this function's checks ran out of time")
        try:
            reply = self._ask(request, left)
        except LearnerGone as exc:
            self.close()
            if exc.reason != "timeout":
                self.gone = exc
            raise
        return _outcome(reply)


def _outcome(reply: dict) -> Outcome:
    """An Outcome from a reply; anything malformed becomes an Unreadable value, never a crash."""
    if "failed" in reply:   # the learner's side broke (its code can break it): that answer gets no points
        raise RuntimeError(f"the grader could not call the function: {str(reply['failed'])[:200]}")
    raised = reply.get("raised")
    if raised is not None:
        if not (isinstance(raised, list) and len(raised) == 4 and isinstance(raised[1], list)
                and all(isinstance(r, str) for r in (raised[0], raised[2], raised[3], *raised[1]))):
            return Outcome(value=Unreadable("a malformed exception"))
        kind, mro, message, where = raised[0], tuple(raised[1]), raised[2], raised[3]
        if WITHHELD_ERROR in mro:
            return Outcome(delegated=message.split(" ", 1)[0])
        return Outcome(raised=Raised(kind[:200], mro, message[:2000], where[:300]))
    try:
        value = (_unreadable(reply.get("type"), reply["unencodable"]) if "unencodable" in reply
                 else decode(reply.get("value")))
        generators = tuple(decode(reply.get("generators")) or ())
    except (EncodingError, ValueError, TypeError, KeyError, RecursionError) as exc:
        return Outcome(value=Unreadable(f"an invalid encoding ({str(exc)[:100]})"))
    strings = lambda key: tuple(str(s)[:300] for s in (reply.get(key) or ()))  # noqa: E731
    return Outcome(value=value, modified=strings("modified"), shared=strings("shared"),
                   warnings=strings("warnings"), global_rng=bool(reply.get("global_rng")), generators=generators)


class RemoteFunction:
    """A learner's function, as the grader's checks see it: every call crosses the channel."""

    def __init__(self, name: str, process: LearnerProcess):
        self.__name__ = self.__qualname__ = name
        self.process = process

    def remote_outcome(self, args, kwargs, names=(), substitute=None, copy_inputs=True) -> Outcome:
        outcome = self.process.call(self.__name__, args, kwargs or {}, names, substitute, copy_inputs)
        if outcome.raised is not None and outcome.raised.type == "NameError" and self.process.stuck:
            reason = next(iter(self.process.stuck.values()))
            raise LearnerGone(reason, "the cell that defines it did not finish")
        return outcome

    def __call__(self, *args, **kwargs):
        outcome = self.remote_outcome(args, kwargs)
        if outcome.delegated:
            raise RuntimeError(f"{self.__name__} called {outcome.delegated}, which is withheld")
        if outcome.raised is not None:
            raise RuntimeError(f"{self.__name__} raised {outcome.raised.type}: {outcome.raised.message}")
        return outcome.value

    def __repr__(self):
        return f"<the learner's {self.__name__}, run in the sandbox>"
