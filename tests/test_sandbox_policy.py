"""The sandbox's file-system policy, wherever the checkout lives (the zoo tests it end to end)."""

import sys
from pathlib import Path

from coursegrade import sandbox


def test_a_venv_under_tmp_is_bound_back_into_the_private_tmp(monkeypatch, tmp_path):
    # /tmp is a private tmpfs inside the sandbox: a checkout under /tmp (as on some CI machines)
    # must still see its interpreter, read-only.
    venv = Path("/tmp/some-checkout/.venv")
    monkeypatch.setattr(sys, "prefix", str(venv))
    policy = sandbox.default_policy(tmp_path / "course", tmp_path / "scratch", tmp_path / "run", uid=60000)
    assert str(venv) in policy.expose
    argv = sandbox.wrap_command(policy, str(tmp_path / "work"), ["python"])
    binds = [argv[i + 1:i + 3] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert [str(venv), str(venv)] in binds
    assert argv.index("/tmp") < argv.index(str(venv)), "the bind must come after the tmpfs it pierces"


def test_the_course_root_is_hidden_and_never_writable(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    policy = sandbox.default_policy(course, tmp_path / "scratch", tmp_path / "run", uid=60000)
    argv = sandbox.wrap_command(policy, str(tmp_path / "work"), ["python"])
    assert ["--tmpfs", str(course.resolve())] in [argv[i:i + 2] for i in range(len(argv) - 1)]
    assert ["--remount-ro", str(course.resolve())] in [argv[i:i + 2] for i in range(len(argv) - 1)]
    assert "--unshare-net" in argv
