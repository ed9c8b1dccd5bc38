"""Grading throughput: stock sequential ``nbgrader autograde`` vs ``course grade``, side by side.

Generates N submissions of one assignment from its real release (the solution and the
mutants of ``tests/mutants/<id>.py``, in turn), then grades them twice in two scratch course
copies: once with one stock ``nbgrader autograde <id>`` run (sequential, unsandboxed), once
with ``course grade --jobs J`` (sandboxed: the learner's functions in sandboxes, the tests in the grader). Both use the course's
real ``nbgrader_config.py``. Feedback is not generated in either (``--no-feedback``), so both
do the same work; pass ``--feedback`` to include it in ``course grade``'s time.

    python tests/benchmarks/grading_speed.py                 # 200 submissions of ex01, 2 jobs
    python tests/benchmarks/grading_speed.py -n 40 --jobs 2 --assignment ex05_clipping
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import grading  # noqa: E402
import zoo  # noqa: E402


def make_course(base: Path, assignment: str, n: int) -> grading.CourseCopy:
    course = grading.CourseCopy(directory=base)
    release, source = course.release(assignment), course.source(assignment)
    perfect = grading.perfect_answers(source)
    variants = [perfect] + [{**perfect, m.cell: m.source} for m in zoo.load_mutants(assignment)
                            if m.edit is None and "never returns" not in m.name]
    for k in range(n):
        course.submit(f"s{k:03d}", assignment, grading.fill(release, variants[k % len(variants)]), release=False)
    return course


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--assignment", default="ex01_chain_rule")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--feedback", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="grading-speed-"))
    stock = make_course(work / "stock", args.assignment, args.n)
    ours = make_course(work / "ours", args.assignment, args.n)
    print(f"{args.n} submissions of {args.assignment}; {os.cpu_count()} cores; scratch {work}", flush=True)

    t0 = time.monotonic()
    stock.nbgrader("autograde", args.assignment, "--force", timeout=24 * 3600)
    t_stock = time.monotonic() - t0
    graded = len(stock.scores(args.assignment))

    env = dict(ours.env, PYTHONPATH=os.pathsep.join(p for p in (str(HERE.parents[1] / "src"),
                                                                 ours.env.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "coursegrade.cli", "grade", "--jobs", str(args.jobs)]
    if not args.feedback:
        cmd.append("--no-feedback")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ours.path, env=env, capture_output=True, text=True)
    t_ours = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"course grade failed:\n{proc.stderr[-3000:]}")
    same = stock.scores(args.assignment) == ours.scores(args.assignment)

    def rate(seconds: float) -> float:
        return args.n / seconds * 60

    print(f"{'workflow':<44} {'seconds':>8} {'subs/min':>9}")
    print(f"{'stock nbgrader autograde (sequential)':<44} {t_stock:8.1f} {rate(t_stock):9.1f}")
    label = f"course grade --jobs {args.jobs} (sandboxed{', +feedback' if args.feedback else ''})"
    print(f"{label:<44} {t_ours:8.1f} {rate(t_ours):9.1f}")
    print(f"speed-up: {t_stock / t_ours:.2f}x; identical scores: {same}; stock graded {graded}")


if __name__ == "__main__":
    main()
