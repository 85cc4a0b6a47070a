"""Wall time of a sweep with --jobs 2 against the same runs one after another (--jobs 1).

The issue's grid: the reference network for 30 epochs, lr 0.05, 0.1, 0.5 x hidden 10, 32,
128 (nine runs), through the installed ``purenet sweep`` command as a user runs it, each
sweep into a fresh folder. The two are timed in turns (``--repeat`` rounds), and the
runs of the two sweeps are checked to be the same bits. Target: --jobs 2 in at most 0.6x
the time of --jobs 1. Prints the machine's load before and after: the ratio means little
on a machine that other work keeps busy.

Each round also times what a user does without ``sweep``: the nine runs as nine
``purenet train`` commands in a row (a shell loop), each a new process that imports
purenet and matplotlib and loads the data again. ``--jobs 1`` keeps one worker process
and the data across its runs, so it is the harder baseline: a lone run already computes
on every core (``PURENET_THREADS``), and two runs at once gain only what one run leaves
idle.

    python benchmarks/sweep.py [--data DIR] [--epochs 30] [--repeat 1] [--no-loop]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from purenet.runs import Run

PURENET = Path(sys.executable).parent / "purenet"
LRS, HIDDEN = ("0.05", "0.1", "0.5"), ("10", "32", "128")
GRID = ["--grid", f"lr={','.join(LRS)}", "--grid", f"hidden={','.join(HIDDEN)}"]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sweep(out: Path, jobs: int, epochs: int, data: str | None) -> float:
    """Seconds of wall time for the sweep into ``out`` with ``jobs``."""
    command = [str(PURENET), "sweep", *GRID, "--epochs", str(epochs), "--out", str(out)]
    command += ["--jobs", str(jobs), "--quiet"] + (["--data", data] if data else [])
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def shell_loop(out: Path, epochs: int, data: str | None) -> float:
    """Seconds of wall time for the grid as nine ``purenet train`` commands in a row."""
    began = time.perf_counter()
    for lr in LRS:
        for hidden in HIDDEN:
            command = [str(PURENET), "train", "--epochs", str(epochs), "--lr", lr]
            command += ["--hidden", hidden, "--out", str(out / f"lr={lr},hidden={hidden}")]
            command += ["--quiet"] + (["--data", data] if data else [])
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def fingerprint(folder: Path) -> list[bytes]:
    """Each run's metrics without their times, and its last keyframe's arrays."""
    found = []
    for run_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        lines = (run_folder / "metrics.csv").read_text().splitlines()
        found.append(repr([line.rsplit(",", 1)[0] for line in lines]).encode())
        run = Run.open(run_folder)
        params = run.load_keyframe(run.keyframe_epochs()[-1]).params
        found.extend(a.tobytes() for layer in params.layers for a in (layer.w, layer.b))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST folder (default: $PURENET_DATA, else the cache)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the two sweeps")
    parser.add_argument(
        "--no-loop", action="store_true", help="leave out the nine purenet train commands"
    )
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    loops: list[float] = []
    print(f"load average before: {load()} (1, 5, 15 min); {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="purenet-bench-sweep-") as tmp:
        for round_ in range(args.repeat):
            for jobs in (1, 2):
                out = Path(tmp) / f"round{round_}-jobs{jobs}"
                seconds = sweep(out, jobs, args.epochs, args.data)
                times[jobs].append(seconds)
                print(f"round {round_ + 1}: --jobs {jobs}: {seconds:6.1f} s  (load {load()})")
            if not args.no_loop:
                loops.append(shell_loop(Path(tmp) / f"round{round_}-loop", args.epochs, args.data))
                print(f"round {round_ + 1}: shell loop: {loops[-1]:6.1f} s  (load {load()})")
        same = fingerprint(Path(tmp) / "round0-jobs1") == fingerprint(Path(tmp) / "round0-jobs2")
        if loops:
            same = same and fingerprint(Path(tmp) / "round0-loop") == fingerprint(
                Path(tmp) / "round0-jobs1"
            )
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"nine {args.epochs}-epoch runs one after another (--jobs 1): {one:6.1f} s (median)")
    print(f"nine {args.epochs}-epoch runs two at a time     (--jobs 2): {two:6.1f} s (median)")
    print(f"ratio --jobs 2 / --jobs 1: {two / one:.2f} (target <= 0.6)")
    if loops:
        loop = statistics.median(loops)
        print(f"nine purenet train commands in a row (shell loop): {loop:6.1f} s (median)")
        print(f"ratio --jobs 2 / shell loop: {two / loop:.2f}")
    print(f"runs bit-identical across the sweeps{' and the loop' if loops else ''}: {same}")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
