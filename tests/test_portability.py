"""Rule 1, true on any machine: every chapter and solution under this machine's numeric configuration and others.

Each chapter runs under nbval (every cell, every compared output identical to the committed one) and each
solution under nbval-lax (every cell runs, every test passes): first under this machine's own OpenBLAS
kernel and NumPy SIMD level, then under configurations that round differently (see ``numeric_configs``).
``make test-chapters`` and ``make test-solutions`` do the first part alone, with a report per cell. A
configuration this CPU cannot run is left out, and the test report says why (``-rs`` prints the reasons).

Chapter cells whose printed output legitimately depends on the machine (results of training, which
amplifies rounding) are excluded from output comparison by the ``nbval-ignore-output`` tag, and only
if a hidden cell right after them asserts their claims with tolerances. ``EXCLUDED`` lists them all,
so the list cannot grow silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import numeric_configs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
# the book's per-cell timeout: nbval then runs each notebook as `make book` executes it (from its folder)
CELL_TIMEOUT_S = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]

# (chapter, cell id): what varies between machines. The hidden cell that follows asserts the claims.
EXCLUDED: dict[tuple[str, str], str] = {
    ("02_saturation.ipynb", "f37503c8"): "the two-moons runs over seeds: accuracies and plateau exits of training",
    ("02_saturation.ipynb", "c2a1e00c"): "the ten-layer SGD and RMSprop runs: losses after training",
    ("02_saturation.ipynb", "8ac84291"): "dead units after training and the 50-step kill experiment",
    ("03_initialization.ipynb", "c3a0f1e2"): "the chaotic std-1 tanh network (rounding grows 2.9x per layer) over seeds",
    ("04_batchnorm.ipynb", "46b4bd3d"): "the 20-layer runs with and without batch norm over seeds, and the one-ulp twin",
    ("05_clipping.ipynb", "c031"): "the fixes over seeds: final losses after 15 epochs of training",
    ("05_clipping.ipynb", "c043"): "the clipping-threshold sweep over seeds: final losses after training",
}

CONFIGS, NOTES = numeric_configs.harness_configs()


def _nbval(paths: list[Path], mode: str, env: dict, scratch: Path) -> subprocess.CompletedProcess:
    startup = scratch / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    # every kernel nbval starts appends what OpenBLAS and NumPy really use in it
    (startup / "00-record-numeric-config.py").write_text(numeric_configs.KERNEL_PROBE)
    env = {**env, "IPYTHONDIR": str(scratch / "ipython"), "STABLEGRAD_CONFIG_LOG": str(scratch / "kernels.jsonl")}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", "--nbval-current-env",
           "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
           "--nbval-cell-timeout", str(CELL_TIMEOUT_S), mode,
           *[str(p.relative_to(ROOT)) for p in paths]]
    full = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=900)


def test_the_harness_changes_the_numeric_configuration():
    """At least one configuration besides the machine's own, each read back from the libraries."""
    report = "\n".join([numeric_configs.own().describe(), *(c.describe() for c in CONFIGS), *NOTES])
    assert CONFIGS, f"no other numeric configuration can be set on this machine:\n{report}"
    me = numeric_configs.own()
    for cfg in CONFIGS:
        assert (cfg.blas, cfg.simd) != (me.blas, me.simd), report
        if "OPENBLAS_CORETYPE" in cfg.env:
            assert numeric_configs.family(cfg.blas) != numeric_configs.family(me.blas), report
        if "NPY_DISABLE_CPU_FEATURES" in cfg.env:
            assert cfg.simd == (), report
    if len(CONFIGS) < 2:
        pytest.skip("only one other configuration runs on this CPU: " + "; ".join(NOTES))


def _runs():
    """One item per (configuration, folder), each its own xdist group: they are among the slowest units.

    The machine's own configuration comes first: ``make test`` runs every notebook here, in one pytest
    session with the rest of the suite, so that all of it runs even when one part fails."""
    for cfg in (numeric_configs.own(), *CONFIGS) if CONFIGS else (numeric_configs.own(), None):
        for folder in ("chapters", "solutions"):
            name = f"{cfg.name if cfg else 'none'}-{folder}"
            yield pytest.param(cfg, folder, id=name, marks=pytest.mark.xdist_group(f"portability:{name}"))


@pytest.mark.parametrize("config, folder", list(_runs()))
def test_notebooks_hold_under_each_configuration(config, folder, tmp_path):
    if config is None:
        pytest.skip("no other numeric configuration can be set here: " + "; ".join(NOTES))
    # chapters: every compared output identical; solutions: every cell runs and every test passes
    paths, mode = (CHAPTERS, "--nbval") if folder == "chapters" else (SOLUTIONS, "--nbval-lax")
    run = _nbval(paths, mode, config.env, tmp_path)
    assert run.returncode == 0, (
        f"{folder} fail under {config.describe()}\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}")
    # the configuration was in force in every notebook's own kernel, as read back inside it
    kernels = [json.loads(line) for line in (tmp_path / "kernels.jsonl").read_text().splitlines()]
    assert len(kernels) == len(paths), f"{len(kernels)} kernels recorded their configuration, {len(paths)} expected"
    assert all(k == {"blas": config.blas, "simd": list(config.simd)} for k in kernels), (config.describe(), kernels)


def _ignored_cells() -> dict[tuple[str, str], list]:
    found = {}
    for path in CHAPTERS:
        cells = nbformat.read(path, as_version=4).cells
        for i, cell in enumerate(cells):
            if IGNORE_TAGS & set(cell.metadata.get("tags", [])):
                found[(path.name, cell.get("id", f"#{i}"))] = cells[i + 1:]
    return found


def test_cells_excluded_from_output_comparison_are_listed():
    found = _ignored_cells()
    assert set(found) == set(EXCLUDED), (
        "cells tagged nbval-ignore-output / nbval-skip differ from EXCLUDED: "
        f"new {sorted(set(found) - set(EXCLUDED))}, gone {sorted(set(EXCLUDED) - set(found))}")


def test_every_excluded_cell_has_its_claims_asserted_in_a_hidden_cell():
    for (chapter, cell_id), after in _ignored_cells().items():
        code = [c for c in after if c.cell_type == "code"]
        assert code, f"{chapter} cell {cell_id}: nothing follows the excluded cell"
        nxt = code[0]
        assert "remove-cell" in nxt.metadata.get("tags", []) and "assert" in nxt.source, (
            f"{chapter} cell {cell_id} is excluded from output comparison, so the next code cell must be a "
            "hidden (remove-cell) cell that asserts its claims with tolerances")
