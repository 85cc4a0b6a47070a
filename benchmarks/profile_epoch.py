"""Where an epoch's time goes: cProfile of purenet's own fold on W1 or W2.

    python benchmarks/profile_epoch.py [--data DIR] [--workload w1|w2] [--epochs N] [--top K]

Profiles ``N`` epochs (one ``next()`` of ``train(...)`` each, after two warm-up epochs)
and prints the functions with the most time of their own, per epoch. NumPy's ufuncs
and the ``@`` operator are not Python calls: their time counts as the time of the
purenet function that runs them (``tiled_product`` is the forward products,
``tiled_weight_grad`` the weight-gradient products, ``_output_terms`` the softmax and its
gradient). Work on purenet's pool threads is invisible to cProfile: W1's blocks, and
W2's wide products, whose output columns are cut into chunks (``wide_product``) that the
threads share. There the main thread's time shows as waiting on a lock; profile with
``PURENET_THREADS=1`` to see that work. For the BLAS and ufunc kernels themselves, run
this script under ``perf record -g`` or ``py-spy record --native``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from pathlib import Path

from bench_w2 import w2_config

from purenet.config import Config
from purenet.data import load_dataset
from purenet.train import train

WORKLOADS = {"w1": Config(), "w2": w2_config(100)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("PURENET_DATA"))
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    parser.add_argument("--epochs", type=int, default=None, help="default: w1 20, w2 2")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    if args.data is None:
        parser.error("pass --data DIR or set PURENET_DATA")
    config = WORKLOADS[args.workload]
    epochs = args.epochs or (20 if args.workload == "w1" else 2)
    data = load_dataset(args.data, config.split, config.seed)
    fold = train(config, data)
    for _ in range(3):  # the first snapshot, then two warm-up epochs
        next(fold)
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.enable()
    for _ in range(epochs):
        next(fold)
    profile.disable()
    seconds = time.perf_counter() - began
    print(
        f"{args.workload}: {epochs} epochs, {seconds / epochs * 1e3:.1f} ms per epoch under "
        f"the profiler (load average {', '.join(f'{v:.2f}' for v in os.getloadavg())})"
    )
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():
        where = f"{Path(filename).name}:{line}" if line else filename
        rows.append((own, cumulative, calls, f"{name} ({where})"))
    rows.sort(reverse=True)
    print(f"  {'own ms/epoch':>12} {'share':>6} {'cum ms/epoch':>12} {'calls/epoch':>11}  function")
    total = sum(row[0] for row in rows)
    for own, cumulative, calls, label in rows[: args.top]:
        print(
            f"  {own / epochs * 1e3:>12.2f} {own / total:>6.1%} {cumulative / epochs * 1e3:>12.2f} "
            f"{calls / epochs:>11.0f}  {label}"
        )


if __name__ == "__main__":
    main()
