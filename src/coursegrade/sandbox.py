"""The sandbox around the kernel that runs a submission (bubblewrap + setpriv + prlimit).

nbgrader starts the ``python3`` kernel from a kernelspec. A grading worker installs its own
``python3`` kernelspec whose command is this module::

    python -m coursegrade.sandbox POLICY.json -- python -m ipykernel_launcher -f CONNECTION_FILE ...

which, still as the grader, hands the connection file to the sandbox uid and then replaces
itself by::

    bwrap  --ro-bind / /  --dev /dev  --proc /proc           read-only system, venv and package
           --tmpfs COURSE_ROOT --tmpfs SCRATCH --tmpfs /root   course files, gradebook, solutions,
           --tmpfs /home  --tmpfs /tmp (size-limited)          other students: not there at all
           --ro-bind VENV VENV  --ro-bind SRC SRC              ... except what the kernel imports
           --bind WORKDIR WORKDIR  --bind RUNTIME RUNTIME      its own folder, its ipc sockets
           --unshare-net --unshare-pid --unshare-ipc --unshare-uts --die-with-parent --clearenv
      setpriv --reuid UID --regid UID --clear-groups --no-new-privs --bounding-set -all
        prlimit --as MEM --nproc N --fsize F --core 0
          python -m ipykernel_launcher -f CONNECTION_FILE

The network namespace has only a loopback, so the kernel talks to the grader over unix
sockets: the worker sets ``KernelManager.transport = "ipc"``, and the sockets live in the
worker's runtime directory, bound at the same path inside the sandbox. Interrupts are sent
as messages (``interrupt_mode: message``), so SIGINT never reaches bubblewrap itself.

Why bubblewrap: it is a Debian package, needs no daemon and no setuid helper when the
grader is root (it is, in CI), builds the mount/pid/net namespaces per kernel in
milliseconds, and ``--die-with-parent`` ties the kernel's life to the worker's. Root ignores
RLIMIT_NPROC, hence ``setpriv`` to an unprivileged uid (one per worker slot, so that two
kernels never share a process budget). Memory (RLIMIT_AS), processes (RLIMIT_NPROC, threads
included), file size (RLIMIT_FSIZE) and core dumps are capped by ``prlimit``; wall time per
cell is nbgrader's ``Execute.timeout``, the wall time per submission is enforced by
:mod:`coursegrade.parallel`, and output by :class:`coursegrade.autograde.GuardedExecute`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Whatever the grader's environment holds (database URLs with passwords, tokens), the kernel
# starts from an empty one and gets only these.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "MPLBACKEND", "PYDEVD_DISABLE_FILE_VALIDATION", "NBGRADER_EXECUTION", "JUPYTER_PLATFORM_DIRS",
              "PYTHONHASHSEED", "TZ")
OVERRIDE_FLAG = "--no-sandbox"


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up on this machine (the message says why and what to do)."""


@dataclass
class Policy:
    """What a sandboxed kernel may see and use.

    Parameters
    ----------
    hide : list of str
        Directories replaced by an empty read-only tmpfs (course root, scratch root, homes).
    expose : list of str
        Directories under a hidden one bound back read-only (the venv, the package sources).
    runtime_dir : str
        Where the connection file and ipc sockets live (bound read-write).
    uid : int
        The unprivileged uid (and gid) the kernel runs as.
    memory_bytes, nproc, fsize_bytes, tmp_bytes : int
        RLIMIT_AS, RLIMIT_NPROC (threads count), RLIMIT_FSIZE and the size of the private /tmp.
    """

    hide: list = field(default_factory=list)
    expose: list = field(default_factory=list)
    runtime_dir: str = ""
    uid: int = 60000
    memory_bytes: int = 3 * 2**30
    nproc: int = 256
    fsize_bytes: int = 256 * 2**20
    tmp_bytes: int = 256 * 2**20

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str) -> "Policy":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


# Replaced by a private, size-limited tmpfs in every sandbox.
PRIVATE_TMPFS = (Path("/tmp"), Path("/dev/shm"))


def _inside(path: Path, roots) -> bool:
    return any(path == r or r in path.parents for r in roots)


def default_policy(course_root: Path, scratch_root: Path, runtime_dir: Path, uid: int, **limits) -> Policy:
    """Hide the course, the scratch area and homes; expose back what the kernel imports."""
    hide = [Path(p).resolve() for p in (course_root, scratch_root, "/root", "/home", "/var/tmp")]
    hide = [p for p in hide if p.is_dir()]
    # The venv, and the interpreter it points to (which may live under /root, e.g. pyenv).
    wanted = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
              Path(os.path.realpath(sys.executable)).parent.parent}
    for module in ("stablegrad",):
        try:
            spec = __import__(module).__file__
        except ImportError:
            continue
        wanted.add(Path(spec).resolve().parent.parent)  # the directory on sys.path (src/ or site-packages)
    # /tmp and /dev/shm become private tmpfs mounts too (wrap_command): a venv that lives there (a
    # checkout under /tmp, as on some CI machines) must be bound back like one under the course root.
    expose = sorted(str(p) for p in wanted if _inside(p, [*hide, *PRIVATE_TMPFS]))
    return Policy(hide=[str(p) for p in hide], expose=expose, runtime_dir=str(runtime_dir), uid=uid, **limits)


def wrap_command(policy: Policy, workdir: str, command: list[str]) -> list[str]:
    """The bwrap/setpriv/prlimit command line that runs ``command`` in ``workdir``."""
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [bwrap, "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--hostname", "sandbox", "--clearenv",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--size", str(policy.tmp_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(policy.tmp_bytes), "--tmpfs", "/dev/shm"]
    for path in policy.hide:
        argv += ["--tmpfs", path]
    hidden = [*(Path(h) for h in policy.hide), *PRIVATE_TMPFS]
    for path in policy.expose:
        # bwrap would create the missing parents with the modes of the originals (/root/.pyenv is
        # 0700): make them traversable for the kernel's uid.
        for parent in reversed(Path(path).parents):
            if any(h in parent.parents for h in hidden):
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", path, path]
    argv += ["--bind", workdir, workdir, "--bind", policy.runtime_dir, policy.runtime_dir]
    for path in policy.hide:  # read-only once the mount points for the binds above exist
        argv += ["--remount-ro", path]
    argv += ["--chdir", workdir]
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update(HOME="/tmp", IPYTHONDIR="/tmp/.ipython", MPLCONFIGDIR="/tmp/.matplotlib",
               JUPYTER_RUNTIME_DIR=policy.runtime_dir, PYTHONDONTWRITEBYTECODE="1")
    for key, value in sorted(env.items()):
        argv += ["--setenv", key, value]
    uid = str(policy.uid)
    argv += ["--", shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
             "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
             "--", shutil.which("prlimit") or "prlimit", f"--as={policy.memory_bytes}", f"--nproc={policy.nproc}",
             f"--fsize={policy.fsize_bytes}", "--core=0", "--", *command]
    return argv


def _connection_file(command: list[str]) -> str | None:
    for flag in ("-f", "--f", "--ConnectionFileMixin.connection_file"):
        if flag in command:
            return command[command.index(flag) + 1]
    return None


def launch(policy_path: str, command: list[str]) -> None:
    """Entry point of the sandboxed kernelspec: prepare, then exec bwrap (never returns)."""
    policy = Policy.load(policy_path)
    workdir = os.getcwd()
    # The kernel (another uid) must read its connection file and create sockets and files.
    conn = _connection_file(command)
    if conn:
        os.chown(conn, policy.uid, policy.uid)
    os.chown(policy.runtime_dir, policy.uid, policy.uid)
    for root, dirs, files in os.walk(workdir):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), policy.uid, policy.uid)
    os.chown(workdir, policy.uid, policy.uid)
    # What the kernel (or bwrap) prints on its own stdout/stderr, not the notebook's output, goes
    # to a log in the runtime directory, capped by RLIMIT_FSIZE.
    log = os.open(os.path.join(policy.runtime_dir, f"kernel-{os.getpid()}.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    argv = wrap_command(policy, workdir, command)
    os.execv(argv[0], argv)


def install_kernelspec(data_dir: Path, policy_path: Path, python: str = sys.executable) -> Path:
    """Write ``data_dir/kernels/python3/kernel.json`` running ipykernel inside the sandbox.

    Put ``data_dir`` first on ``JUPYTER_PATH`` so that it shadows the normal ``python3`` kernel.
    """
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python, "-m", "coursegrade.sandbox", str(policy_path), "--",
                 python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (grading sandbox)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


def install_plain_kernelspec(data_dir: Path, python: str = sys.executable) -> Path:
    """The same kernel without the sandbox (``--no-sandbox``): still this venv's python."""
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3", "language": "python", "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


def probe() -> None:
    """Check that a sandboxed process can start here; raise :class:`SandboxUnavailable` if not."""
    missing = [tool for tool in ("bwrap", "setpriv", "prlimit") if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailable(
            f"cannot sandbox the grading kernels: {', '.join(missing)} not found (Debian: "
            f"apt-get install bubblewrap util-linux). To grade WITHOUT a sandbox (student code then runs "
            f"with your rights), pass {OVERRIDE_FLAG}.")
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "cannot sandbox the grading kernels: grading must run as root to switch each kernel to its "
            f"own unprivileged uid (RLIMIT_NPROC is per uid). Run as root, or pass {OVERRIDE_FLAG}.")
    with tempfile.TemporaryDirectory(prefix="coursegrade-probe-") as tmp:
        runtime = Path(tmp, "run")
        runtime.mkdir()
        work = Path(tmp, "work")
        work.mkdir()
        os.chown(work, 60000, 60000)
        policy = default_policy(Path(tmp), Path(tmp), runtime, uid=60000)
        argv = wrap_command(policy, str(work), [sys.executable, "-c", "import os; print(os.getuid())"])
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            proc = subprocess.CompletedProcess(argv, 1, "", str(exc))
        if proc.returncode != 0 or proc.stdout.strip() != "60000":
            raise SandboxUnavailable(
                f"cannot sandbox the grading kernels: bubblewrap failed here ({proc.stderr.strip()[-300:]}). "
                f"Fix it (user namespaces, /proc mounts...) or pass {OVERRIDE_FLAG} to grade without a sandbox.")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m coursegrade.sandbox POLICY.json -- COMMAND...")
    launch(argv[0], argv[2:])


if __name__ == "__main__":
    main()
