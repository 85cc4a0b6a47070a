"""``purenet train``: train a network, or resume an interrupted run."""

from __future__ import annotations

import enum
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import attrs
import typer

from cli.common import (
    DataOption,
    check_batch_size,
    check_hidden,
    check_lr,
    fail,
    load_run_data,
    parse_hidden,
)
from cli.data import training_data
from cli.live import chain, live_view
from cli.progress import TrainingProgress
from purenet._engine.threads import default_workers
from purenet.data import Split
from purenet.errors import ConfigError, PurenetError
from purenet.optim import Schedule
from purenet.params import Activation, Init
from purenet.presets import PRESETS, describe, preset_config
from purenet.runner import Outcome, prepare_resume, record_training
from purenet.runs import DEFAULT_KEYFRAME_EVERY, DIVERGED, INTERRUPTED, Run
from purenet.train import OPTIMIZERS, Config

EXIT_INTERRUPTED = 130


def default_run_folder() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path("runs") / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = Path("runs") / f"{stamp}-{n}"
    return folder


PRESET_HELP = "Starting settings; explicit options override them. " + "; ".join(
    f"{name}: {describe(name)}" for name in PRESETS
)
Preset = enum.Enum("Preset", {name: name for name in PRESETS}, type=str)
OptimizerName = enum.Enum("OptimizerName", {name: name for name in OPTIMIZERS}, type=str)
MaybeInt = Optional[int]  # noqa: UP045 (typer reads the annotations at run time)
MaybeFloat = Optional[float]  # noqa: UP045


def train_command(
    preset: Annotated[Preset, typer.Option(help=PRESET_HELP)] = "reference",
    hidden: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            callback=check_hidden,
            help="Hidden layer widths, comma-separated: 10 (the reference) or 256,128.",
        ),
    ] = None,
    activation: Annotated[
        Optional[Activation],  # noqa: UP045
        typer.Option(help="Hidden activation: relu (reference), tanh or sigmoid."),
    ] = None,
    init: Annotated[
        Optional[Init],  # noqa: UP045
        typer.Option(
            help="Weight initialisation: he (default, suits ReLU), xavier (suits tanh and "
            "sigmoid), or uniform (U(-0.5, 0.5), as the reference tutorial)."
        ),
    ] = None,
    epochs: Annotated[
        MaybeInt, typer.Option(min=1, help="Passes over the training set [2500].")
    ] = None,
    lr: Annotated[
        MaybeFloat,
        typer.Option(callback=check_lr, help="Learning rate, a finite number > 0 [0.1]."),
    ] = None,
    seed: Annotated[
        MaybeInt,
        typer.Option(
            min=0, help="Seed of every random choice: split, weights, order, dropout [0]."
        ),
    ] = None,
    split: Annotated[
        Optional[Split],  # noqa: UP045
        typer.Option(
            help="reference (default): all 70,000 images shuffled by the seed, 90% train / "
            "10% test. standard: the official 60,000 / 10,000."
        ),
    ] = None,
    batch_size: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            callback=check_batch_size,
            help="Samples per gradient step, or 'full' for the whole training set (default).",
        ),
    ] = None,
    optimizer: Annotated[
        Optional[OptimizerName],  # noqa: UP045
        typer.Option(help="sgd (default), momentum or adam."),
    ] = None,
    momentum: Annotated[
        MaybeFloat,
        typer.Option(min=0, max=0.999999, help="Momentum's beta (adam's beta1) [0.9]."),
    ] = None,
    nesterov: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--nesterov/--no-nesterov", help="Nesterov's look-ahead momentum."),
    ] = None,
    weight_decay: Annotated[
        MaybeFloat, typer.Option(min=0, help="L2 weight decay on the weights [0].")
    ] = None,
    schedule: Annotated[
        Optional[Schedule],  # noqa: UP045
        typer.Option(
            help="Learning-rate schedule: constant (default), step (times --step-gamma "
            "every --step-every epochs) or cosine (down to 0 over the run)."
        ),
    ] = None,
    step_every: Annotated[MaybeInt, typer.Option(min=1, help="Epochs per step [30].")] = None,
    step_gamma: Annotated[
        MaybeFloat, typer.Option(min=0.0001, max=1, help="Step factor, in (0, 1] [0.1].")
    ] = None,
    dropout: Annotated[
        MaybeFloat,
        typer.Option(min=0, max=0.99, help="Dropout on hidden units, in [0, 0.99] [0]."),
    ] = None,
    shift: Annotated[
        MaybeInt, typer.Option(min=0, max=8, help="Random shifts of training images, pixels [0].")
    ] = None,
    rotate: Annotated[
        MaybeFloat, typer.Option(min=0, max=45, help="Random rotations, degrees [0].")
    ] = None,
    scale: Annotated[
        MaybeFloat,
        typer.Option(min=0, max=0.49, help="Random scaling, a fraction [0]."),
    ] = None,
    validation: Annotated[
        MaybeInt,
        typer.Option(
            min=0,
            help="Hold out this many training samples to validate on (never the test set) [0].",
        ),
    ] = None,
    patience: Annotated[
        MaybeInt,
        typer.Option(min=1, help="Stop after this many epochs without better validation accuracy."),
    ] = None,
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
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Redraw the training figure while training: in a window when a display "
            "is available, else by rewriting RUN/live.png (watch it in an image viewer).",
        ),
    ] = False,
    live_every: Annotated[
        MaybeInt,
        typer.Option(min=1, help="Epochs between --live redraws (default: about 100 per run)."),
    ] = None,
) -> None:
    """Train a network on MNIST, recording every epoch in a run folder.

    The defaults (--preset reference) are the reference experiment: 784 -> 10 ReLU -> 10
    softmax, full-batch gradient descent, learning rate 0.1, 2500 epochs, reference split.
    --preset fast and --preset best go much further (about 98% and 99% on the standard
    test set). The run folder gets
    config.json, metrics.csv (a row per epoch), snapshots/ (params every K epochs),
    figure.png and status.json. It uses every core; PURENET_THREADS=N caps that (the
    results are the same).
    """
    try:
        default_workers()  # a bad PURENET_THREADS fails here, before any work
        if resume is not None:
            run = Run.open(resume)
            start, seconds = prepare_resume(run)
            dataset = load_run_data(run, data)
        else:
            config = _config(
                preset,
                hidden=parse_hidden(hidden) if hidden is not None else None,
                activation=activation,
                init=init,
                epochs=epochs,
                lr=lr,
                seed=seed,
                split=split,
                batch_size=batch_size,
                optimizer=optimizer.value if optimizer is not None else None,
                momentum=momentum,
                nesterov=nesterov,
                weight_decay=weight_decay,
                schedule=schedule,
                step_every=step_every,
                step_gamma=step_gamma,
                dropout=dropout,
                shift=shift,
                rotate=rotate,
                scale=scale,
                validation=validation,
                patience=patience,
            )
            folder, dataset = training_data(data, config.split, config.seed, quiet, verify)
            _check_against_data(config, len(dataset.y_train))
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
    every = live_every or max(1, config.epochs // 100)
    notify = None if quiet else (lambda message: typer.echo(message, err=True))
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with (
            live_view(run.folder, every, live, notify) as show_live,
            TrainingProgress(
                config.epochs, start.epoch if start else 0, TrainingProgress.choose_mode(quiet)
            ) as progress,
        ):
            outcome = record_training(
                run, dataset, start, seconds, chain(progress.update, show_live)
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(run, outcome)


def _config(preset, **options) -> Config:
    """The preset's settings with the given options on top; a combination the library
    refuses is a usage error naming the option."""
    if options["batch_size"] == "full":
        options["batch_size"] = None
        full = True
    else:
        full = False
        if options["batch_size"] is not None:
            options["batch_size"] = int(options["batch_size"])
    try:
        config = preset_config(preset.value, options)
    except ConfigError as exc:
        option = f"'--{exc.field.replace('_', '-')}'" if exc.field else "'--preset'"
        raise typer.BadParameter(str(exc), param_hint=option) from None
    return attrs.evolve(config, batch_size=None) if full else config


def _check_against_data(config: Config, n_train: int) -> None:
    """Settings that depend on the size of the training set."""
    if config.validation >= n_train:
        raise typer.BadParameter(
            f"{config.validation} leaves no training data (the split has {n_train})",
            param_hint="'--validation'",
        )
    available = n_train - config.validation
    if config.batch_size is not None and config.batch_size > available:
        raise typer.BadParameter(
            f"{config.batch_size} is larger than the {available} training samples",
            param_hint="'--batch-size'",
        )


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
    if outcome.best_epoch is not None:
        stopped = " stopped early;" if outcome.stopped_early else ""
        best = run.rows()[outcome.best_epoch].valid_acc
        typer.echo(
            f"validation:{stopped} best accuracy {best:.2%} at epoch {outcome.best_epoch} "
            f"(replay it with: purenet replay {run.folder} --epoch {outcome.best_epoch})",
            err=True,
        )
    typer.echo(
        f"epoch {last.epoch}: train loss {last.train.loss:.4f}, "
        f"train accuracy {last.train.accuracy:.2%}, test accuracy {last.test.accuracy:.2%} "
        f"({outcome.seconds:.1f} s); results in {run.folder}"
    )
