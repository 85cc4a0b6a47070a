"""The params of a run at many epochs: read from keyframes, folded forward only between.

A keyframe holds the params of its epoch exactly. For an epoch between keyframes the
fold restarts from the nearest keyframe before it and runs forward with the run's own
settings, so the params are those training had (see :mod:`purenet.replay`). Walking the
epochs in order keeps one fold going across them: the work is at most the span of
epochs asked for, and zero when every epoch has a keyframe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from purenet.data import Dataset
from purenet.params import Params
from purenet.runs import Run, RunError
from purenet.train import Snapshot, train


def params_at(
    run: Run, epochs: Sequence[int], data: Callable[[], Dataset]
) -> Iterator[tuple[int, Params]]:
    """Yield ``(epoch, params)`` for each of ``epochs`` (ascending, each with a row).

    Args:
        run: an open run.
        epochs: the epochs wanted, in ascending order.
        data: returns the run's dataset; called once, and only if some epoch has no
            keyframe.

    Raises:
        RunError: if an epoch precedes every keyframe, or the fold diverges first.
    """
    keyframes = set(run.keyframe_epochs())
    dataset: Dataset | None = None
    fold: Iterator[Snapshot] | None = None
    current: Snapshot | None = None
    for epoch in epochs:
        if epoch in keyframes:
            yield epoch, run.load_keyframe(epoch).params
            continue
        start = max((k for k in keyframes if k < epoch), default=None)
        if start is None:
            raise RunError(f"run {run.name} has no snapshot at or before epoch {epoch}")
        if current is None or not start <= current.epoch < epoch:
            if dataset is None:
                dataset = data()
                run.check_data(dataset)
            fold = train(run.config, dataset, start=run.load_keyframe(start))
            current = None
        for snapshot in fold:
            current = snapshot
            if snapshot.epoch == epoch:
                break
        if current is None or current.epoch != epoch:
            raise RunError(f"run {run.name} diverged before epoch {epoch} while replaying")
        yield epoch, current.params
