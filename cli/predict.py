"""``purenet predict``: read handwritten digits from your own pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import attrs
import numpy as np
import typer

from purenet.digit_count import digits_side_by_side
from purenet.errors import PurenetError
from purenet.images import MAX_PIXELS, ImageReadError, read_image
from purenet.keyframes import params_at
from purenet.predict import class_probabilities, describe, top_classes
from purenet.prepare import prepare_digit
from purenet.runs import Run

from .common import DataOption, ResultEpochOption, RunArgument, fail, load_run_data, rows_and_epoch


def predict_command(
    run_folder: RunArgument,
    images: Annotated[
        list[Path],
        typer.Argument(
            metavar="IMAGE",
            help="Pictures (PNG, JPEG, BMP, GIF, WebP or TIFF) of one handwritten digit "
            f"each, up to {MAX_PIXELS:,} pixels, dark ink on light paper or light on dark.",
        ),
    ],
    epoch: ResultEpochOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the results as one JSON object, with an entry for every picture "
            "(its error, if it could not be read).",
        ),
    ] = False,
    show_input: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
        typer.Option(
            "--show-input",
            metavar="FILE",
            help="Also write a PNG figure of each picture beside the 28x28 input the "
            "network was given.",
            dir_okay=False,
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Classify pictures of handwritten digits with a run's network.

    Each picture is prepared as MNIST was: greyscale, inverted if dark on light, cropped
    to the ink, scaled to fit 20x20 keeping its aspect, centred by its centre of mass in
    28x28, pixels in [0, 1]. Prints the digit and the three most probable classes. A
    file that is missing, unreadable, not a picture, too large, or blank gets one error
    line, and the command exits 1 (the other pictures are still classified). A picture
    that seems to hold several digits side by side gets a warning.
    """
    try:
        run = Run.open(run_folder)
        _, epoch = rows_and_epoch(run, epoch, tolerate_cut_last_line=True)
        ((_, params),) = params_at(run, [epoch], lambda: load_run_data(run, data))
    except PurenetError as exc:
        raise fail(str(exc)) from None

    entries = [read_input(path) for path in images]
    read = [entry for entry in entries if entry.error is None]
    probabilities = class_probabilities(params, np.stack([e.row for e in read])) if read else []
    for entry, p in zip(read, probabilities, strict=True):
        if np.isfinite(p).all():
            entry.probabilities = p
        else:  # params that are not numbers (a diverged epoch) or overflow: no answer
            entry.error = (
                f"{entry.name}: the network's output at epoch {epoch} is not a number (its "
                "params are not finite or overflow); pick an earlier --epoch"
            )
    read = [entry for entry in read if entry.error is None]
    for entry in entries:  # on stderr whatever the output, so a script's JSON stays pure
        if entry.error is not None:
            typer.echo(f"purenet: error: {entry.error}", err=True)
        for warning in entry.warnings:
            typer.echo(f"purenet: warning: {entry.name}: {warning}", err=True)
    if as_json:
        payload = {
            "run": str(run.folder),
            "epoch": epoch,
            "predictions": [entry.as_json() for entry in entries],
        }
        typer.echo(json.dumps(payload, indent=2, allow_nan=False))
    else:
        for entry in read:
            typer.echo(describe(entry.name, top_classes(entry.probabilities)))
    if show_input is not None:
        draw_inputs(show_input, read)
    if len(read) < len(entries):
        raise typer.Exit(1)


@attrs.define
class Input:
    """One picture given to ``predict``: what became of it."""

    name: str
    picture: np.ndarray | None = None  # as read, (h, w[, c])
    row: np.ndarray | None = None  # the prepared input, (784,)
    error: str | None = None  # why it could not be read (one line naming the file)
    warnings: list[str] = attrs.Factory(list)
    probabilities: np.ndarray | None = None  # (n_classes,), once classified
    count: int = 1  # digits side by side in the picture

    def as_json(self) -> dict:
        """Its entry in ``--json`` output: the image, its error (null when it was read)
        and warnings, and when read the digit, the top three and all probabilities."""
        entry: dict = {"image": self.name, "error": self.error, "warnings": self.warnings}
        if self.probabilities is not None:
            top = top_classes(self.probabilities)
            entry.update(
                digit=top[0][0],
                top3=[{"digit": d, "probability": p} for d, p in top],
                probabilities=[float(v) for v in self.probabilities],
            )
        return entry


def read_input(path: Path) -> Input:
    """Read and prepare the picture at ``path``; a failure is kept as its error."""
    entry = Input(str(path))
    try:
        entry.picture = read_image(path)
        entry.row = prepare_digit(entry.picture)
    except ImageReadError as exc:  # names the file already
        entry.error = str(exc)
        return entry
    except PurenetError as exc:
        entry.error = f"{path}: {exc}"
        return entry
    entry.count = digits_side_by_side(entry.picture)
    if entry.count > 1:
        entry.warnings.append(
            f"looks like {entry.count} digits side by side; predict reads one digit per picture, "
            "so this answer is for all of them at once (crop each digit into its own picture)"
        )
    return entry


def draw_inputs(path: Path, read: list[Input]) -> None:
    """Write the figure of each picture read and its 28x28 input to ``path``."""
    if not read:
        typer.echo(
            f"purenet: error: --show-input: no picture was read; {path} not written", err=True
        )
        return
    from purenet.plot import inputs_figure, save_figure  # loads matplotlib

    figure = inputs_figure(
        [Path(entry.name).name for entry in read],
        [entry.picture for entry in read],
        np.stack([entry.row for entry in read]),
        np.stack([entry.probabilities for entry in read]),
        [f"{entry.count} digits side by side?" if entry.count > 1 else "" for entry in read],
    )
    try:
        save_figure(figure, path)
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror or exc}") from None
    typer.echo(f"inputs drawn in {path}", err=True)
