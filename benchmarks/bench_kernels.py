"""OpenBLAS kernel families: which one this process got, and the environment that gives
another one to a child process.

OpenBLAS built for several CPUs (``DYNAMIC_ARCH``, as NumPy's wheels are) picks its
kernels when it loads: the CPU's own ("native"), or those named by
``OPENBLAS_CORETYPE``. ``OPENBLAS_L2_SIZE`` usually comes with it, for a CPU whose cache
size OpenBLAS cannot read. The family in use is the ``architecture`` that threadpoolctl
reports for NumPy's OpenBLAS. Forcing a family the CPU cannot run (``SkylakeX`` on a
CPU without AVX-512) kills the process with SIGILL at its first matrix product, so the
harness first asks a small probe process which family an environment gives.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

try:
    import threadpoolctl
except ImportError:  # the harness then cannot tell the families apart
    threadpoolctl = None

CORETYPE = "OPENBLAS_CORETYPE"
L2_SIZE = "OPENBLAS_L2_SIZE"
HASWELL = "Haswell"

# Run with this folder on sys.path: a few products, float32 and float64 (the families
# that cannot run here fail on them), then the family's name on stdout.
PROBE = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import numpy as np
a = np.ones((96, 96), dtype=np.float32)
b = np.ones((96, 96))
(a @ a, b @ b, a[0] @ a)
import bench_kernels
print(bench_kernels.architecture())
"""


def architecture() -> str | None:
    """The kernel family of the OpenBLAS that NumPy loaded (e.g. ``Haswell``), or None
    if NumPy's BLAS is not OpenBLAS or threadpoolctl is missing."""
    if threadpoolctl is None:
        return None
    blas = [
        info for info in threadpoolctl.threadpool_info() if info.get("internal_api") == "openblas"
    ]
    if not blas:
        return None
    # another library's own OpenBLAS may be loaded too: NumPy's is the one we mean
    ours = [info for info in blas if "numpy" in info.get("filepath", "")] or blas
    return ours[0].get("architecture") or None


def describe(arch: str | None, env: Mapping[str, str]) -> str:
    """E.g. ``OpenBLAS Haswell kernels (native)``."""
    if arch is None:
        why = "threadpoolctl missing" if threadpoolctl is None else f"BLAS: {np_blas_name()}"
        return f"kernel family unknown ({why})"
    how = f"{CORETYPE}={env[CORETYPE]}" if env.get(CORETYPE) else "native"
    return f"OpenBLAS {arch} kernels ({how})"


def np_blas_name() -> str:
    try:
        return np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def native_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the variables that force a family."""
    return {k: v for k, v in env.items() if k not in (CORETYPE, L2_SIZE)}


def haswell_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, CORETYPE: HASWELL}


def other_env(env: Mapping[str, str]) -> dict[str, str]:
    """The other family's environment: native if ``env`` forces a family, else
    Haswell's."""
    return native_env(env) if env.get(CORETYPE) else haswell_env(env)


def how(env: Mapping[str, str]) -> str:
    """How ``env`` chooses the family, in a few words."""
    if env.get(CORETYPE):
        return f"{CORETYPE}={env[CORETYPE]}"
    return f"{CORETYPE} unset (native)"


def exit_text(code: int) -> str:
    """``exited 1`` or ``killed by SIGILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited {code}"


@attrs.frozen
class Probe:
    arch: str | None  # the family the environment gives, if the probe ran
    failure: str | None  # why it did not


def probe(env: dict[str, str]) -> Probe:
    """Which family a process started with ``env`` gets."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe(None, str(exc))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return Probe(None, exit_text(done.returncode) + (f" ({last})" if last else ""))
    name = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "None"
    return Probe(None if name == "None" else name, None)


@attrs.frozen
class Plan:
    """Where the workload sections run: in this process, and/or in a child process
    started with ``child_env``; ``lines`` say why, for the output."""

    here: bool
    child_env: dict[str, str] | None = None
    lines: tuple[str, ...] = ()


def plan(mode: str, env: Mapping[str, str], here: str | None) -> Plan:
    """The plan for ``--kernels mode`` in a process with ``env`` that got family ``here``.

    ``this``: here only. ``both``: here, and in a child with :func:`other_env` unless
    that gives the same family. ``native`` and ``haswell``: here if this process has that
    family already, else in a child only.
    """
    if mode == "this":
        return Plan(True)
    if here is None:
        return Plan(True, None, (f"kernels: {describe(here, env)}; one family only",))
    if mode == "both":
        target = other_env(env)
    elif mode == "native":
        if not env.get(CORETYPE):
            return Plan(True)
        target = native_env(env)
    elif mode == "haswell":
        if here == HASWELL:
            return Plan(True)
        target = haswell_env(env)
    else:
        raise ValueError(f"unknown kernels mode {mode!r}")
    if target.get(CORETYPE) == HASWELL and here == HASWELL:
        found = Probe(HASWELL, None)  # no need to ask
    else:
        found = probe(target)
    if found.failure is not None:
        line = (
            f"kernels: a child process with {how(target)} failed: {found.failure}; "
            "its figures are missing"
        )
        return Plan(mode == "both", None, (line,))
    if found.arch == here:
        line = (
            f"kernels: {how(target)} gives the same family as this process ({here}), "
            "so the sections run once, here"
        )
        return Plan(True, None, (line,))
    line = f"kernels: {how(target)} gives {found.arch}; the sections run in a child process too"
    if mode != "both":
        line = f"kernels: {how(target)} gives {found.arch}; the sections run in a child process"
    return Plan(mode == "both", target, (line,))


def run_child(command: list[str], env: dict[str, str]) -> int:
    """Run the harness ``command`` with ``env``, its output going to this process's; its
    exit code (negative: killed by that signal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return subprocess.run(command, env=env, stdin=subprocess.DEVNULL).returncode
    except OSError as exc:
        print(f"  could not start the child process: {exc}")
        return 127
