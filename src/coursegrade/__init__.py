"""Instructor tools for the course: release, collect, grade (in parallel, sandboxed), check.

The command line is :mod:`coursegrade.cli` (the ``course`` script). The pieces:

- :mod:`coursegrade.sandbox`: the kernel that runs a submission, wrapped in bubblewrap
  (no network, read-only system, hidden course files, unprivileged uid, resource limits);
- :mod:`coursegrade.autograde`: one worker that autogrades submissions one at a time in its
  own scratch course directory and gradebook, and says why a submission failed;
- :mod:`coursegrade.parallel`: the pool of workers, with a hard wall-time limit per submission;
- :mod:`coursegrade.gradebook`: copying an assignment into a worker's gradebook and merging
  the grades back into the course gradebook (one writer), plus the grading status file;
- :mod:`coursegrade.summary`: the progress bar and the final table.
"""

__version__ = "0.1.0"
