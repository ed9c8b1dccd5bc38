"""The sandbox around a learner's process (bubblewrap + setpriv + prlimit, and cgroups where allowed).

A learner's answers run in :mod:`coursegrade.learner`, started as::

    bwrap --unshare-all --die-with-parent --new-session --clearenv     no network, own pids, no tty
          --ro-bind /usr /usr  (+ /bin, /lib... as the host links them)  the system, read-only
          --ro-bind /etc/ld.so.cache ...                                 nothing else from /etc
          --ro-bind PYTHON PYTHON --ro-bind SITE SITE                    the interpreter and its libraries
          --ro-bind PACKAGE PACKAGE                                      the package copy (coursegrade.withhold)
          --dev /dev --proc /proc                                        a minimal /dev, its own /proc
          --size S --tmpfs /tmp  --size S --tmpfs /home/learner          private, size-limited, discarded
      setpriv --reuid UID --regid UID --clear-groups --no-new-privs --bounding-set -all --inh-caps -all
        prlimit --as MEM --nproc N --fsize F --nofile 256 --core 0
          python -I -S learner.py PACKAGE SITE

Mounts are an allowlist: what is not named above does not exist inside (no
``/run`` and its sockets, no ``/home``, ``/root``, no checkout of the course,
no other student's files, no gradebook). Nothing inside is ever read back:
the grader talks to the process over its stdin/stdout pipes in plain data
(:mod:`coursegrade.channel`), and the working folder is a tmpfs that vanishes
with the process, so no symlink, device or huge file planted there can reach
the grader.

Limits. Per process: address space (RLIMIT_AS), file size, open files and
core dumps (``prlimit``); processes and threads per uid (RLIMIT_NPROC; each
worker slot has its own uid). For the sandbox as a whole: memory, process
count and one CPU through a cgroup per slot when the host lets root create
cgroups (v2, or v1's memory, pids and cpu controllers); :func:`limits_report`
says which hold. Without cgroups, several processes of one sandbox can each
use the address-space limit; the tmpfs sizes still bound the disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

OVERRIDE_FLAG = "--no-sandbox"
LEARNER_HOME = "/home/learner"
# The learner's process starts from an empty environment and gets only these.
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": LEARNER_HOME, "OPENBLAS_NUM_THREADS": "1",
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
       "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": "/tmp/matplotlib"}


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up on this machine (the message says why and what to do)."""


@dataclass
class Limits:
    """Resource limits of one learner's sandbox."""

    memory_bytes: int = 3 * 2**30      # RLIMIT_AS per process, and the cgroup's memory for the whole sandbox
    nproc: int = 64                    # RLIMIT_NPROC per uid, and the cgroup's pids
    fsize_bytes: int = 64 * 2**20      # RLIMIT_FSIZE
    tmp_bytes: int = 64 * 2**20        # each of /tmp and the working folder
    cpus: float = 1.0                  # the cgroup's CPU quota


def python_paths() -> tuple[str, str]:
    """The real interpreter and the directory of this environment's libraries (numpy...)."""
    return os.path.realpath(sys.executable), sysconfig.get_paths()["purelib"]


def _system_binds() -> list[str]:
    argv = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    return argv


def command(package_dir: Path, uid: int, limits: Limits, sandboxed: bool = True) -> list[str]:
    """The command line that starts the learner's side with ``package_dir`` first on its path."""
    interpreter, site = python_paths()
    learner = str(Path(package_dir) / "coursegrade_learner.py")
    inner = [interpreter, "-I", "-S", learner, str(package_dir), site]
    if not sandboxed:
        return inner
    prefix = str(Path(interpreter).parent.parent)       # the interpreter's installation (its stdlib)
    # (not --unshare-all: its user namespace would leave the sandbox uid unmapped)
    argv = [shutil.which("bwrap") or "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv",
            *_system_binds(), "--dev", "/dev", "--proc", "/proc",
            "--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
            "--size", str(limits.tmp_bytes), "--perms", "0777", "--tmpfs", LEARNER_HOME]
    made = {"/tmp", LEARNER_HOME}
    for path in sorted({prefix, site, str(package_dir)}):   # after /tmp: the package copy may live under it
        if path.startswith("/usr/"):
            continue
        # bwrap would give the missing parents the modes of the originals (/root is 0700): make them traversable
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", path, path]
    argv += ["--chdir", LEARNER_HOME]
    for key, value in sorted(ENV.items()):
        argv += ["--setenv", key, value]
    argv += ["--", shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
             "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
             "--", shutil.which("prlimit") or "prlimit", f"--as={limits.memory_bytes}", f"--nproc={limits.nproc}",
             f"--fsize={limits.fsize_bytes}", "--nofile=256", "--core=0", "--", *inner]
    return argv


def install_learner(package_dir: Path) -> None:
    """Put the learner's side of the channel next to the package copy."""
    shutil.copyfile(Path(__file__).with_name("learner.py"), Path(package_dir) / "coursegrade_learner.py")


# --------------------------------------------------------------------------- cgroups

class Cgroup:
    """One cgroup per worker slot limiting the sandbox as a whole, when the host allows it.

    ``join`` runs in the child between fork and exec (``preexec_fn``), so every
    process of the sandbox is inside from its start.
    """

    V1 = Path("/sys/fs/cgroup")

    def __init__(self, name: str, limits: Limits):
        self.dirs: list[Path] = []
        self.kind = "none"
        v2 = self.V1 / "cgroup.controllers"
        try:
            if v2.exists() and {"memory", "pids"} <= set(v2.read_text().split()):
                d = self.V1 / name
                d.mkdir(exist_ok=True)
                (d / "memory.max").write_text(str(limits.memory_bytes))
                (d / "memory.swap.max").write_text("0") if (d / "memory.swap.max").exists() else None
                (d / "pids.max").write_text(str(limits.nproc))
                if (d / "cpu.max").exists():
                    (d / "cpu.max").write_text(f"{int(limits.cpus * 100000)} 100000")
                self.dirs, self.kind = [d], "cgroup v2 (memory, pids, cpu)"
            elif all((self.V1 / c / "cgroup.procs").exists() for c in ("memory", "pids", "cpu")):
                dirs = {c: self.V1 / c / name for c in ("memory", "pids", "cpu")}
                for d in dirs.values():
                    d.mkdir(exist_ok=True)
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
                (dirs["pids"] / "pids.max").write_text(str(limits.nproc))
                (dirs["cpu"] / "cpu.cfs_period_us").write_text("100000")
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * 100000)))
                self.dirs, self.kind = list(dirs.values()), "cgroup v1 (memory, pids, cpu)"
        except OSError:
            self.remove()
            self.dirs, self.kind = [], "none"

    def join(self) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def oom_killed(self) -> bool:
        """Whether the memory limit killed a process since the last call."""
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                path = d / name
                if path.exists():
                    for line in path.read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value or 0) > getattr(self, "_seen", 0):
                            self._seen = int(value)
                            return True
        return False

    def kill_all(self) -> None:
        for d in self.dirs:
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError, PermissionError):
                    pass

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass

    @classmethod
    def remove_stale(cls) -> None:
        """Remove the cgroups of grading workers that are gone (``coursegrade-<pid>-<uid>``, a killed worker's)."""
        for d in [*cls.V1.glob("coursegrade-*"), *cls.V1.glob("*/coursegrade-*")]:
            pid = d.name.split("-")[1] if d.name.count("-") >= 2 else ""
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                group = cls.__new__(cls)
                group.dirs, group.kind = [d], "stale"
                group.remove()


def limits_report(limits: Limits) -> str:
    """What holds on this host, in words (printed by ``course grade``)."""
    group = Cgroup(f"coursegrade-probe-{os.getpid()}", limits)
    kind = group.kind
    group.remove()
    whole = (f"the whole sandbox: {limits.memory_bytes // 2**20} MB, {limits.nproc} processes, "
             f"{limits.cpus:g} CPU ({kind})" if kind != "none" else
             "no cgroups here: memory is limited per process only")
    return (f"per process: {limits.memory_bytes // 2**20} MB address space, {limits.fsize_bytes // 2**20} MB files; "
            f"{whole}; /tmp and the working folder {limits.tmp_bytes // 2**20} MB each")


# --------------------------------------------------------------------------- probe

def probe() -> None:
    """Check that a sandboxed process can start here; raise :class:`SandboxUnavailable` if not."""
    missing = [tool for tool in ("bwrap", "setpriv", "prlimit") if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailable(
            f"cannot sandbox the learners' code: {', '.join(missing)} not found (Debian: "
            f"apt-get install bubblewrap util-linux). To grade WITHOUT a sandbox (student code then runs "
            f"with your rights), pass {OVERRIDE_FLAG}.")
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "cannot sandbox the learners' code: grading must run as root to switch each sandbox to its "
            f"own unprivileged uid (RLIMIT_NPROC is per uid). Run as root, or pass {OVERRIDE_FLAG}.")
    with tempfile.TemporaryDirectory(prefix="coursegrade-probe-") as tmp:
        os.chmod(tmp, 0o755)
        argv = command(Path(tmp), 60000, Limits())
        argv[argv.index("-I") + 1:] = ["-c", "import os; print(os.getuid())"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            proc = subprocess.CompletedProcess(argv, 1, "", str(exc))
        if proc.returncode != 0 or proc.stdout.strip() != "60000":
            raise SandboxUnavailable(
                f"cannot sandbox the learners' code: bubblewrap failed here ({proc.stderr.strip()[-300:]}). "
                f"Fix it (user namespaces, /proc mounts...) or pass {OVERRIDE_FLAG} to grade without a sandbox.")
