"""Progress of a training run on stderr: a live bar on a terminal, sparse lines otherwise."""

from __future__ import annotations

import sys

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


class TrainingProgress:
    """Shows epoch, loss, accuracies and time left while the fold runs.

    ``mode`` is ``"bar"`` (rich live display, for a terminal), ``"lines"`` (one line at every
    tenth of the run, for logs) or ``"off"``.
    """

    def __init__(self, total_epochs: int, start_epoch: int, mode: str):
        self.total = total_epochs
        self.mode = mode
        self.every = max(1, total_epochs // 10)
        self._progress: Progress | None = None
        if mode == "bar":
            self._progress = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
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
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, snapshot: Snapshot) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=snapshot.epoch, stats=describe(snapshot))
        elif self.mode == "lines" and (
            snapshot.epoch % self.every == 0 or snapshot.epoch == self.total
        ):
            print(f"epoch {snapshot.epoch}/{self.total}  {describe(snapshot)}", file=sys.stderr)
