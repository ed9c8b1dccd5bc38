"""Exercise pages: a code cell the learner edits looks different from a locked check cell.

nbgrader records each cell's role in its metadata (``nbgrader.solution``: the learner writes it;
``nbgrader.grade`` / ``nbgrader.locked``: a check or given code, restored at grading). myst-nb keeps that
metadata on the cell's node; this adds the class ``nbgrader-solution`` or ``nbgrader-locked`` to the cell
(``nbgrader-free`` to the other cells of an exercise: not graded, to run and look at), and
chapters/_static/book.css draws and labels them. Nothing to tag by hand in the notebooks.
"""

from __future__ import annotations

from docutils import nodes


def mark_cells(app, doctree) -> None:
    cells = [node for node in doctree.findall(nodes.container) if node.get("nb_element") == "cell_code"]
    roles = [(node.get("cell_metadata") or {}).get("nbgrader") for node in cells]
    if not any(roles):
        return                      # not an exercise: a chapter's cells stay as they are
    for node, meta in zip(cells, roles):
        meta = meta or {}
        if meta.get("solution"):
            node["classes"].append("nbgrader-solution")
        elif meta.get("grade") or meta.get("locked"):
            node["classes"].append("nbgrader-locked")
        else:
            node["classes"].append("nbgrader-free")     # a cell to run and look at, not graded


def setup(app):
    app.connect("doctree-read", mark_cells)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
