"""Rebuilding any epoch of a recorded run, exactly.

The params of epoch N are recomputed from the nearest keyframe at or before N (strictly
before in a stochastic run, see :func:`starting_keyframe`) by folding forward with the
same pure functions and data. Because the fold is a pure function of (config, data,
state), the replayed snapshot is bit-identical to the one the run yielded, and so are its
metrics and the recorded row.
"""

from __future__ import annotations

import math

import attrs

from purenet.data import Dataset
from purenet.history import Row
from purenet.runner import check_data
from purenet.runs import Run, RunError
from purenet.train import Snapshot, train


def starting_keyframe(run: Run, epoch: int) -> int:
    """The keyframe that :func:`replay` folds forward from to rebuild ``epoch``.

    A stochastic run's train metrics for epoch N come from epoch N's batches, so its
    replay must fold through epoch N: it starts strictly before N (except at epoch 0).
    """
    strict = run.config.stochastic and epoch > 0
    earlier = [k for k in run.keyframe_epochs() if k < epoch or (k == epoch and not strict)]
    if not earlier:
        raise RunError(f"run {run.name} has no snapshot to replay epoch {epoch} from")
    return earlier[-1]


def replay(run: Run, epoch: int, data: Dataset) -> Snapshot:
    """The snapshot of ``epoch``, recomputed from the nearest keyframe.

    Raises:
        RunError: if ``epoch`` is not one of the run's recorded epochs, or the data
            differs from what the run was trained on.
    """
    run.rows_up_to(epoch)  # raises unless the epoch has a row on record
    check_data(run, data)
    start = starting_keyframe(run, epoch)
    for snapshot in train(run.config, data, start=run.load_keyframe(start)):
        if snapshot.epoch == epoch:
            return snapshot
    raise RunError(f"run {run.name} diverged before epoch {epoch} while replaying")


def matches_record(snapshot: Snapshot, row: Row) -> bool:
    """True when the snapshot's metrics equal the recorded row bit for bit (NaN, for an
    absent validation set, equals NaN)."""
    again = Row.of(snapshot, row.seconds)
    return all(
        a == b or (math.isnan(a) and math.isnan(b))
        for a, b in zip(attrs.astuple(again), attrs.astuple(row), strict=True)
    )
