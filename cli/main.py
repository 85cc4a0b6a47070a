"""The ``purenet`` command: a thin shell over the library.

Bad arguments exit 2 naming the option (click does most of this; the callbacks here add
what it misses, such as ``--lr nan``). Failures at run time print one line starting with
``purenet: error:`` to stderr and exit 1. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.progress import TrainingProgress
from purenet import __version__
from purenet.data import DATA_ENV, Split, load_dataset, resolve_data_dir
from purenet.errors import PurenetError
from purenet.history import History, Row
from purenet.params import Init
from purenet.plot import save_figure, training_figure
from purenet.runs import FIGURE_FILE, PARAMS_FILE, RunWriter, save_params
from purenet.train import Config, train

app = typer.Typer(
    name="purenet",
    help="A from-scratch NumPy network that learns to read handwritten digits (MNIST).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

EXIT_INTERRUPTED = 130


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``purenet: error: message`` to stderr and return the Exit to raise."""
    typer.echo(f"purenet: error: {message}", err=True)
    return typer.Exit(code)


def parse_hidden(value: str) -> tuple[int, ...]:
    """``"10"`` -> (10,), ``"256,128"`` -> (256, 128); anything else is a usage error."""
    parts = value.split(",")
    try:
        widths = tuple(int(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a comma-separated list of layer widths, e.g. 10 or 256,128"
        ) from None
    if any(w < 1 for w in widths):
        raise typer.BadParameter(f"{value!r}: every layer width must be at least 1")
    return widths


def check_hidden(value: str) -> str:
    parse_hidden(value)
    return value


def check_lr(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{value} is not a finite number > 0")
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"purenet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A from-scratch NumPy network that learns to read handwritten digits (MNIST).

    Every result is a pure function of the settings and the seed: the same command gives
    bit-identical numbers.
    """


def default_run_folder() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path("runs") / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = Path("runs") / f"{stamp}-{n}"
    return folder


def figure_title(config: Config) -> str:
    return (
        f"purenet {'-'.join(map(str, config.sizes))}, lr {config.lr}, "
        f"{config.split.value} split, seed {config.seed}"
    )


class _Terminated(Exception):
    """SIGTERM arrived; handled like Ctrl-C so the run keeps what it has."""


def _raise_terminated(signum, frame):
    raise _Terminated()


@app.command("train")
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
    data: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
        typer.Option(
            help=f"Folder with the four MNIST IDX files (raw or .gz). Default: ${DATA_ENV}.",
            file_okay=False,
        ),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Run folder to write (default: runs/<UTC time>).", file_okay=False),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display on stderr.")
    ] = False,
) -> None:
    """Train a network on MNIST; write its metrics (CSV), params and figure to a run folder.

    The defaults are the reference experiment: 784 -> 10 ReLU -> 10 softmax, full-batch
    gradient descent, learning rate 0.1, 2500 epochs, reference split.
    """
    config = Config(
        hidden=parse_hidden(hidden), epochs=epochs, lr=lr, seed=seed, split=split, init=init
    )
    try:
        folder = resolve_data_dir(data)
        dataset = load_dataset(folder, config.split, config.seed)
        run_folder = out if out is not None else default_run_folder()
        writer = RunWriter(run_folder, {**config.to_json(), "data": str(folder.resolve())})
    except PurenetError as exc:
        raise fail(str(exc)) from None

    mode = TrainingProgress.choose_mode(quiet)
    if not quiet:
        typer.echo(
            f"training {'-'.join(map(str, config.sizes))} on {len(dataset.y_train)} images, "
            f"testing on {len(dataset.y_test)}; run folder {run_folder}",
            err=True,
        )
    rows: list[Row] = []
    kept = None  # the last snapshot whose params are finite
    outcome = "finished"
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    start = time.perf_counter()
    try:
        with TrainingProgress(config.epochs, 0, mode) as progress:
            for snapshot in train(config, dataset):
                row = Row.of(snapshot, time.perf_counter() - start)
                writer.append(row)
                rows.append(row)
                progress.update(snapshot)
                if snapshot.diverged:
                    outcome = "diverged"
                    break
                kept = snapshot
    except (KeyboardInterrupt, _Terminated):
        outcome = "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        writer.close()

    history = History.from_rows(rows)
    if kept is not None:
        save_params(run_folder / PARAMS_FILE, kept.params)
    if rows:
        save_figure(training_figure(history, title=figure_title(config)), run_folder / FIGURE_FILE)
    last_epoch = kept.epoch if kept is not None else None
    writer.write_status(outcome, last_epoch, seconds=round(time.perf_counter() - start, 3))

    if outcome == "diverged":
        raise fail(
            f"training diverged: the loss became {rows[-1].train_loss} at epoch {rows[-1].epoch} "
            f"(try a smaller --lr); params of epoch {last_epoch} and all metrics kept in "
            f"{run_folder}"
        )
    if outcome == "interrupted":
        kept_what = (
            f"after epoch {last_epoch}; metrics, params and figure so far kept in {run_folder}"
            if last_epoch is not None
            else f"before the first epoch finished; nothing but the settings kept in {run_folder}"
        )
        typer.echo(f"purenet: interrupted {kept_what}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    typer.echo(
        f"epoch {kept.epoch}: train loss {kept.train.loss:.4f}, "
        f"train accuracy {kept.train.accuracy:.2%}, test accuracy {kept.test.accuracy:.2%} "
        f"({rows[-1].seconds:.1f} s); results in {run_folder}"
    )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except PurenetError as exc:  # any library failure not caught nearer: one line, exit 1
        typer.echo(f"purenet: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
