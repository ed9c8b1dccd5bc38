"""Measure the speed targets of the course and print them.

Run from the repository root (``make bench`` does this):

    python tests/benchmarks/course_speed.py [--skip-test] [--submissions 8]

Everything runs in a fresh ``git clone`` of the current HEAD inside a temporary
directory, so the figures are those a newcomer meets:

- fresh set-up: ``make setup`` (venv + pinned install) with an empty uv cache,
  so every package is downloaded from the registry;
- cold build: ``make book`` right after set-up (nothing cached, every chapter executes);
- no-change rebuild: ``make book`` again;
- ``make test``: the whole suite, once set up;
- the portability harness alone (``tests/test_portability.py`` without the machine's own configuration,
  part of ``make test``): what re-running every chapter and solution under the two other numeric
  configurations costs;
- autograde seconds per submission: ``nbgrader autograde`` over several copies of
  each solution notebook submitted as students, divided by their number.

Targets (issues 2, 10 and 11): cold build <= 45 s, rebuild <= 5 s, make test <= 240 s, set-up <= 90 s.
The figures depend on the CPU, so the report names it (model, OpenBLAS kernel, NumPy SIMD targets).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"fresh set-up": 90.0, "cold book build": 45.0, "no-change rebuild": 5.0, "make test": 240.0,
           "portability harness alone": 0.0}


def cpu_description(clone: Path, env: dict[str, str]) -> str:
    """The CPU model, and the OpenBLAS kernel and NumPy SIMD targets the clone's environment uses."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sys.path.insert(0, str(ROOT / "tests"))
    from numeric_configs import PROBE  # the same read-back the portability harness uses

    out = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", PROBE], env=env, capture_output=True,
                         text=True)
    info = json.loads(out.stdout) if out.returncode == 0 else {"blas": "unknown", "simd": []}
    return (f"{model}, {os.cpu_count()} cores; BLAS kernel {info['blas']}; "
            f"NumPy SIMD targets {', '.join(info['simd']) or 'none'}")


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``cmd`` to completion and return its wall time in seconds; fail loudly."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed after {elapsed:.1f} s:\n{proc.stdout[-4000:]}")
    return elapsed


def clean_env(tmp: Path) -> dict[str, str]:
    """The caller's environment without the project's venv, with a private, empty uv cache."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env["UV_CACHE_DIR"] = str(tmp / "uv-cache")
    return env


def autograde_seconds_per_submission(clone: Path, copies: int) -> dict[str, float]:
    """Submit each solution ``copies`` times into a scratch course and time one autograde run per assignment.

    Runs inside the clone's own environment (``--autograde-only``), which has nbgrader.
    """
    sys.path.insert(0, str(clone / "tests"))
    from grading import CourseCopy  # the same harness the grading tests use

    results = {}
    for solution in sorted((clone / "solutions").glob("ex*/ex*.ipynb")):
        assignment = solution.parent.name
        with CourseCopy(clone) as course:
            course.release(assignment)
            for i in range(copies):
                course.submit(f"student{i:03d}", assignment, solution)
            start = time.perf_counter()
            course.autograde(assignment)
            results[assignment] = (time.perf_counter() - start) / copies
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-test", action="store_true", help="do not time `make test`")
    parser.add_argument("--submissions", type=int, default=8, help="copies of each solution to autograde")
    parser.add_argument("--autograde-only", type=Path, metavar="CLONE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.autograde_only:
        print(json.dumps(autograde_seconds_per_submission(args.autograde_only, args.submissions)))
        return

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmpdir:
        tmp = Path(tmpdir)
        clone = tmp / "course"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        # Beside the clone, as on CI, in case anything reads ../shared.
        if (ROOT.parent / "shared").exists():
            shutil.copytree(ROOT.parent / "shared", tmp / "shared")
        env = clean_env(tmp)

        steps = [("fresh set-up", ["make", "setup"]), ("cold book build", ["make", "book"]),
                 ("no-change rebuild", ["make", "book"])]
        if not args.skip_test:
            steps.append(("make test", ["make", "test"]))
        for name, cmd in steps:
            figures[name] = timed(cmd, clone, env)
            print(f"{name}: {figures[name]:.1f} s", flush=True)
        venv_env = dict(env, PATH=f"{clone / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
                        OPENBLAS_NUM_THREADS="1")
        cpu = cpu_description(clone, venv_env)
        if not args.skip_test:
            figures["portability harness alone"] = timed(
                ["pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "--dist", "loadgroup",
                 "tests/test_portability.py", "-k", "not own-"], clone, venv_env)
            print(f"portability harness alone: {figures['portability harness alone']:.1f} s", flush=True)
        proc = subprocess.run([str(clone / ".venv" / "bin" / "python"), str(clone / Path(__file__).relative_to(ROOT)),
                               "--autograde-only", str(clone), "--submissions", str(args.submissions)],
                              cwd=clone, env=venv_env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"autograde measurement failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        per_submission = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"\nMeasured on {cpu} (python {sys.version.split()[0]}):\n")
    print(f"| {'step':<48} | {'seconds':>8} | {'target':>7} |")
    print(f"|{'-' * 50}|{'-' * 10}|{'-' * 9}|")
    for name, seconds in figures.items():
        target = f"{TARGETS[name]:7.0f}" if TARGETS[name] else f"{'-':>7}"
        print(f"| {name:<48} | {seconds:8.1f} | {target} |")
    for assignment, seconds in per_submission.items():
        label = f"autograde, per submission ({assignment})"
        print(f"| {label:<48} | {seconds:8.2f} | {'-':>7} |")
    missed = [name for name, seconds in figures.items() if TARGETS[name] and seconds > TARGETS[name]]
    if missed:
        print(f"\nOver target: {', '.join(missed)}")


if __name__ == "__main__":
    main()
