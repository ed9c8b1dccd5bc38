"""nbgrader configuration for "Taming Unstable Gradients".

Run nbgrader from the repository root with the project's virtual environment
first on PATH (nbgrader shells out to ``alembic`` and starts the ``python3``
kernel it finds on PATH)::

    PATH=$PWD/.venv/bin:$PATH nbgrader generate_assignment ex01_chain_rule --force
    PATH=$PWD/.venv/bin:$PATH nbgrader autograde ex01_chain_rule
    PATH=$PWD/.venv/bin:$PATH nbgrader generate_feedback ex01_chain_rule

Layout (relative to this file):

- ``solutions/<id>/<id>.ipynb``   source versions: solutions, visible and hidden tests
- ``exercises/<id>/<id>.ipynb``   release versions (generated, committed)
- ``submitted/<student>/<id>/``   collected submissions (git-ignored)
- ``autograded/``, ``feedback/``, ``gradebook.db``  grading state (git-ignored)

Notes
-----
* ``nbgrader validate`` exits 0 even when a notebook fails validation: scripts
  and tests read scores from the gradebook (``nbgrader.api.Gradebook``) instead.
* A failed ``generate_assignment --force`` can leave ``exercises/<id>`` deleted:
  regenerate (or ``git checkout exercises/<id>``) before committing.
* Every test cell must be ``locked``: only locked cells are restored from the
  gradebook at autograde time.
"""

import os

c = get_config()  # noqa: F821  (injected by traitlets when this file is loaded)

# --- Course layout -----------------------------------------------------------
# The root is the directory holding this file, wherever the repository lives
# (the grading tests copy this file into a temporary course directory).
ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "taming-unstable-gradients"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db")
# Several grading machines can share one gradebook on a database server, e.g.
# COURSE_DB_URL=postgresql+psycopg://grader@dbhost/course (SQLite above stays the default).
if os.environ.get("COURSE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["COURSE_DB_URL"]
# Only notebooks belong to an assignment; never copy caches or checkpoints.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Exchange (only used by release_assignment/collect on a shared JupyterHub).
c.Exchange.path_includes_course = True

# --- Releasing ---------------------------------------------------------------
# Stop a release that would contain solutions or hidden tests outside the
# cells nbgrader knows how to strip.
c.ClearSolutions.enforce_metadata = True
c.ClearHiddenTests.enforce_metadata = True

# --- Autograding -------------------------------------------------------------
# Seconds per cell; a runaway loop costs the submission that cell, not the run.
c.Execute.timeout = 60
# A kernel that stops answering scores 0 instead of aborting the whole run.
c.Execute.raise_on_iopub_timeout = False
c.Execute.interrupt_on_timeout = True
# Minimal tracebacks: a failing hidden test shows its message, not its source.
c.Execute.extra_arguments = ["--InteractiveShell.xmode=Minimal"]
# A learner who deletes a graded cell gets it back (and is graded on it).
c.OverwriteCells.add_missing_cells = True
# Keep huge outputs (a printed 10^6-element array) out of the graded notebook.
c.LimitOutput.max_lines = 500
c.LimitOutput.max_traceback = 50

# --- Feedback ----------------------------------------------------------------
# The autograded notebook carries the hidden tests again; strip them before
# rendering the HTML that goes back to learners.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
