"""What distorting the training images costs, against the training step it feeds.

    python benchmarks/distortions.py [--data DIR] [--preset record] [--batches N]
                                     [--rounds R]

Takes one epoch's batches of the standard training set in the order the preset's run
visits them, and times, per epoch of 60,000 images (scaled from ``--batches N`` if
given): each kind of distortion alone (whole-pixel shifts, the affine map, the elastic
field alone, elastic distortions alone) and all of the preset's together, exactly as
training draws them (:func:`purenet.train.distort_batch`); then the preset's training
steps (forward, backward, dropout and the optimizer update) over the same batches. It
prints the distortions' share of an epoch, ``distortions / (distortions + steps)``,
which is the share they take of training (evaluating the test set once per epoch is
left out, so the share printed is a little high). ``--rounds R`` repeats every timing R
times, in turn (A B C ... A B C ...), and keeps each one's fastest: other jobs on the
machine slow a timing down, never speed it up. The load average is printed at the start and the end.
Benchmark figures, not tests: they depend on the machine.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from purenet.augment import elastic_field
from purenet.data import load_dataset
from purenet.presets import PRESETS, preset_config
from purenet.seeds import Stream
from purenet.train import distort_batch, epoch_order, initial_state, step

EPOCH_IMAGES = 60_000


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def fastest(works: list[Callable[[], None]], rounds: int) -> list[float]:
    """The fastest of ``rounds`` timings of each of ``works``, run in turn."""
    best = [math.inf] * len(works)
    for _ in range(rounds):
        for i, work in enumerate(works):
            began = time.perf_counter()
            work()
            best[i] = min(best[i], time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("PURENET_DATA"))
    parser.add_argument("--preset", default="record", choices=list(PRESETS))
    parser.add_argument("--batches", type=int, help="time this many batches (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each timing, keep best")
    args = parser.parse_args()
    if args.data is None:
        parser.error("pass --data DIR or set PURENET_DATA")
    config = preset_config(args.preset)
    if config.full_batch:
        parser.error(f"preset {args.preset} trains on the full batch: nothing to time per batch")
    data = load_dataset(args.data, "standard", config.seed)
    x, y = data.x_train, data.y_train
    order = epoch_order(config, len(y), 0)
    size = config.batch_size
    n_batches = math.ceil(len(y) / size)
    timed = min(n_batches, args.batches or n_batches)
    batches = [order[b * size : (b + 1) * size] for b in range(timed)]
    xs = [x[rows] for rows in batches]
    images = sum(len(rows) for rows in batches)
    per_epoch = EPOCH_IMAGES / images

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}; {load()}"
    )
    print(
        f"preset {args.preset}: hidden {','.join(map(str, config.hidden))}, batches of "
        f"{size}, shift {config.shift}, rotate {config.rotate:g}, scale {config.scale:g}, "
        f"elastic alpha {config.elastic_alpha:g} sigma {config.elastic_sigma:g}; timing "
        f"{timed} of {n_batches} batches ({images} images), best of {args.rounds}, "
        f"scaled to {EPOCH_IMAGES:,} images"
    )

    def distorting(variant) -> Callable[[], None]:
        return lambda: [distort_batch(variant, xb, 0, b) for b, xb in enumerate(xs)]

    def field_alone() -> None:
        for b, xb in enumerate(xs):
            key = (config.seed, Stream.ELASTIC, 0, b)
            elastic_field(key, len(xb), config.elastic_alpha, config.elastic_sigma)

    optimizer = config.make_optimizer(steps_per_epoch=n_batches)
    start = initial_state(config, x.dtype)

    def stepping() -> None:
        state = start
        for b, rows in enumerate(batches):
            key = (config.seed, Stream.DROPOUT, 0, b)
            state, _ = step(
                state, xs[b], y[rows], optimizer, dropout=config.dropout, dropout_key=key
            )

    no_elastic = attrs.evolve(config, elastic_alpha=0.0)
    kinds: list[tuple[str, Callable[[], None]]] = [
        ("whole-pixel shifts", distorting(attrs.evolve(no_elastic, rotate=0.0, scale=0.0))),
        ("affine map", distorting(no_elastic)),
    ]
    if config.elastic_alpha > 0:
        kinds += [
            ("elastic field alone (noise + smoothing)", field_alone),
            (
                "elastic alone (field + resampling)",
                distorting(attrs.evolve(config, shift=0, rotate=0.0, scale=0.0)),
            ),
        ]
    kinds.append((f"all of {args.preset}'s distortions", distorting(config)))

    kinds.append((f"training steps ({args.preset})", stepping))
    timings = fastest([work for _, work in kinds], args.rounds)
    print(f"{'per epoch of 60,000 images':<44} {'seconds':>8}")
    for (name, _), seconds in zip(kinds, timings, strict=True):
        print(f"  {name:<42} {seconds * per_epoch:>8.2f}")
    distortions, steps = timings[-2], timings[-1]
    share = distortions / (distortions + steps)
    print(f"distortions' share of an epoch: {share:.1%} (target: at most 25%)")
    print(load())


if __name__ == "__main__":
    main()
