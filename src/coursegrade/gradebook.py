"""The course gradebook: one writer, per-worker copies, merged results, and the grading status.

nbgrader's SQLite gradebook does not take concurrent writers (``database is locked``). So each
grading worker autogrades into its *own* SQLite gradebook, holding only the assignment's
definition (:func:`assignment_definition` / :func:`define_assignment`), and the main process
merges every result into the course gradebook, one short transaction per submission
(:func:`merge`). The course gradebook may be SQLite or PostgreSQL (``COURSE_DB_URL``); the merge
only touches ``auto_score``, ``needs_manual_grade`` and ``auto_comment``, so a manual grade
(``manual_score``, which nbgrader prefers when set) survives any re-grading.

The status file ``autograded/.coursegrade-status.json`` remembers, per submission, the hash of the
notebook that was graded and why it scored what it did: ``course grade`` skips what is already
graded (unless ``--force`` or the submission changed) and the summary can always say why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

COURSE_ID = "taming-unstable-gradients"
STATUS_FILE = Path("autograded") / ".coursegrade-status.json"


def open_gradebook(db_url: str, course_id: str = COURSE_ID):
    from nbgrader.api import Gradebook

    return Gradebook(db_url, course_id)


# --------------------------------------------------------------------------- assignment definitions

def assignment_definition(gb, assignment: str) -> dict:
    """Everything autograde needs to know about an assignment, as plain data."""
    a = gb.find_assignment(assignment)
    notebooks = []
    for nb in a.notebooks:
        notebooks.append({
            "name": nb.name,
            "kernelspec": nb.kernelspec,
            "grade_cells": [{"name": c.name, "max_score": c.max_score, "cell_type": c.cell_type}
                            for c in nb.grade_cells],
            "task_cells": [{"name": c.name, "max_score": c.max_score, "cell_type": c.cell_type}
                           for c in nb.task_cells],
            "solution_cells": [{"name": c.name} for c in nb.solution_cells],
            "source_cells": [{"name": c.name, "cell_type": c.cell_type, "locked": c.locked,
                              "source": c.source, "checksum": c.checksum} for c in nb.source_cells],
        })
    duedate = a.duedate.isoformat() if a.duedate else None
    return {"name": a.name, "duedate": duedate, "notebooks": notebooks}


def define_assignment(gb, definition: dict) -> None:
    """Create (or update) an assignment in a gradebook from :func:`assignment_definition`."""
    from datetime import datetime

    name = definition["name"]
    duedate = datetime.fromisoformat(definition["duedate"]) if definition["duedate"] else None
    gb.update_or_create_assignment(name, duedate=duedate)
    for nb in definition["notebooks"]:
        gb.update_or_create_notebook(nb["name"], name, kernelspec=nb["kernelspec"])
        for c in nb["grade_cells"]:
            gb.update_or_create_grade_cell(c["name"], nb["name"], name, max_score=c["max_score"],
                                           cell_type=c["cell_type"])
        for c in nb["task_cells"]:
            gb.update_or_create_task_cell(c["name"], nb["name"], name, max_score=c["max_score"],
                                          cell_type=c["cell_type"])
        for c in nb["solution_cells"]:
            gb.update_or_create_solution_cell(c["name"], nb["name"], name)
        for c in nb["source_cells"]:
            gb.update_or_create_source_cell(c["name"], nb["name"], name, cell_type=c["cell_type"],
                                            locked=c["locked"], source=c["source"], checksum=c["checksum"])


def max_score(definition: dict) -> float:
    return float(sum(c["max_score"] for nb in definition["notebooks"]
                     for c in nb["grade_cells"] + nb["task_cells"]))


# --------------------------------------------------------------------------- results

def merge(gb, assignment: str, student: str, notebooks: list[dict] | None, timestamp=None) -> dict:
    """Write one submission's automatic grades into the course gradebook (one transaction).

    ``notebooks`` is :func:`coursegrade.scoring.nbgrader_grades` from the worker, or None for a submission that
    could not be graded at all (corrupt file, killed by the wall-time limit): every automatic
    grade is then 0. Manual scores and comments are left as they are.

    Returns the submission's scores: ``{"score": ..., "max_score": ..., "manual": bool}``.
    """
    gb.update_or_create_student(student)
    kwargs = {"timestamp": timestamp} if timestamp is not None else {}
    sub = gb.update_or_create_submission(assignment, student, **kwargs)
    by_name = {nb["name"]: nb for nb in notebooks or []}
    for nb in sub.notebooks:
        data = by_name.get(nb.name)
        grades = {g["name"]: g for g in data["grades"]} if data else {}
        comments = {c["name"]: c for c in data["comments"]} if data else {}
        for grade in nb.grades:
            g = grades.get(grade.name)
            grade.auto_score = (g["auto_score"] if g else 0.0)
            grade.needs_manual_grade = bool(g["needs_manual_grade"]) if g else False
        for comment in nb.comments:
            c = comments.get(comment.name)
            comment.auto_comment = c["auto_comment"] if c else None
    gb.db.commit()
    return submission_score(gb, assignment, student)


def submission_score(gb, assignment: str, student: str) -> dict:
    sub = gb.find_submission(assignment, student)
    manual = any(g.manual_score is not None for nb in sub.notebooks for g in nb.grades)
    return {"score": float(sub.score), "max_score": float(sub.max_score), "manual": manual}


# --------------------------------------------------------------------------- status file

def load_status(root: Path) -> dict:
    path = root / STATUS_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def save_status(root: Path, status: dict) -> None:
    path = root / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def status_key(student: str, assignment: str) -> str:
    return f"{student}/{assignment}"


def hashlib_key(student: str) -> str:
    """A stable hash of a student id, to split students into shards across grading machines."""
    import hashlib

    return hashlib.sha256(student.encode()).hexdigest()
