"""Busy-loop processes, to time the workloads on a machine that other jobs keep busy.

``busy_loops(n)`` starts ``n`` Python processes that do nothing but spin, waits until
each of them is spinning, and stops them all when its ``with`` block ends, however it
ends (an exception, Ctrl-C). A loop also stops by itself if the process that started it
dies without stopping it (killed, say): it notices that its parent has changed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

# Ignores SIGINT (Ctrl-C reaches the whole process group; the harness stops the loops
# itself, and a KeyboardInterrupt traceback from each would only clutter the terminal),
# says it is running, then spins until its parent is no longer the one that started it.
BUSY_LOOP = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent = os.getppid()
sys.stdout.write("x")
sys.stdout.flush()
while os.getppid() == parent:
    for _ in range(200_000):
        pass
"""


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` spinning processes for the duration of the ``with`` block."""
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", BUSY_LOOP],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                )
            )
        for process in processes:  # each writes one byte once it spins
            if process.stdout.read(1) != b"x":
                raise RuntimeError(f"busy loop {process.pid} exited {process.wait()}")
        yield processes
    finally:
        _stop(processes)
