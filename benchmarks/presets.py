"""Train each preset on the real MNIST and print its final test accuracy and training time.

    python benchmarks/presets.py [--data DIR] [--only fast,best,record] [--quick]
                                 [--kernels this|both]

Benchmark figures, not tests: they depend on the machine. Accuracy is the final epoch's
(no epoch is chosen on the test set); time is the training fold alone, data loading
excluded. ``--quick`` trains each preset for two epochs only (a smoke run for CI).
``record`` trains for about ten minutes or more: leave it out with ``--only`` for a
shorter table.

``--kernels both`` trains the presets again in a child process with the other OpenBLAS
kernel family (``OPENBLAS_CORETYPE=Haswell``, or native kernels if this process forces
a family; see ``bench_kernels.py``), unless that environment gives the same family as
this process: then the table is printed once, and says so. The heading names the family.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import deque
from pathlib import Path

import attrs
import bench_kernels
import numpy as np

from purenet.data import load_dataset
from purenet.presets import PRESETS, describe, preset_config
from purenet.train import train

TARGETS = {"reference": 0.89, "fast": 0.98, "best": 0.99, "record": 0.994}
BUDGET_SECONDS = {"reference": None, "fast": 30, "best": 120, "record": 900}


def run_preset(name: str, folder: Path, quick: bool) -> dict:
    config = preset_config(name)
    if quick:
        config = attrs.evolve(config, epochs=2)
    data = load_dataset(folder, config.split, config.seed)
    began = time.perf_counter()
    last = deque(train(config, data), maxlen=1)[0]  # the fold's final snapshot
    seconds = time.perf_counter() - began
    return {
        "preset": name,
        "split": config.split.value,
        "epochs": last.epoch,
        "test_acc": last.test.accuracy,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("PURENET_DATA"))
    parser.add_argument("--only", default=",".join(PRESETS), help="comma-separated presets")
    parser.add_argument("--quick", action="store_true", help="two epochs per preset")
    parser.add_argument(
        "--kernels",
        choices=["this", "both"],
        default="this",
        help="this process's OpenBLAS kernel family, or both families",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data is None:
        parser.error("pass --data DIR or set PURENET_DATA")
    family = bench_kernels.architecture()
    plan = bench_kernels.plan(args.kernels, os.environ, family)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}, python {platform.python_version()}, "
        f"{bench_kernels.describe(family, os.environ)}; "
        f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    for line in plan.lines:
        print(line)
    print(
        f"{'preset':<10} {'split':<10} {'epochs':>6} {'test acc':>9} {'target':>7} "
        f"{'seconds':>8} {'budget':>7}"
    )
    for name in args.only.split(","):
        result = run_preset(name, args.data, args.quick)
        budget = BUDGET_SECONDS[name]
        print(
            f"{name:<10} {result['split']:<10} {result['epochs']:>6} "
            f"{result['test_acc']:>9.2%} {TARGETS[name]:>7.0%} {result['seconds']:>8.1f} "
            f"{budget if budget else '-':>7}",
            flush=True,
        )
    print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if plan.child_env is not None:
        command = [sys.executable, __file__, "--data", str(args.data), "--only", args.only]
        command.append("--child")  # the child prints its table only
        code = bench_kernels.run_child(command + ["--quick"] * args.quick, plan.child_env)
        if code != 0:
            print(f"the child process {bench_kernels.exit_text(code)}: its figures are missing")
    if args.child:
        return
    print("presets:")
    for name in PRESETS:
        print(f"  {name}: {describe(name)}")


if __name__ == "__main__":
    main()
