"""``purenet train``: train a network, or resume an interrupted run."""

from __future__ import annotations

import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.common import DataOption, check_hidden, check_lr, fail, load_run_data, parse_hidden
from cli.data import training_data
from cli.progress import TrainingProgress
from purenet.data import Split
from purenet.errors import PurenetError
from purenet.params import Init
from purenet.runner import Outcome, prepare_resume, record_training
from purenet.runs import DEFAULT_KEYFRAME_EVERY, DIVERGED, INTERRUPTED, Run
from purenet.train import Config

EXIT_INTERRUPTED = 130


def default_run_folder() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path("runs") / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = Path("runs") / f"{stamp}-{n}"
    return folder


def train_command(
    hidden: Annotated[
        str,
        typer.Option(
            callback=check_hidden,
            help="Hidden layer widths, comma-separated: 10 (the reference) or 256,128.",
        ),
    ] = "10",
    epochs: Annotated[int, typer.Option(min=1, help="Number of full-batch gradient steps.")] = 2500,
    lr: Annotated[
        float, typer.Option(callback=check_lr, help="Learning rate, a finite number > 0.")
    ] = 0.1,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the split shuffle and the initial weights.")
    ] = 0,
    split: Annotated[
        Split,
        typer.Option(
            help="reference: all 70,000 images shuffled by the seed, 90% train / 10% test. "
            "standard: the official 60,000 / 10,000."
        ),
    ] = Split.REFERENCE,
    init: Annotated[
        Init,
        typer.Option(
            help="Weight initialisation: he (default, suits ReLU), xavier, or uniform "
            "(U(-0.5, 0.5), as the reference tutorial)."
        ),
    ] = Init.HE,
    data: DataOption = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Run folder to write (default: runs/<UTC time>).", file_okay=False),
    ] = None,
    keyframe_every: Annotated[
        int,
        typer.Option(
            min=1, help="Save the params every K epochs (and at the first and last epoch)."
        ),
    ] = DEFAULT_KEYFRAME_EVERY,
    resume: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Continue this interrupted run from its last snapshot, with its own "
            "settings (the options above are then ignored, except --data and --quiet).",
            file_okay=False,
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check that the data files are MNIST by the SHA-256 of their content. "
            "--no-verify uses a --data folder as it is, with a warning.",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Train a network on MNIST, recording every epoch in a run folder.

    The defaults are the reference experiment: 784 -> 10 ReLU -> 10 softmax, full-batch
    gradient descent, learning rate 0.1, 2500 epochs, reference split. The run folder gets
    config.json, metrics.csv (a row per epoch), snapshots/ (params every K epochs),
    figure.png and status.json.
    """
    try:
        if resume is not None:
            run = Run.open(resume)
            start, seconds = prepare_resume(run)
            dataset = load_run_data(run, data)
        else:
            config = Config(
                hidden=parse_hidden(hidden),
                epochs=epochs,
                lr=lr,
                seed=seed,
                split=split,
                init=init,
            )
            folder, dataset = training_data(data, config.split, config.seed, quiet, verify)
            run = Run.create(
                out if out is not None else default_run_folder(),
                config,
                dataset.sha256,
                folder,
                keyframe_every,
            )
            start, seconds = None, 0.0
    except PurenetError as exc:
        raise fail(str(exc)) from None

    config = run.config
    if not quiet:
        what = (
            f"resuming {run.folder} at epoch {start.epoch}" if start else f"run folder {run.folder}"
        )
        typer.echo(
            f"training {'-'.join(map(str, config.sizes))} on {len(dataset.y_train)} images, "
            f"testing on {len(dataset.y_test)}; {what}",
            err=True,
        )
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with TrainingProgress(
            config.epochs, start.epoch if start else 0, TrainingProgress.choose_mode(quiet)
        ) as progress:
            outcome = record_training(run, dataset, start, seconds, progress.update)
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(run, outcome)


def report(run: Run, outcome: Outcome) -> None:
    """Tell the user how the session ended and exit with the matching code."""
    last = outcome.last
    if outcome.status == DIVERGED:
        row = outcome.bad_row
        kept = f"params of epoch {last.epoch}" if last else "no params"
        raise fail(
            f"training diverged: the loss became {row.train_loss} at epoch {row.epoch} "
            f"(try a smaller --lr); {kept} and all metrics kept in {run.folder}"
        )
    if outcome.status == INTERRUPTED:
        kept = (
            f"after epoch {last.epoch}; resume with: purenet train --resume {run.folder}"
            if last is not None
            else f"before the first epoch finished; nothing but the settings kept in {run.folder}"
        )
        typer.echo(f"purenet: interrupted {kept}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    typer.echo(
        f"epoch {last.epoch}: train loss {last.train.loss:.4f}, "
        f"train accuracy {last.train.accuracy:.2%}, test accuracy {last.test.accuracy:.2%} "
        f"({outcome.seconds:.1f} s); results in {run.folder}"
    )
