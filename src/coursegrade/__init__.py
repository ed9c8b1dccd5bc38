"""Instructor tools for the course: release, collect, grade (in parallel, sandboxed), check.

The command line is :mod:`coursegrade.cli` (the ``course`` script). Grading, by job:

- :mod:`coursegrade.scoring`: one submission's grade as a function of its bytes and the assignment
  (parsing with limits, which cells run where, the test cells run by the grader, the result as data);
- :mod:`coursegrade.learner`: the learner's side, run in the sandbox: defines the answers, answers calls;
- :mod:`coursegrade.channel`: the grader's side of that channel (plain data, deadlines, size caps) and the
  stand-ins for the learner's functions;
- :mod:`coursegrade.withhold`: the package copy a sandbox imports, with the graded references withheld;
- :mod:`coursegrade.sandbox`: bubblewrap with allowlist mounts, an unprivileged uid, rlimits and cgroups;
- :mod:`coursegrade.worker`: one grading slot (safe reads, scratch gradebook, nbgrader's feedback pages);
- :mod:`coursegrade.parallel`: the pool of workers, with a hard wall-time limit per submission;
- :mod:`coursegrade.gradebook`: assignment definitions and merging grades into the course gradebook (one writer);
- :mod:`coursegrade.summary`: the progress bar and the final table.
"""

__version__ = "0.1.0"
