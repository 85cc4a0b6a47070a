"""Rebuilding any epoch of a recorded run, exactly.

The params of epoch N are recomputed from the nearest keyframe at or before N (strictly
before in a stochastic run, see :func:`starting_keyframe`) by folding forward with the
same pure functions and data. Because the fold is a pure function of (config, data,
state), the replayed snapshot is bit-identical to the one the run yielded, and so are its
metrics and the recorded row.
"""

from __future__ import annotations

import math
import re

import attrs

from purenet import __version__
from purenet.data import Dataset
from purenet.history import Row
from purenet.network import Metrics, metrics_of
from purenet.runs import Run, RunError, computed_with
from purenet.train import Snapshot, packed_batches, train


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
    run.check_data(data)
    start = starting_keyframe(run, epoch)
    for snapshot in train(run.config, data, start=run.load_keyframe(start)):
        if snapshot.epoch == epoch:
            return snapshot
    raise RunError(f"run {run.name} diverged before epoch {epoch} while replaying")


def snapshot_at(run: Run, epoch: int, data: Dataset) -> tuple[Snapshot, bool]:
    """The snapshot of ``epoch`` with as little training as exactness allows, and
    whether it was folded (True) or read from the epoch's keyframe (False).

    In a stochastic run whose keyframe of ``epoch`` is on disk (the last epoch's always
    is), the params are read from it and the test and validation metrics recomputed from
    them exactly as the fold computes them; the train metrics, a mean over that epoch's
    batches that only a fold through the epoch recomputes, are the recorded row's. Else
    this is :func:`replay` (which, in a full-batch run, starts at the keyframe itself).

    Raises:
        RunError: as :func:`replay`.
    """
    rows, _ = run.rows_up_to(epoch)
    if not (run.config.stochastic and epoch > 0 and epoch in run.keyframe_epochs()):
        return replay(run, epoch, data), True
    run.check_data(data)
    state = run.load_keyframe(epoch)
    held_out = packed_batches(run.config, data, with_train=False)
    test, *valid = metrics_of(state.params, held_out)
    row = rows[epoch]
    recorded_train = Metrics(row.train_loss, row.train_acc)
    return Snapshot(state, recorded_train, test, valid[0] if valid else None), False


def differing_columns(snapshot: Snapshot, row: Row) -> list[tuple[str, float, float]]:
    """The metrics in which the snapshot differs from the recorded row, bit for bit, as
    ``(column, recorded, replayed)`` (NaN, for an absent validation set, equals NaN)."""
    again = Row.of(snapshot, row.seconds)
    return [
        (field.name, b, a)
        for field, a, b in zip(
            attrs.fields(Row), attrs.astuple(again), attrs.astuple(row), strict=True
        )
        if field.name != "seconds" and not (a == b or (math.isnan(a) and math.isnan(b)))
    ]


# The first version that draws dropout masks per batch (earlier ones drew them per block).
DROPOUT_PER_BATCH_SINCE = (0, 4, 0)


def _release(version) -> tuple[int, ...] | None:
    """``"0.3.1"`` -> (0, 3, 1); None when ``version`` does not start with numbers."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    return tuple(int(part or 0) for part in match.groups()) if match else None


def likely_cause(run: Run) -> str:
    """Why a faithful replay of ``run`` may differ here, as far as the run's record tells:
    another purenet version, another BLAS or BLAS kernel family, another CPU. Every other
    setting (threads included) does not change a bit. A dropout run recorded before
    purenet 0.4.0 drew other dropout masks than this version draws: not a rounding
    difference."""
    recorded = run.meta.get("computed_with")
    here = computed_with()
    version = run.meta.get("purenet_version")
    release = _release(version)
    if run.config.dropout > 0 and release is not None and release < DROPOUT_PER_BATCH_SINCE:
        since = ".".join(map(str, DROPOUT_PER_BATCH_SINCE))
        return (
            f"the run uses dropout and was recorded by purenet {version}; since {since} "
            "purenet draws dropout masks per batch (before, per block), so this replay "
            "drew other masks than the run did, not only rounding differently: the run "
            "replays only with the version that recorded it"
        )
    if version != __version__:
        return (
            f"the run was recorded by purenet {version}, this is "
            f"{__version__}, and versions may add floats in another order"
        )
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        return "the run does not record the BLAS it was computed with"
    changed = [
        f"{key} {recorded.get(key, 'unset')!r} then, {here.get(key, 'unset')!r} now"
        for key in sorted(set(recorded) | set(here))
        if recorded.get(key) != here.get(key)
    ]
    if changed:
        return "the run was computed differently: " + "; ".join(changed)
    return (
        "the run records the same purenet, BLAS and kernels as here, so the data, the "
        "keyframes or the metrics file may have been changed"
    )


def describe_mismatch(run: Run, snapshot: Snapshot, row: Row) -> str | None:
    """None when the replayed snapshot equals its recorded row bit for bit; else one line
    naming each column that differs (recorded and replayed values, relative difference)
    and the likely cause."""
    columns = differing_columns(snapshot, row)
    if not columns:
        return None
    parts = []
    for name, recorded, replayed in columns:
        scale = max(abs(recorded), abs(replayed))
        relative = abs(recorded - replayed) / scale if scale else math.inf
        parts.append(f"{name} {recorded!r} recorded, {replayed!r} replayed ({relative:.1e} apart)")
    return (
        f"the replayed metrics of epoch {snapshot.epoch} of run {run.name} differ from the "
        f"recorded row: {'; '.join(parts)}. Likely cause: {likely_cause(run)}"
    )
