"""Who computes: the cores this process may use, purenet's worker threads, and BLAS.

purenet runs every matrix product with BLAS kept to **one thread**, and spreads the work
over cores itself, on its own threads (blocks of rows, or a wide layer's column chunks;
see :mod:`purenet._engine.blocks`). Two reasons, both measured on this project's 2-core
machine:

- **Speed that survives a busy machine.** OpenBLAS's threads wait for work by spinning.
  When purenet's threads each call a multi-threaded BLAS, or when another process wants
  the same cores, the spinning threads take turns with the ones that have work: a
  784 x 512 product ran 20 times slower with two busy processes beside it than with one
  BLAS thread, and the reference epoch 12 times slower than when quiet.
- **Bits that do not depend on the environment.** OpenBLAS adds a product's terms in an
  order that depends on its thread count (a 128 x 784 by 784 x 512 product differs in
  the last bits between 1 and 2 threads), so a result computed under
  ``OPENBLAS_NUM_THREADS=1`` would differ from one computed under the default. With one
  BLAS thread always, and blocks whose sums are added in a fixed order, the result is
  the same whatever ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``PURENET_THREADS``
  say.

The BLAS thread count is set with threadpoolctl, which finds the BLAS that NumPy loaded
(OpenBLAS, MKL or BLIS), and is restored when purenet's work returns, so code around
purenet keeps its own setting.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np  # noqa: F401  (loaded before threadpoolctl looks for NumPy's BLAS)
import threadpoolctl

from purenet.errors import ConfigError

THREADS_VARIABLE = "PURENET_THREADS"  # caps purenet's threads, e.g. on a shared machine
# Opt-in: BLAS's own threads for the products of wide layers (see wide_blas_threads).
BLAS_THREADS_VARIABLE = "PURENET_BLAS_THREADS"

T = TypeVar("T")


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup, in cores (e.g. 1.5), or None if unlimited
    or unknown. Reads cgroup v2's ``cpu.max`` or cgroup v1's CFS quota and period."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


@functools.cache
def available_cores() -> int:
    """The cores this process may use: those of its CPU affinity mask, fewer if its
    cgroup's CPU quota allows less (a container limited to 1.5 CPUs gets 2 threads,
    the quota rounded up). Read once per process: every batch's plan asks."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


# More threads than this is a typo (and a thread each would be a waste), not a machine.
MAX_THREADS = 1024


def _count_from(variable: str, default: int) -> int:
    """The whole number in ``$variable``, 1 to :data:`MAX_THREADS`, else ``default`` if unset.

    Raises:
        ConfigError: naming the variable, for anything else (``'0'``, ``'1.5'``, ``'²'``).
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    # isdigit alone admits superscripts ('²') that int() refuses, and int() refuses 4,300
    # digits or more: both would be tracebacks
    digits = value.isascii() and value.isdigit() and len(value) <= 9
    count = int(value) if digits else 0
    if not 1 <= count <= MAX_THREADS:
        raise ConfigError(
            f"{variable} must be a whole number from 1 to {MAX_THREADS}, not {value!r}; "
            f"set it to the number of threads to use, or unset it"
        )
    return count


def default_workers() -> int:
    """purenet's threads: ``$PURENET_THREADS`` when set, else :func:`available_cores`."""
    return _count_from(THREADS_VARIABLE, 0) or available_cores()


def wide_blas_threads() -> int:
    """BLAS threads for each product of a wide layer: 1 (the default) unless
    ``$PURENET_BLAS_THREADS`` asks for more.

    On an idle machine OpenBLAS's own threads multiply a 784 x 512 layer faster than
    purenet's column chunks do, because they spin while they wait for work instead of
    sleeping; on a busy machine that spinning makes them collapse, and their number
    changes the last bits of every product. So this is an opt-in, for a machine that
    runs nothing else: the run records it, and a replay needs the same setting.
    """
    return _count_from(BLAS_THREADS_VARIABLE, 1)


# -- BLAS ------------------------------------------------------------------------------------


@functools.cache
def _blas_libraries() -> tuple:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process."""
    return tuple(threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved: list[int] = []


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within this context, BLAS runs every call on the calling thread.

    Re-entrant and safe to enter from several threads: the first to enter sets one
    thread, the last to leave restores what was there before. Costs a few microseconds.
    """
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            libraries = _blas_libraries()
            _blas_saved = [library.get_num_threads() for library in libraries]
            for library in libraries:
                library.set_num_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for library, threads in zip(_blas_libraries(), _blas_saved, strict=True):
                    library.set_num_threads(threads)


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Within :func:`single_threaded_blas`, let BLAS use ``count`` threads for a while
    (for :func:`wide_blas_threads`), then one again."""
    libraries = _blas_libraries()
    for library in libraries:
        library.set_num_threads(count)
    try:
        yield
    finally:
        for library in libraries:
            library.set_num_threads(1)


def blas_kernels() -> str:
    """The kernel family of NumPy's BLAS (``Haswell``, ``SkylakeX``...), on which the last
    bits of every product depend; the library's name when it reports no family, ``none``
    without a BLAS."""
    libraries = _blas_libraries()
    if not libraries:
        return "none"
    # another package may load a BLAS of its own: NumPy's is the one that computes here
    ours = [lib for lib in libraries if Path(lib.filepath).parent.name == "numpy.libs"]
    ours = ours or list(libraries)
    return getattr(ours[0], "architecture", None) or ours[0].internal_api


def blas_description() -> dict[str, str]:
    """What decides the last bits of a product on this machine: the BLAS library, its
    version and the kernels it picked for this CPU (e.g. ``Haswell``, ``SkylakeX``), and
    the environment variables that can change that choice. Recorded with every run."""
    libraries = _blas_libraries()
    described = {
        "blas": ", ".join(
            f"{lib.internal_api} {lib.version or '?'} ({getattr(lib, 'architecture', '?')})"
            for lib in libraries
        )
        or "none found",
        "blas_threads": "1 (purenet's setting)"
        if (wide := wide_blas_threads()) == 1
        else f"{wide} for wide layers ({BLAS_THREADS_VARIABLE}), else 1",
    }
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if variable in os.environ:
            described[variable] = os.environ[variable]
    return described


# -- purenet's own threads -------------------------------------------------------------------

_POOL_PREFIX = "purenet-worker"
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, size, pool)
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """A pool of at least ``workers`` threads, made once per process (a forked child
    inherits the pool but not its threads, so it makes its own)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
            pool = ThreadPoolExecutor(workers, thread_name_prefix=_POOL_PREFIX)
            _pool = (os.getpid(), workers, pool)
        return _pool[2]


def _in_pool() -> bool:
    """Whether the calling thread is one of the pool's: tasks that run tasks of their own
    run them in turn, since waiting for the pool from inside it could wait forever."""
    return threading.current_thread().name.startswith(_POOL_PREFIX)


def run_tasks(tasks: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """``[task() for task in tasks]``, on ``workers`` threads with single-threaded BLAS;
    results in task order.

    Each task must be pure; NumPy and BLAS release the GIL while they compute, so the
    threads run in parallel.
    """
    workers = min(workers, len(tasks))  # more threads than tasks would only wait
    with single_threaded_blas():
        if workers <= 1 or len(tasks) <= 1 or _in_pool():
            return [task() for task in tasks]
        results: list = [None] * len(tasks)
        claims = itertools.count()  # next() on it is atomic: each task is claimed once

        def drain() -> None:
            while (i := next(claims)) < len(tasks):
                results[i] = tasks[i]()

        # Threads claim tasks as they become free, so one that starts late or runs slow
        # (on a busy machine, one whose core is taken) leaves its share to the others.
        # The calling thread works too. Which thread runs a task never changes its result.
        pool = _executor(workers - 1)
        others = [pool.submit(drain) for _ in range(workers - 1)]
        try:
            drain()
        finally:
            # A worker that has not woken yet (on a busy machine it may wait milliseconds
            # for a core) has claimed nothing: it is called off instead of waited for.
            # One that has started is waited for, even if the caller failed, so that no
            # task runs after this returns.
            started = [future for future in others if not future.cancel()]
            for future in started:
                future.result()
        return results
