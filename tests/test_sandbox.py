"""The grading sandbox and the package copies it imports, run for real (bubblewrap, as root).

What a learner's process can see and do is checked from inside a real sandbox, not read off
its command line: the files outside the allowlist do not exist, nothing is writable but two
small private tmpfs, there is no network, and the uid is unprivileged. The package copy of
every graded function withholds exactly what its declaration forbids and nothing the other
answers may use.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import grading
from coursegrade import sandbox, withhold
from coursegrade.scoring import _declarations

pytestmark = pytest.mark.xdist_group("sandbox")
ROOT = grading.REPO_ROOT

PROBE = r'''
import json, os, socket
out = {"uid": os.getuid()}
def visible(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
for name, path in PATHS.items():
    out[name] = visible(path)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    out["network"] = True
except OSError:
    out["network"] = False
def fill(path, size):
    try:
        with open(path, "wb") as f:
            f.write(b"x" * size)
        return True
    except OSError:
        return False
out["big_file_in_home"] = fill("big", 100 * 2**20)
out["write_usr"] = fill("/usr/x", 1)
out["home"] = os.getcwd()
print(json.dumps(out))
'''


def _run_inside(tmp_path, code: str) -> dict:
    tmp_path.chmod(0o755)
    argv = sandbox.command(tmp_path, 60000, sandbox.Limits())
    argv[argv.index("-I") + 1:] = ["-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=sandbox.ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox switches uid: grading runs as root")
def test_only_the_allowlist_exists_inside(tmp_path):
    # (the checkout's folder itself may exist inside, empty, as a parent of the bound site-packages)
    paths = {"readme": str(ROOT / "README.md"), "git": str(ROOT / ".git"), "config": str(ROOT / "nbgrader_config.py"),
             "solutions": str(ROOT / "solutions"), "src": str(ROOT / "src"), "run": "/run", "home_dirs": "/home/x",
             "root_home": "/root/.bashrc", "shadow": "/etc/shadow", "passwd": "/etc/passwd",
             "var": "/var/tmp", "outside_tmp": str(Path(sys.prefix).parent / "solutions")}
    found = _run_inside(tmp_path, f"PATHS = {paths!r}\n" + PROBE)
    assert found["uid"] == 60000
    leaked = [name for name in paths if found[name]]
    assert not leaked, f"visible inside the sandbox: {leaked}"
    assert found["network"] is False
    assert found["big_file_in_home"] is False, "a 100 MB file fits in the 64 MB working folder"
    assert found["write_usr"] is False
    assert found["home"] == sandbox.LEARNER_HOME


def test_command_binds_nothing_but_the_allowlist(tmp_path):
    argv = sandbox.command(tmp_path, 60000, sandbox.Limits())
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert "/" not in binds and "/run" not in binds and "--bind" not in argv   # nothing writable from the host
    interpreter, site = sandbox.python_paths()
    assert {str(tmp_path), site} <= set(binds)
    assert argv.index("/tmp") < argv.index(str(tmp_path)), "the package bind must come after the /tmp tmpfs"


def _copy_runs(folder: Path, code: str) -> subprocess.CompletedProcess:
    paths = [str(folder), sandbox.python_paths()[1]]
    return subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {paths!r}\n" + code],
                          capture_output=True, text=True, timeout=120)


DECLARATIONS = _declarations()


def _one_per_forbidden_set() -> list[str]:
    """A declaration for each distinct forbidden set (the four initializers share one copy, for instance)."""
    from stablegrad.checking.engine import _forbidden

    first: dict[str, str] = {}
    for name in sorted(DECLARATIONS):
        first.setdefault(withhold.key(_forbidden(DECLARATIONS[name])), name)
    return sorted(first.values())


@pytest.mark.parametrize("name", _one_per_forbidden_set())
def test_package_copy_withholds_the_reference_and_keeps_the_rest(name, tmp_path):
    decl = DECLARATIONS[name]
    from stablegrad.checking.engine import _forbidden

    forbid = _forbidden(decl)
    withhold.build(tmp_path, forbid, name)
    targets = withhold.withheld_names(forbid)
    code = ["import importlib, pkgutil, stablegrad",
            "for m in pkgutil.walk_packages(stablegrad.__path__, 'stablegrad.'): importlib.import_module(m.name)",
            "from stablegrad._withheld import WithheldError", "import inspect", "results = {}",
            "def call(f):",
            "    ps = inspect.signature(f).parameters.values()",
            "    args = [None for p in ps if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]",
            "    kw = {p.name: None for p in ps if p.default is p.empty and p.kind == p.KEYWORD_ONLY}",
            "    f(*args, **kw)"]
    for module, (names, _) in targets.items():
        for fn in names:
            code += [f"try:\n    call(importlib.import_module({module!r}).{fn})\n    results[{module + '.' + fn!r}] = 'ran'",
                     f"except WithheldError:\n    results[{module + '.' + fn!r}] = 'withheld'",
                     f"except Exception as e:\n    results[{module + '.' + fn!r}] = type(e).__name__"]
    code += ["import json; print(json.dumps(results))"]
    proc = _copy_runs(tmp_path, "\n".join(code))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert results and set(results.values()) == {"withheld"}, results
    # the checks are not in the copy: no learner-style source, no mistake
    checking = tmp_path / "stablegrad" / "checking"
    assert not any("Mistake(" in p.read_text() for p in checking.glob("*.py"))
    # and each withheld function's body in the copy is the withholding call alone
    for fn in forbid:
        if not fn.__module__.startswith("stablegrad.") or fn.__module__.startswith("stablegrad.checking") \
                or fn.__name__ == "<lambda>":
            continue
        tree = ast.parse(tmp_path.joinpath(*fn.__module__.split(".")).with_suffix(".py").read_text())
        node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn.__name__)
        code = [stmt for stmt in node.body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
        assert len(code) == 1 and "withheld" in ast.unparse(code[0]), (fn.__qualname__, ast.unparse(node)[:300])


def test_functions_other_answers_use_stay_available(tmp_path):
    """chain_gradient_norms may call layers.stack_backward; clipped_sgd_step the clipping functions."""
    for name, call in [("chain_gradient_norms", "from stablegrad import layers; import numpy as np\n"
                        "out, c = layers.stack_forward(np.ones((2, 3)), [(np.ones((3, 2)), np.zeros(2))], 'tanh')\n"
                        "layers.stack_backward(np.ones_like(out), c)"),
                       ("clipped_sgd_step", "from stablegrad import clipping, network; import numpy as np\n"
                        "clipping.clip_by_global_norm({'W': np.ones(3)}, 1.0)\n"
                        "m = network.init_mlp([2, 3, 1], 'relu', rng=np.random.default_rng(0))\n"
                        "network.mlp_loss_and_grads(m, np.ones((4, 2)), np.ones((4, 1)), 'mse')")]:
        from stablegrad.checking.engine import _forbidden

        folder = tmp_path / name
        withhold.build(folder, _forbidden(DECLARATIONS[name]), name)
        proc = _copy_runs(folder, call)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
