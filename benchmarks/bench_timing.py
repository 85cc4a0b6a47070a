"""Timing helpers for the speed harness: interleaved rounds, medians, spread and ratios.

Implementations are timed one unit of work (an epoch) at a time, in rounds
``A B C A B C ...``, so that a slow spell of the machine (other jobs, thermal or
frequency changes) lands on all of them alike. Ratios are taken round by round (the
paired ratio ``a_i / b_i``) and summarised by their median and quartiles, which is
robust to a drift that a ratio of two overall medians would absorb.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Sequence

import attrs
import numpy as np


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile) of ``values``."""
    p25, p50, p75 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(p25), float(p50), float(p75)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy() -> float | None:
    """CPU seconds all processes on the machine have used since boot (every core's
    user, nice, system, interrupt and steal time, from /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


@attrs.frozen
class Sample:
    """One timed call: wall-clock seconds, this process's CPU seconds, and the CPU
    seconds that other processes (and the hypervisor's steal) used meanwhile."""

    wall: float
    cpu: float
    others: float | None


def timed(fn: Callable[[], object], collect: bool = True) -> Sample:
    """Time one call of ``fn()``, garbage collection off meanwhile (and, with
    ``collect``, run just before)."""
    if collect:
        gc.collect()
    gc.disable()
    try:
        busy, cpu, began = machine_busy(), time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        after = machine_busy()
    finally:
        gc.enable()
    others = None if busy is None or after is None else max(after - busy - cpu, 0.0)
    return Sample(wall, cpu, others)


@attrs.frozen
class Times:
    """Per-unit samples, one per round, in the order the units ran."""

    samples: dict[str, list[Sample]]

    @property
    def wall(self) -> dict[str, list[float]]:
        return {name: [s.wall for s in samples] for name, samples in self.samples.items()}

    def scaled(self, name: str, factor: float) -> Times:
        """The same, with ``name``'s wall-clock and CPU seconds multiplied by ``factor``
        (for a unit that repeats its work to outlast the clock's granularity)."""
        samples = dict(self.samples)
        samples[name] = [
            Sample(s.wall * factor, s.cpu * factor, None if s.others is None else s.others * factor)
            for s in samples[name]
        ]
        return Times(samples)

    def cores(self, name: str) -> float:
        """Median CPU seconds per wall-clock second: how many cores the unit kept busy
        (threads that spin while they wait count as busy)."""
        return median([s.cpu / s.wall for s in self.samples[name]])

    def others(self, name: str | None = None) -> float | None:
        """How many cores other processes kept busy, on average, while ``name`` (or any
        unit) ran; /proc/stat counts in ticks of 10 ms, so short calls need many rounds."""
        if name:
            samples = self.samples[name]
        else:
            samples = [s for unit in self.samples.values() for s in unit]
        if not samples or any(s.others is None for s in samples):
            return None
        return sum(s.others for s in samples) / sum(s.wall for s in samples)


def interleave(
    units: dict[str, Callable[[], object]],
    rounds: int,
    pause: float = 0.0,
    warm_up: dict[str, Callable[[], object]] | None = None,
) -> Times:
    """Time each unit once per round, in turn, for ``rounds`` rounds.

    ``pause`` seconds of sleep before each timed call let the thread pools of the
    previous library (OpenBLAS, OpenMP and XLA threads spin for a while after their work)
    go idle, so that they do not steal cores from the next one. ``warm_up[name]``, if
    given, runs untimed between the pause and the timed call, right before it (the
    garbage collection that precedes every timed call then runs before the warm-up).
    """
    times = Times({name: [] for name in units})
    for _ in range(rounds):
        for name, fn in units.items():
            if pause:
                time.sleep(pause)
            warm = warm_up.get(name) if warm_up else None
            if warm is not None:
                gc.collect()
                warm()
            times.samples[name].append(timed(fn, collect=warm is None))
    return times


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a_i / b_i`` for each round ``i``."""
    return [x / y for x, y in zip(a, b, strict=True)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def seconds_spread(values: Sequence[float], scale: float = 1e3) -> str:
    """``median [p25-p75] min`` of times, in milliseconds by default."""
    p25, p50, p75 = quartiles(values)
    return f"{p50 * scale:9.1f} [{p25 * scale:.1f}-{p75 * scale:.1f}] min {min(values) * scale:.1f}"


def ratio_spread(ratios: Sequence[float]) -> str:
    """``median [p25-p75]`` of paired ratios."""
    p25, p50, p75 = quartiles(ratios)
    return f"{p50:.3f} [{p25:.3f}-{p75:.3f}]"
