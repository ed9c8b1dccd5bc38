"""Numeric configurations for the portability harness (rule 1: true on any machine).

The same NumPy code gives results that differ in the last bits from one machine to the next, because
OpenBLAS picks a kernel for the CPU it finds (SkylakeX with AVX-512, Haswell with AVX2 and FMA,
Sandybridge with AVX and no FMA, Nehalem with SSE only...) and NumPy dispatches its loops to the widest
SIMD the CPU has. Both can be changed on one machine, without recompiling anything:

- ``OPENBLAS_CORETYPE=<kernel>`` makes OpenBLAS (built with DYNAMIC_ARCH, as in NumPy's wheels) load
  another kernel; only kernels whose instructions this CPU has can run;
- ``NPY_DISABLE_CPU_FEATURES=<targets>`` turns off NumPy's dispatch targets above its baseline.

A setting that the libraries ignore would make the harness prove nothing, so every configuration is
read back in a fresh interpreter (threadpoolctl for OpenBLAS, ``__cpu_features__`` for NumPy, the data
behind ``numpy.show_runtime()``) and used only if it really differs from the machine's own.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Read back what OpenBLAS and NumPy really use, as {"blas": "openblas:SkylakeX", "simd": [...]}. The same
# lines run in a fresh interpreter (PROBE) and in every notebook kernel of the harness (an IPython startup
# file that writes the record to the file named by $STABLEGRAD_CONFIG_LOG).
READ_BACK = r"""
import json as _json
import threadpoolctl as _tpc
from numpy._core._multiarray_umath import __cpu_dispatch__ as _dispatch, __cpu_features__ as _features
_record = _json.dumps({
    "blas": ",".join(f"{i['internal_api']}:{i.get('architecture')}" for i in _tpc.threadpool_info()
                     if i["user_api"] == "blas") or "none",
    "simd": sorted(t for t in _dispatch if _features.get(t)),
})
"""
PROBE = READ_BACK + "print(_record)\n"
KERNEL_PROBE = READ_BACK + """
import os as _os
with open(_os.environ["STABLEGRAD_CONFIG_LOG"], "a") as _log:
    _log.write(_record + "\\n")
del _json, _tpc, _dispatch, _features, _record, _os, _log
"""

# OpenBLAS x86_64 kernels from the widest to the narrowest, with the CPU flags (``/proc/cpuinfo``)
# each needs. Sandybridge has no FMA, so its sums round differently from the FMA kernels above it.
X86_KERNELS = [
    ("SkylakeX", {"avx512f", "avx512bw", "avx512dq", "avx512vl"}),
    ("Haswell", {"avx2", "fma"}),
    ("Sandybridge", {"avx"}),
    ("Nehalem", {"sse4_2"}),
]
# aarch64: the generic ARMv8 kernel runs on every 64-bit ARM CPU.
ARM_KERNELS = [("NEOVERSEN1", {"asimd"}), ("ARMV8", set())]
# Kernels that OpenBLAS builds from the same code (same rounding): choosing one of them instead of
# the machine's own would change nothing.
FAMILY = {"cooperlake": "skylakex", "sapphirerapids": "skylakex", "zen": "haswell",
          "excavator": "haswell", "bulldozer": "sandybridge", "piledriver": "sandybridge",
          "steamroller": "sandybridge", "barcelona": "nehalem", "core2": "nehalem", "penryn": "nehalem",
          "dunnington": "nehalem", "atom": "nehalem"}


def family(kernel: str) -> str:
    k = kernel.split(":")[-1].lower()
    return FAMILY.get(k, k)


@dataclass(frozen=True)
class Config:
    """One numeric configuration: a name, the environment that sets it, what was read back."""

    name: str
    env: dict = field(default_factory=dict)
    blas: str = ""
    simd: tuple = ()

    def describe(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in sorted(self.env.items())) or "(the machine's own)"
        return f"{self.name}: {settings} -> OpenBLAS kernel {self.blas}, NumPy SIMD targets {list(self.simd) or 'none'}"


def probe(env: dict | None = None) -> dict:
    """What OpenBLAS and NumPy really use under ``env`` (added to this process's environment):
    ``{"blas": "openblas:<kernel>", "simd": [<NumPy dispatch targets on>]}``."""
    full = {**os.environ, **(env or {})}
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"the probe failed under {env}: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _kernels() -> list[tuple[str, set]]:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return X86_KERNELS
    if machine in ("aarch64", "arm64"):
        return ARM_KERNELS
    return []


@functools.lru_cache(maxsize=None)
def own() -> Config:
    info = probe()
    return Config("own", {}, info["blas"], tuple(info["simd"]))


@functools.lru_cache(maxsize=None)
def harness_configs() -> tuple[tuple[Config, ...], tuple[str, ...]]:
    """The configurations the harness runs, and why others were left out.

    1. ``other-blas``: the widest OpenBLAS kernel that this CPU runs and that rounds differently from
       the one OpenBLAS picks by itself (another vector width, or no FMA);
    2. ``reduced-simd``: every NumPy dispatch target above the baseline switched off, together with the
       narrowest OpenBLAS kernel (SSE only): the configuration farthest from a modern machine.
    """
    me, flags, notes, configs = own(), _cpu_flags(), [], []
    runnable = [name for name, needs in _kernels() if needs <= flags]
    others = [k for k in runnable if family(k) != family(me.blas)]
    if not others:
        notes.append(f"no other OpenBLAS kernel is known to run on this {platform.machine()} CPU "
                     f"(own kernel {me.blas}): the BLAS kernel is not changed")
    for kernel in others:
        cfg = _checked(Config("other-blas", {"OPENBLAS_CORETYPE": kernel}), notes)
        if cfg:
            configs.append(cfg)
            break
    simd_off = {"NPY_DISABLE_CPU_FEATURES": ",".join(me.simd)} if me.simd else {}
    if not simd_off:
        notes.append("NumPy dispatches to no SIMD target above its baseline here: SIMD is not reduced")
    used = {family(c.blas) for c in configs}
    narrow = [k for k in reversed(others) if family(k) not in used] or [None]
    trial = Config("reduced-simd", {**simd_off, **({"OPENBLAS_CORETYPE": narrow[0]} if narrow[0] else {})})
    if trial.env:
        cfg = _checked(trial, notes)
        if cfg:
            configs.append(cfg)
    return tuple(configs), tuple(notes)


def _checked(cfg: Config, notes: list) -> Config | None:
    """Read ``cfg`` back in a fresh interpreter; keep it only if every setting took effect."""
    try:
        info = probe(cfg.env)
    except RuntimeError as exc:
        notes.append(f"{cfg.name} {cfg.env} cannot be set here: {exc}")
        return None
    got = Config(cfg.name, cfg.env, info["blas"], tuple(info["simd"]))
    wanted = cfg.env.get("OPENBLAS_CORETYPE")
    if wanted and family(got.blas) == family(own().blas):
        notes.append(f"OPENBLAS_CORETYPE={wanted} did not change the kernel (still {got.blas})")
        return None
    if "NPY_DISABLE_CPU_FEATURES" in cfg.env and got.simd:
        notes.append(f"NPY_DISABLE_CPU_FEATURES={cfg.env['NPY_DISABLE_CPU_FEATURES']} left {list(got.simd)} on")
        return None
    return got
