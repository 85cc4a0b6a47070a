"""``purenet predict``: read handwritten digits from your own pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from purenet.errors import PurenetError
from purenet.images import ImageReadError, read_image
from purenet.keyframes import params_at
from purenet.predict import class_probabilities, describe, top_classes
from purenet.prepare import prepare_digit
from purenet.runs import Run

from .common import DataOption, ResultEpochOption, RunArgument, epoch_or_result, fail, load_run_data


def predict_command(
    run_folder: RunArgument,
    images: Annotated[
        list[Path],
        typer.Argument(
            metavar="IMAGE",
            help="PNG or JPEG pictures of one handwritten digit each, any size, dark ink "
            "on light paper or light on dark.",
        ),
    ],
    epoch: ResultEpochOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as one JSON object.")
    ] = False,
    data: DataOption = None,
) -> None:
    """Classify pictures of handwritten digits with a run's network.

    Each picture is prepared as MNIST was: greyscale, inverted if dark on light, cropped
    to the ink, scaled to fit 20x20 keeping its aspect, centred by its centre of mass in
    28x28, pixels in [0, 1]. Prints the digit and the three most probable classes. A
    file that is missing, unreadable, not a picture, or blank gets one error line, and
    the command exits 1 (the other pictures are still classified).
    """
    try:
        run = Run.open(run_folder)
        _, epoch = run.rows_up_to(epoch_or_result(run, epoch), tolerate_cut_last_line=True)
        ((_, params),) = params_at(run, [epoch], lambda: load_run_data(run, data))
    except PurenetError as exc:
        raise fail(str(exc)) from None

    names, rows_in, failed = [], [], 0
    for path in images:
        try:
            rows_in.append(prepare_digit(read_image(path)))
            names.append(str(path))
        except ImageReadError as exc:  # names the file already
            typer.echo(f"purenet: error: {exc}", err=True)
            failed += 1
        except PurenetError as exc:
            typer.echo(f"purenet: error: {path}: {exc}", err=True)
            failed += 1
    probabilities = class_probabilities(params, np.stack(rows_in)) if rows_in else []
    results = [(name, top_classes(p), p) for name, p in zip(names, probabilities, strict=True)]
    if as_json:
        payload = {
            "run": str(run.folder),
            "epoch": epoch,
            "predictions": [
                {
                    "image": name,
                    "digit": top[0][0],
                    "top3": [{"digit": d, "probability": p} for d, p in top],
                    "probabilities": [float(v) for v in probs],
                }
                for name, top, probs in results
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        for name, top, _ in results:
            typer.echo(describe(name, top))
    if failed:
        raise typer.Exit(1)
