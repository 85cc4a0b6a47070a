"""Driving the training fold into a run folder: the edge between the pure core and disk.

:func:`record_training` consumes the snapshots of :func:`purenet.train.train`, appends one
metrics row per epoch, writes keyframes, and finally the figure and the status. It never
feeds anything back into the fold, so what is learned does not depend on it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import IO

import attrs

from purenet.config import Config
from purenet.data import Dataset
from purenet.errors import PurenetError, WriteError, write_failures
from purenet.history import History, Row, csv_line
from purenet.optim import Schedule
from purenet.runlock import FolderBusy, holds
from purenet.runs import (
    DIVERGED,
    FIGURE_FILE,
    FINISHED,
    INTERRUPTED,
    METRICS_FILE,
    RUNNING,
    STATUS_FILE,
    Run,
    RunError,
)
from purenet.titles import figure_title
from purenet.train import Snapshot, TrainState, train


@attrs.frozen
class Outcome:
    """How a training session ended.

    Attributes:
        status: finished, interrupted or diverged.
        last: the last snapshot whose params are sound (None if none was completed).
        bad_row: for a diverged run, the row of the epoch where it diverged.
        seconds: training time of the whole run so far, earlier sessions included.
        best_epoch: with a validation set, the epoch of the best validation accuracy
            (the earliest, on ties) among those on record.
        stopped_early: the run ended before its last epoch because validation accuracy
            had not improved for ``patience`` epochs.
        result_epoch: with ``patience``, once the run has finished (stopped early or
            not): the best validation epoch, whose params are the run's result (as
            Keras's ``restore_best_weights``). None: the last epoch is the result.
    """

    status: str
    last: Snapshot | None
    bad_row: Row | None = None
    seconds: float = 0.0
    best_epoch: int | None = None
    stopped_early: bool = False
    result_epoch: int | None = None


def write_figure(run: Run, rows: list[Row]) -> None:
    if rows:
        from purenet.plot import save_figure, training_figure  # loads matplotlib

        save_figure(
            training_figure(History.from_rows(rows), figure_title(run.config)),
            run.folder / FIGURE_FILE,
        )


def record_training(
    run: Run,
    data: Dataset,
    start: TrainState | None = None,
    seconds_offset: float = 0.0,
    on_snapshot: Callable[[Snapshot], None] | None = None,
) -> Outcome:
    """Train ``run.config`` on ``data`` from ``start`` (or from scratch), recording it all.

    When resuming, the snapshot at ``start.epoch`` is already on record and is not
    written again. Ctrl-C (KeyboardInterrupt) ends the session cleanly. An interrupted or
    diverged session also keeps a keyframe of its last sound epoch, so resuming needs no
    recomputation and the last good params can be inspected.

    With ``patience`` (early stopping), the best validation epoch of the session is kept
    as a keyframe too, and a finished run records it as its result (``result_epoch``
    in the status): its params, not the last epoch's, are what the run learned.

    Raises:
        RunError: when a write fails (a full disk, a read-only folder) or memory runs out.
            The session then ends as an interrupted one, keeping what it can; the message
            says what is kept and how to go on.
    """
    last: Snapshot | None = None
    best_snapshot: Snapshot | None = None  # with patience: the best epoch of this session
    status, bad_row, stopped_early = FINISHED, None, False
    failure: PurenetError | None = None
    best = _best_so_far(run)
    began = time.perf_counter()
    metrics: IO[str] | None = None
    try:
        run.mark(RUNNING, start.epoch if start is not None else None)
        metrics = run.open_metrics()
        for snapshot in train(run.config, data, start):
            if on_snapshot is not None:
                on_snapshot(snapshot)
            if start is not None and snapshot.epoch == start.epoch:
                last = snapshot
                continue
            row = Row.of(snapshot, seconds_offset + time.perf_counter() - began)
            with write_failures(run.folder / METRICS_FILE):
                metrics.write(csv_line(row))
                metrics.flush()
            if snapshot.diverged:
                status, bad_row = DIVERGED, row
                break
            if run.should_keyframe(snapshot.epoch):
                run.save_keyframe(snapshot.state)
            last = snapshot
            best = _better(best, snapshot)
            if run.config.patience is not None and best is not None and best[0] == snapshot.epoch:
                best_snapshot = snapshot
            if _patience_ran_out(run.config, best, snapshot.epoch):
                stopped_early = True
                break
    except KeyboardInterrupt:
        status = INTERRUPTED
    except WriteError as exc:
        status, failure = INTERRUPTED, exc
    except MemoryError:
        status, failure = INTERRUPTED, _out_of_memory(run, last)
    finally:
        if metrics is not None:
            with contextlib.suppress(OSError):  # a row cut by a full disk is dropped on resume
                metrics.close()
    if (status != FINISHED or stopped_early) and last is not None:
        if last.epoch not in run.keyframe_epochs():
            try:
                run.save_keyframe(last.state)  # the last sound params, to resume or inspect
            except WriteError as exc:
                failure = failure or exc
    if best_snapshot is not None and best_snapshot.epoch not in run.keyframe_epochs():
        try:
            run.save_keyframe(best_snapshot.state)  # the run's result, read without replaying
        except WriteError as exc:
            failure = failure or exc
    if failure is None:
        try:
            write_figure(run, run.rows())
        except PurenetError:
            pass  # the figure is a convenience; the records above are what matter
        except KeyboardInterrupt:  # Ctrl-C as the figure is drawn
            if status == FINISHED and not stopped_early:
                status = INTERRUPTED  # resuming folds nothing and draws the figure
            # a run that ended on its own (diverged, stopped early) keeps its ending and
            # goes without the figure (purenet plot draws it)
    seconds = seconds_offset + time.perf_counter() - began
    best_epoch = best[0] if best is not None else None
    extra = {"seconds": round(seconds, 3)}
    if best_epoch is not None:
        extra.update(best_epoch=best_epoch, best_valid_acc=best[1])
    if stopped_early:
        extra["stopped_early"] = True
    result_epoch = None
    if status == FINISHED and run.config.patience is not None and best_epoch is not None:
        result_epoch = extra["result_epoch"] = best_epoch
    if failure is not None:
        extra["error"] = str(failure)
    try:
        run.mark(status, last.epoch if last is not None else None, **extra)
    except WriteError as exc:  # left marked running: being unlocked, it reads as interrupted
        failure = failure or exc
    if failure is not None:
        raise RunError(f"{failure}; {_what_is_kept(run, failure)}")
    return Outcome(status, last, bad_row, seconds, best_epoch, stopped_early, result_epoch)


def _out_of_memory(run: Run, last: Snapshot | None) -> RunError:
    epoch = 0 if last is None else last.epoch + 1
    batch = "the full batch" if run.config.full_batch else f"batches of {run.config.batch_size}"
    network = "-".join(map(str, run.config.sizes))
    return RunError(
        f"out of memory in epoch {epoch}: network {network} trained on {batch} needs more "
        "memory than is free (a smaller --hidden or --batch-size needs less)"
    )


def _what_is_kept(run: Run, failure: PurenetError) -> str:
    """What the run kept after ``failure`` and how to go on."""
    keyframes = run.keyframe_epochs()
    kept = (
        f"the run is kept up to its snapshot of epoch {keyframes[-1]}"
        if keyframes
        else "the run has no snapshot yet and will start again from its settings"
    )
    remedy = failure.remedy(run.folder) if isinstance(failure, WriteError) else "free memory"
    return f"{kept}: {remedy}, then resume it with: purenet train --resume {run.folder}"


def _best_so_far(run: Run) -> tuple[int, float] | None:
    """(epoch, validation accuracy) of the best recorded epoch, if the run validates."""
    if run.config.validation == 0:
        return None
    rows = run.rows(tolerate_cut_last_line=True)
    if not rows:
        return None
    best = max(rows, key=lambda r: (r.valid_acc, -r.epoch))
    return best.epoch, best.valid_acc


def _better(best: tuple[int, float] | None, snapshot: Snapshot) -> tuple[int, float] | None:
    if snapshot.valid is None:
        return best
    if best is None or snapshot.valid.accuracy > best[1]:
        return snapshot.epoch, snapshot.valid.accuracy
    return best


def _patience_ran_out(config: Config, best: tuple[int, float] | None, epoch: int) -> bool:
    return config.patience is not None and best is not None and epoch - best[0] >= config.patience


def prepare_resume(run: Run, epochs: int | None = None) -> tuple[TrainState | None, float]:
    """The state to resume ``run`` from and the seconds on record. Call it, and train,
    while holding the run's writer lock (:func:`purenet.runlock.writing`).

    The state is the last keyframe's, or None (train from the start) for a run stopped
    before its first keyframe: its config is all it needs.

    ``epochs`` (default: the run's own) may be larger than the run's epochs: the run is
    then extended, exactly as if it had been asked for that many from the start, which
    :func:`check_extendable` allows for schedules whose learning rates do not depend on
    the total. config.json then records the new epochs. A finished run can only be
    extended; an interrupted one continues to its epochs, or to more.

    Rows after the keyframe are dropped (they will be recomputed identically), and a
    row cut mid-write by a kill is tolerated here, since the file is rewritten.
    """
    check_resumable(run, epochs)
    target = run.config.epochs if epochs is None else epochs
    keyframes = run.keyframe_epochs()
    if not keyframes:
        if target > run.config.epochs:
            run.mark(INTERRUPTED, None, extending_to=target)
            run.set_epochs(target)
        run.rewrite_rows([])
        return None, 0.0
    rows = run.rows(tolerate_cut_last_line=True)
    start = keyframes[-1]
    if len(rows) <= start:
        raise RunError(
            f"{run.folder}: metrics end at epoch {len(rows) - 1}, before the last "
            f"snapshot (epoch {start})"
        )
    state = run.load_keyframe(start)
    if target > run.config.epochs:
        # A kill from here on leaves an interrupted run of the new length: resumable.
        run.mark(INTERRUPTED, start, extending_to=target)
        run.set_epochs(target)
    run.rewrite_rows(rows[: start + 1])
    return state, rows[start].seconds


def check_resumable(run: Run, epochs: int | None = None) -> None:
    """Refuse, without changing anything, to resume ``run`` (to ``epochs``, default its
    own): see :func:`prepare_resume`.

    Raises:
        RunError: saying why.
    """
    # Still running when the lock is held: by this process (so its writer died), or else
    # by another one.
    record = run.status()
    status = record["status"]
    if status == RUNNING and not holds(run.folder):
        raise FolderBusy(f"run folder {run.folder} is being written by another purenet process")
    target = run.config.epochs if epochs is None else epochs
    if status == DIVERGED:
        raise RunError(f"run {run.folder} diverged; resuming would diverge again")
    if status == FINISHED:
        if record.get("stopped_early"):
            raise RunError(
                f"run {run.folder} stopped early at epoch {record.get('epoch')}: its "
                f"validation accuracy had not improved for {run.config.patience} epochs "
                "(--patience), and a run asked for more epochs from the start would have "
                "stopped there too"
            )
        if target <= run.config.epochs:
            raise RunError(
                f"run {run.folder} already finished all {run.config.epochs} epochs; "
                f"to train it longer, pass --epochs with more than {run.config.epochs}"
            )
    elif status not in (INTERRUPTED, RUNNING):
        raise RunError(f"{run.folder / STATUS_FILE}: unknown status {status!r}")
    if target < run.config.epochs:
        raise RunError(
            f"--epochs {target} is fewer than the {run.config.epochs} epochs of run "
            f"{run.folder}; a resumed run can only be made longer"
        )
    if target > run.config.epochs:
        check_extendable(run.config, target)


def check_extendable(config: Config, epochs: int) -> None:
    """Refuse to extend a run of ``config`` to ``epochs`` unless that is exactly what a
    run asked for ``epochs`` from the start would have trained.

    Only the learning-rate schedule looks at the total: constant and step do not, but
    cosine anneals over the whole run, so every epoch already trained would have had
    another learning rate.

    Raises:
        RunError: for a cosine schedule.
    """
    if config.schedule is Schedule.COSINE:
        raise RunError(
            f"a run with the cosine schedule cannot be extended to {epochs} epochs: its "
            f"learning rate at every epoch depends on the total ({config.epochs}), so the "
            f"epochs already trained would have had other learning rates in a "
            f"{epochs}-epoch run; train a new run with --epochs {epochs} instead"
        )
