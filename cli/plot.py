"""``purenet plot``: every figure of a run at one epoch, replayed exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from purenet.errors import PurenetError
from purenet.history import History
from purenet.replay import describe_mismatch
from purenet.runs import last_sound_epoch
from purenet.titles import figure_title

from .common import DataOption, ResultEpochOption, RunArgument, check_output, fail
from .runs import rebuilt_epoch


def plot_command(
    run_folder: RunArgument,
    epoch: ResultEpochOption = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
        typer.Option(
            help="Folder to write the PNG files to (default: RUN/figures/epoch-NNNNNN).",
            metavar="DIR",
            file_okay=False,
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Write every figure of a run at an epoch (default: the run's result: the last
    epoch, or with --patience the best validation epoch) as PNG files.

    The epoch's params are read from its snapshot if it is on disk, else replayed
    exactly (and their metrics checked against the record), then
    drawn: training.png (the curves up to that epoch), confusion.png (the confusion
    matrix on the test set), per-class.png (test accuracy per digit), weights.png (the
    first layer's weights, one 28x28 tile per hidden unit) and misclassified.png (the
    most confident mistakes on the test set).
    """
    try:
        run, rows, dataset, snapshot = rebuilt_epoch(run_folder, epoch, data)
        mismatch = describe_mismatch(run, snapshot, rows[snapshot.epoch])
        if mismatch is not None:
            raise PurenetError(mismatch)
        sound = last_sound_epoch(rows[: snapshot.epoch + 1])
        if sound != snapshot.epoch:  # asked for, by --epoch: drawn, but not silently
            typer.echo(
                f"purenet: note: run {run.name} diverged at epoch "
                f"{0 if sound is None else sound + 1}; the figures of epoch {snapshot.epoch} "
                "come from params that overflow, so its test-set figures mean little",
                err=True,
            )
        folder = out if out is not None else run.folder / "figures" / f"epoch-{snapshot.epoch:06d}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PurenetError(f"cannot create {folder}: {exc.strerror or exc}") from None
        from purenet.plot import epoch_figures, save_figure  # loads matplotlib

        figures = epoch_figures(
            History.from_rows(rows[: snapshot.epoch + 1]),
            snapshot.params,
            dataset.x_test,
            dataset.y_test,
            figure_title(run.config),
        )
        for name, fig in figures.items():
            path = folder / f"{name}.png"
            check_output(path, "--out")
            save_figure(fig, path)
            typer.echo(path)
    except PurenetError as exc:
        raise fail(str(exc)) from None
