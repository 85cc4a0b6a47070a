"""Progress of a training run on stderr: a live bar on a terminal, sparse lines otherwise."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from purenet.train import Snapshot


def describe(snapshot: Snapshot) -> str:
    return (
        f"loss {snapshot.train.loss:.4f}  train {snapshot.train.accuracy:6.2%}  "
        f"test {snapshot.test.accuracy:6.2%}"
    )


def clock(seconds: float) -> str:
    """Seconds as ``H:MM:SS``, as the bar shows them (``0:00:02``; ``27:03:00`` past a
    day)."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def time_left(elapsed: float, done: int, remaining: int) -> str:
    """The time left to do ``remaining`` more epochs at the pace of the ``done`` epochs
    that took ``elapsed`` seconds: ``H:MM:SS``, or ``?`` before any epoch is done."""
    if done <= 0:
        return "?"
    return clock(elapsed / done * remaining)


class TrainingProgress:
    """Shows epoch, loss, accuracies and the time elapsed and left while the fold runs.

    ``mode`` is ``"bar"`` (rich live display, for a terminal), ``"lines"`` (one line at every
    tenth of the run, for logs) or ``"off"``.
    """

    def __init__(
        self, total_epochs: int, start_epoch: int, mode: str, console: Console | None = None
    ):
        self.total = total_epochs
        self.start = start_epoch
        self.mode = mode
        self.every = max(1, total_epochs // 10)
        self._began = time.monotonic()
        self._progress: Progress | None = None
        if mode == "bar":
            self._progress = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[stats]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=console or Console(stderr=True),
            )
            self._task = self._progress.add_task(
                "train", total=total_epochs, completed=start_epoch, stats=""
            )

    @staticmethod
    def choose_mode(quiet: bool) -> str:
        if quiet:
            return "off"
        return "bar" if sys.stderr.isatty() else "lines"

    def __enter__(self) -> TrainingProgress:
        self._began = time.monotonic()
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def line(self, snapshot: Snapshot, elapsed: float) -> str:
        """The log line of ``snapshot``, ``elapsed`` seconds into this session."""
        done = snapshot.epoch - self.start
        left = time_left(elapsed, done, self.total - snapshot.epoch)
        return (
            f"epoch {snapshot.epoch}/{self.total}  {describe(snapshot)}  "
            f"elapsed {clock(elapsed)}, left {left}"
        )

    def update(self, snapshot: Snapshot) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=snapshot.epoch, stats=describe(snapshot))
        elif self.mode == "lines" and (
            snapshot.epoch % self.every == 0 or snapshot.epoch == self.total
        ):
            print(self.line(snapshot, time.monotonic() - self._began), file=sys.stderr)
