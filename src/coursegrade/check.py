"""``course check NOTEBOOK``: what a learner runs before submitting.

Executes the notebook top to bottom in a fresh kernel (it is the learner's own code: no
sandbox), without saving it, then reports every graded test cell: passed, or failed with the
checker's message. The exit code is 0 only when every visible test passed (``nbgrader
validate`` exits 0 either way, which is why this command exists).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _message(output) -> str:
    text = "\n".join(ANSI.sub("", line) for line in output.get("traceback", []))
    return text.strip() or f"{output.get('ename')}: {output.get('evalue')}"


def check(path: Path, timeout: int = 300, stream=sys.stdout) -> int:
    import nbformat
    from nbclient import NotebookClient

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001
        print(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})", file=stream)
        return 2
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            extra_arguments=["--InteractiveShell.xmode=Minimal"],
                            resources={"metadata": {"path": str(Path(path).resolve().parent)}})
    stopped = None
    try:
        client.execute()
    except Exception as exc:  # noqa: BLE001 - a dead kernel, a cell timeout
        stopped = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        print(f"execution stopped: {stopped}", file=stream)
    ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is not None]
    # the cell that was running when execution stopped did not pass, whatever it printed before
    interrupted = ran[-1] if stopped and ran else None
    tests, failed = 0, []
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        name = meta.get("grade_id") or "a code cell"
        if meta.get("grade") and not meta.get("solution"):
            tests += 1
            ran = cell.get("execution_count") is not None
            if cell is interrupted:
                failed.append(name)
                print(f"FAIL  {name}\n      execution stopped in this cell ({stopped})", file=stream)
            elif errors or not ran:
                failed.append(name)
                why = _message(errors[-1]) if errors else "not run (an earlier cell stopped the notebook)"
                print(f"FAIL  {name}\n      " + why.replace("\n", "\n      "), file=stream)
            else:
                print(f"ok    {name} ({meta.get('points', 0):g} points)", file=stream)
        elif errors:
            print(f"error in {name}: {errors[-1].get('ename')}: {errors[-1].get('evalue')}"[:300], file=stream)
    if not tests:
        print(f"{path}: no graded test cells found", file=stream)
        return 2
    if failed or stopped:
        print(f"{len(failed)} of {tests} visible tests failed: {', '.join(failed)}"
              + (f" (execution stopped: {stopped})" if stopped else ""), file=stream)
        return 1
    print(f"all {tests} visible tests passed (the grader also runs hidden tests)", file=stream)
    return 0
