"""What the commands share: error reporting, option types and data loading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from purenet.data import DATA_ENV, Dataset
from purenet.data_folder import load_from, locate
from purenet.errors import PurenetError
from purenet.history import Row
from purenet.runs import Run, RunError, last_sound_epoch, run_owning

from .usage import at_least


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``purenet: error: message`` to stderr and return the Exit to raise."""
    typer.echo(f"purenet: error: {message}", err=True)
    return typer.Exit(code)


DataOption = Annotated[
    Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
    typer.Option(
        "--data",
        help="Folder with the four MNIST IDX files (raw or .gz). "
        f"Default: ${DATA_ENV}, else the download cache (filled from the mirrors on first use).",
        metavar="DIR",
        file_okay=False,
    ),
]

RunArgument = Annotated[
    Path,
    typer.Argument(metavar="RUN", help="A run folder written by 'purenet train'.", file_okay=False),
]

EpochOption = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--epoch",
        metavar="N",
        callback=at_least(0),
        help="Epoch to use (default: the last one recorded).",
    ),
]

ResultEpochOption = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--epoch",
        metavar="N",
        callback=at_least(0),
        help="Epoch to use (default: the run's result: the last epoch recorded, or with "
        "--patience the best validation epoch).",
    ),
]


def load_run_data(run: Run, option: Path | None) -> Dataset:
    """The dataset of ``run``: from ``--data``, else ``$PURENET_DATA``, else the folder the
    run was trained from if it still exists, else the download cache. The content is
    checked against the run's own record (see :meth:`purenet.runs.Run.check_data`), which
    also covers runs trained on a user's own variant of the files."""
    where = locate(option, recorded=run.data_folder)
    return load_from(where, run.config.split, run.config.seed, verify=False)


def epoch_or_result(run: Run, epoch: int | None) -> int | None:
    """``epoch`` if given; else the run's result epoch when it is not the last (see
    :meth:`purenet.runs.Run.result_epoch`), said on stderr; else None (the last)."""
    if epoch is not None:
        return epoch
    result = run.result_epoch()
    if result is not None:
        last = run.status().get("epoch")
        typer.echo(
            f"purenet: epoch {result}, the best validation epoch, is the result of run "
            f"{run.name} (early stopping keeps it; training ran to epoch {last}: pass "
            f"--epoch {last} for that one)",
            err=True,
        )
    return result


def rows_and_epoch(
    run: Run, epoch: int | None, tolerate_cut_last_line: bool = False
) -> tuple[list[Row], int]:
    """The run's rows and the epoch to use: ``epoch`` if given, else the run's result
    (see :func:`epoch_or_result`), else the last recorded epoch, or after a divergence
    the last sound one, said in one line on stderr (the diverged epoch's params are not
    numbers, so nothing computed from them means much).

    Raises:
        RunError: as :meth:`purenet.runs.Run.rows_up_to`, or if the run diverged at once.
    """
    wanted = epoch_or_result(run, epoch)
    rows, chosen = run.rows_up_to(wanted, tolerate_cut_last_line)
    if wanted is None:
        sound = last_sound_epoch(rows)
        if sound is None:
            raise RunError(
                f"run {run.name} diverged at epoch {rows[0].epoch}: it has no sound params"
            )
        if sound != chosen:
            typer.echo(
                f"purenet: note: run {run.name} diverged at epoch {sound + 1}; using epoch "
                f"{sound}, its last sound epoch (--epoch picks another)",
                err=True,
            )
            chosen = sound
    return rows, chosen


def check_output(path: Path, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written or that is one of a
    run folder's own files (see :func:`purenet.runs.run_owning`). Any other existing file
    is replaced (atomically: it stays whole until the new one is complete).

    Raises:
        PurenetError: naming ``option`` and the file.
    """
    owner = run_owning(path)
    if owner is not None:
        raise PurenetError(
            f"{option} {path} would overwrite a file of run {owner}, which only its "
            "training writes; write it outside that run's files"
        )
    folder = path.parent
    if path.is_dir():
        raise PurenetError(f"{option} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise PurenetError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PurenetError(f"cannot write {path}: folder {folder} is not writable")
