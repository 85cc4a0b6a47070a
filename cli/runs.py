"""Looking back at recorded runs: ``purenet replay``, ``purenet evaluate`` and
``purenet runs``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from purenet.errors import PurenetError
from purenet.evaluation import confusion_matrix, per_class_accuracy, predictions
from purenet.frames import DEFAULT_FPS, default_stride, frame_epochs
from purenet.history import History
from purenet.replay import describe_mismatch, replay, snapshot_at, starting_keyframe
from purenet.runs import DIVERGED, Run, list_runs, save_params
from purenet.titles import figure_title, rule_words
from purenet.train import Snapshot

from .common import (
    DataOption,
    EpochOption,
    ResultEpochOption,
    RunArgument,
    check_output,
    fail,
    load_run_data,
    rows_and_epoch,
)
from .usage import at_least, within


def replayed_epoch(run_folder: Path, epoch: int | None, data: Path | None):
    """Open the run and replay ``epoch`` (default: the last recorded)."""
    run = Run.open(run_folder)
    rows, epoch = run.rows_up_to(epoch)
    dataset = load_run_data(run, data)
    return run, rows, dataset, replay(run, epoch, dataset)


def rebuilt_epoch(run_folder: Path, epoch: int | None, data: Path | None):
    """Open the run and rebuild ``epoch`` (default: the run's result, or a diverged run's
    last sound epoch: see :func:`rows_and_epoch`), from its keyframe when one is on disk
    (see :func:`purenet.replay.snapshot_at`)."""
    run = Run.open(run_folder)
    rows, epoch = rows_and_epoch(run, epoch)
    dataset = load_run_data(run, data)
    snapshot, _ = snapshot_at(run, epoch, dataset)
    return run, rows, dataset, snapshot


def _metrics_line(snapshot: Snapshot) -> str:
    return (
        f"train loss {snapshot.train.loss!r}, train accuracy {snapshot.train.accuracy:.4%}, "
        f"test loss {snapshot.test.loss!r}, test accuracy {snapshot.test.accuracy:.4%}"
    )


def check_gif(value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".gif":
        raise typer.BadParameter(f"{value}: the animation is a GIF; give a name ending in .gif")
    return value


@contextlib.contextmanager
def rendering_progress(frames: int) -> Iterator[Callable[[int], None] | None]:
    """The ``on_frame`` callback of a rendering: a bar on stderr on a terminal, else None."""
    if not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("rendering"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("frames", total=frames)
    with progress:
        yield lambda n: progress.update(task, completed=n)


def replay_command(
    run_folder: RunArgument,
    epoch: EpochOption = None,
    figure: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            metavar="FILE", help="Write the training figure up to this epoch to this PNG file."
        ),
    ] = None,
    save: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--save-params", metavar="FILE", help="Write this epoch's params to this .npz file."
        ),
    ] = None,
    animation: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--animate",
            metavar="FILE",
            callback=check_gif,
            help="Also write an animated GIF of the run up to this epoch: the curves "
            "growing and the first-layer weights changing.",
        ),
    ] = None,
    stride: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            metavar="N",
            callback=at_least(1),
            help="Epochs between frames of --animate (default: the smallest multiple of "
            "the run's keyframe interval that keeps the clip to about 100 frames).",
        ),
    ] = None,
    fps: Annotated[
        int,
        typer.Option(
            metavar="N", callback=within(1, 50), help="Frames per second of --animate (1 to 50)."
        ),
    ] = DEFAULT_FPS,
    data: DataOption = None,
) -> None:
    """Rebuild the params of any epoch exactly and check them against the record.

    Starts from the nearest snapshot at or before the epoch (strictly before in a
    mini-batch, dropout or augmented run) and folds forward with the
    same pure functions and seed; the metrics of the result must equal the recorded row
    bit for bit (exit 1 if they do not). With --animate, also renders the run up to that
    epoch as a GIF, one frame every --stride epochs (plus the last).
    """
    try:
        for path, option in (
            (figure, "--figure"),
            (save, "--save-params"),
            (animation, "--animate"),
        ):
            if path is not None:
                check_output(path, option)
        run, rows, dataset, snapshot = replayed_epoch(run_folder, epoch, data)
        if figure is not None:
            from purenet.plot import save_figure, training_figure  # loads matplotlib

            history = History.from_rows(rows[: snapshot.epoch + 1])
            save_figure(training_figure(history, figure_title(run.config)), figure)
        if save is not None:
            save_params(save, snapshot.params)
    except PurenetError as exc:
        raise fail(str(exc)) from None
    keyframe = starting_keyframe(run, snapshot.epoch)
    typer.echo(
        f"epoch {snapshot.epoch} of run {run.name} (from the snapshot of epoch {keyframe}, "
        f"{snapshot.epoch - keyframe} epochs folded forward)"
    )
    typer.echo(_metrics_line(snapshot))
    mismatch = describe_mismatch(run, snapshot, rows[snapshot.epoch])
    if mismatch is not None:
        raise fail(mismatch)
    typer.echo("matches the recorded row bit for bit")
    for path, what in ((figure, "figure"), (save, "params")):
        if path is not None:
            typer.echo(f"{what} written to {path}")
    if animation is not None:
        from purenet.animate import animate_run  # loads matplotlib

        stride = stride or default_stride(snapshot.epoch, run.keyframe_every)
        try:
            with rendering_progress(len(frame_epochs(snapshot.epoch, stride))) as on_frame:
                frames = animate_run(run, rows, dataset, snapshot, animation, stride, fps, on_frame)
        except PurenetError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"cannot write {animation}: {exc.strerror or exc}") from None
        typer.echo(
            f"animation written to {animation}: {frames} frames, one every {stride} epochs, "
            f"{fps} per second"
        )


def evaluate_command(
    run_folder: RunArgument, epoch: ResultEpochOption = None, data: DataOption = None
) -> None:
    """Test loss and accuracy, per-class accuracy and the confusion matrix of a run's
    params at an epoch (default: the run's result: the last epoch, or with --patience the
    best validation epoch).

    The params are read from the epoch's snapshot if it is on disk (else replayed), and
    their test metrics checked against the record; if they differ (another purenet, BLAS
    or CPU), a warning on stderr says so and gives the recorded figures.
    """
    try:
        run, rows, dataset, snapshot = rebuilt_epoch(run_folder, epoch, data)
    except PurenetError as exc:
        raise fail(str(exc)) from None
    mismatch = describe_mismatch(run, snapshot, rows[snapshot.epoch])
    if mismatch is not None:
        recorded = rows[snapshot.epoch]
        typer.echo(
            f"purenet: warning: {mismatch}. What follows is computed from the replayed "
            f"params; the record says test loss {recorded.test_loss:.4f}, test accuracy "
            f"{recorded.test_acc:.2%}",
            err=True,
        )
    n_classes = run.config.sizes[-1]
    confusion = confusion_matrix(
        dataset.y_test, predictions(snapshot.params, dataset.x_test), n_classes
    )
    typer.echo(
        f"run {run.name}, epoch {snapshot.epoch}: test loss {snapshot.test.loss:.4f}, "
        f"test accuracy {snapshot.test.accuracy:.2%} on {len(dataset.y_test)} images"
    )
    typer.echo("\nper-class accuracy:")
    for digit, (acc, count) in enumerate(
        zip(per_class_accuracy(confusion), confusion.sum(1), strict=True)
    ):
        typer.echo(f"  {digit}: {acc:7.2%}  ({count} images)")
    typer.echo("\nconfusion matrix (rows: true digit, columns: predicted digit):")
    width = max(4, len(str(confusion.max())) + 1)
    typer.echo("     " + "".join(f"{d:>{width}}" for d in range(n_classes)))
    for digit, row in enumerate(confusion):
        typer.echo(f"  {digit}: " + "".join(f"{c:>{width}}" for c in row))


LISTING_COLUMNS = (
    "run", "status", "epochs", "test acc", "network", "activation", "optimizer", "lr",
    "batch", "seed", "notes",
)  # fmt: skip


def listing_row(entry: Run) -> list[str]:
    """The cells of one run in ``purenet runs`` (see :data:`LISTING_COLUMNS`). A diverged
    run shows its last sound epoch (the one whose params were kept) and that epoch's
    accuracy, not the diverged one's; a run that early stopping ended shows its result,
    the best validation epoch.

    Raises:
        PurenetError: when its status or metrics cannot be read.
    """
    record = entry.status()
    status = record.get("status", "?")
    rows = entry.rows(tolerate_cut_last_line=True)
    config = entry.config
    shown, notes = (rows[-1] if rows else None), []
    if status == DIVERGED:
        by_epoch = {row.epoch: row for row in rows}
        kept = record.get("epoch")
        shown = by_epoch.get(kept) if kept is not None else None
        bad = f"loss diverged at epoch {rows[-1].epoch}" if rows else "loss diverged"
        notes.append(f"{bad}; shown: epoch {kept}, the last sound one" if shown else bad)
    result = entry.result_epoch()
    if result is not None:  # early stopping kept its best epoch, not its last
        shown = next((row for row in rows if row.epoch == result), shown)
        notes.append(f"result: epoch {result}, the best validation one (of {rows[-1].epoch})")
    if record.get("best_epoch") is not None and isinstance(record.get("best_valid_acc"), float):
        notes.append(
            f"best validation {record['best_valid_acc']:.2%} at epoch {record['best_epoch']}"
        )
    return [
        entry.name,
        status,
        f"{shown.epoch if shown else 0}/{config.epochs}",
        f"{shown.test_acc:.2%}" if shown else "-",
        "-".join(map(str, config.sizes)),
        config.activation.value,
        rule_words(config),
        f"{config.lr:g}",
        "full" if config.full_batch else str(config.batch_size),
        str(config.seed),
        "; ".join(notes),
    ]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[str]) -> None:
    """Print ``rows`` under ``header`` as aligned columns on stdout, whatever the width of
    the terminal (nothing is cut or wrapped; columns named in ``right`` are right-aligned)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for name in header:
        table.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    width = Console(width=100_000).measure(table).maximum
    console = Console(width=width, soft_wrap=False, highlight=False)
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def runs_command(
    folder: Annotated[
        Path,
        typer.Argument(metavar="FOLDER", help="Folder holding run folders.", file_okay=False),
    ] = Path("runs"),
) -> None:
    """List the runs in a folder: status, epochs done, the last test accuracy, and the
    settings that tell them apart (layers, activation, optimizer, learning rate, batch
    size, seed)."""
    try:
        found = list_runs(folder)
    except PurenetError as exc:
        raise fail(str(exc)) from None
    if not found:
        typer.echo(f"no runs in {folder}")
        return
    table = []
    blank = [""] * (len(LISTING_COLUMNS) - 3)
    for entry in found:
        if isinstance(entry, tuple):
            path, error = entry
            table.append([path.name, "unreadable", *blank, str(error)])
            continue
        try:
            table.append(listing_row(entry))
        except PurenetError as exc:
            table.append([entry.name, "unreadable", *blank, str(exc)])
    print_table(LISTING_COLUMNS, table, right={"epochs", "test acc", "lr", "batch", "seed"})
