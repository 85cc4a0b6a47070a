"""Regenerate the reference run's assets from the current code.

    python benchmarks/make_assets.py [--data DIR] [--run DIR] [--compare-runs DIR]
                                     [--only metrics|figures|compare-lr]

Trains the reference experiment (the defaults of ``purenet train``, seed 0, 2,500 epochs,
about 100 s on the project's 2-core machine) with the installed ``purenet`` command, then
writes what the README shows:

- ``assets/reference-metrics.csv``: the run's ``metrics.csv`` as it is;
- ``assets/fig.png``: the run's own ``figure.png``;
- ``assets/confusion.png``, ``per-class.png``, ``weights.png``, ``misclassified.png``:
  ``purenet plot RUN --epoch 2500``;
- ``assets/learning.gif``: ``purenet replay RUN --animate ... --stride 50``;
- ``assets/own-digits.png``: ``purenet predict RUN assets/digits/* --show-input ...``, the
  pictures in ``assets/digits`` beside the 28x28 inputs the network reads;
- ``assets/compare-lr.png``: ``purenet compare`` of the reference network trained for
  :data:`COMPARE_EPOCHS` epochs at the learning rates :data:`COMPARE_LRS` (about 15 s
  each), written alone with ``--only compare-lr`` (no reference run is trained then).

``--run DIR`` keeps the run in DIR, or reuses the finished reference run already there (so
the figures can be redrawn without training again); without it the run goes to a
temporary folder; ``--compare-runs DIR`` does the same for the learning-rate runs.
``--only`` writes one of the three groups. Run it whenever the recorded
numbers change (``tests/test_assets.py`` fails then), and update the README's reference
table and times from what it prints (and the own-digits output it prints).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from purenet.config import Config
from purenet.runs import Run

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
PURENET = Path(sys.executable).parent / "purenet"
EPOCH_FIGURES = ("confusion.png", "per-class.png", "weights.png", "misclassified.png")
STRIDE = 50
COMPARE_LRS = ("0.05", "0.1", "0.5")
COMPARE_EPOCHS = 300


def purenet(*args: object) -> str:
    """Run the installed command; its stdout. A failure stops the script with its stderr."""
    result = subprocess.run(
        [str(PURENET), *map(str, args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"make_assets: purenet {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


def reference_run(folder: Path, data: list[str]) -> Run:
    """The finished reference run in ``folder``, trained there first if it holds none."""
    if not (folder / "config.json").exists():
        print(f"training the reference run into {folder} ...", flush=True)
        print(purenet("train", "--quiet", "--out", folder, *data), end="")
    run = Run.open(folder)
    if run.config != Config():
        sys.exit(f"make_assets: {folder} holds a run with other settings than the reference")
    if run.status()["status"] != "finished":
        sys.exit(f"make_assets: the run in {folder} is not finished; resume it first")
    return run


def write_metrics(run: Run) -> None:
    shutil.copyfile(run.folder / "metrics.csv", ASSETS / "reference-metrics.csv")
    rows = run.rows()
    first, last = rows[0], rows[-1]
    print("assets/reference-metrics.csv written; for the README's table:")
    for label, field in (
        ("train loss", "train_loss"),
        ("train accuracy", "train_acc"),
        ("test accuracy", "test_acc"),
    ):
        a, b = getattr(first, field), getattr(last, field)
        shown = (f"{a:.4f}", f"{b:.4f}") if field.endswith("loss") else (f"{a:.2%}", f"{b:.2%}")
        print(f"  {label}: epoch {first.epoch} {shown[0]}, epoch {last.epoch} {shown[1]}")
    print(f"  training took {last.seconds:.1f} s (the last row's seconds)")
    computed = run.meta.get("computed_with", {})
    print(f"  computed with {json.dumps(computed)}")


def write_figures(run: Run, data: list[str]) -> None:
    last = run.rows()[-1].epoch
    shutil.copyfile(run.folder / "figure.png", ASSETS / "fig.png")
    with tempfile.TemporaryDirectory(prefix="purenet-assets-") as scratch:
        purenet("plot", run.folder, "--epoch", last, "--out", scratch, *data)
        for name in EPOCH_FIGURES:
            shutil.copyfile(Path(scratch) / name, ASSETS / name)
    purenet("replay", run.folder, "--animate", ASSETS / "learning.gif", "--stride", STRIDE, *data)
    pictures = sorted((ASSETS / "digits").iterdir())
    readings = purenet(
        "predict", run.folder, *pictures, "--show-input", ASSETS / "own-digits.png", *data
    )
    print("assets/fig.png, " + ", ".join(EPOCH_FIGURES) + ", learning.gif and own-digits.png")
    print("written; predict read the own digits as (for the README):")
    print(readings, end="")


def write_compare_lr(folder: Path, data: list[str]) -> None:
    """Train the reference network at each of :data:`COMPARE_LRS` into ``folder`` (runs
    already finished there are kept), then write their comparison to
    ``assets/compare-lr.png`` and print its table."""
    folder.mkdir(parents=True, exist_ok=True)
    for lr in COMPARE_LRS:
        run = folder / f"lr-{lr}"
        if not (run / "config.json").exists():
            print(f"training the reference network with lr {lr} into {run} ...", flush=True)
            purenet("train", "--quiet", "--epochs", COMPARE_EPOCHS, "--lr", lr, "--out", run, *data)
    runs = [folder / f"lr-{lr}" for lr in COMPARE_LRS]
    print(purenet("compare", *runs, "--out", ASSETS / "compare-lr.png"), end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the MNIST folder (default: as purenet finds it)")
    parser.add_argument("--run", type=Path, help="keep (or reuse) the reference run here")
    parser.add_argument(
        "--only", choices=["metrics", "figures", "compare-lr"], help="write one group only"
    )
    parser.add_argument(
        "--compare-runs", type=Path, help="keep (or reuse) the learning-rate runs here"
    )
    args = parser.parse_args()
    data = ["--data", args.data] if args.data else []
    with tempfile.TemporaryDirectory(prefix="purenet-assets-") as scratch:
        if args.only in (None, "compare-lr"):
            write_compare_lr(args.compare_runs or Path(scratch) / "compare-lr", data)
        if args.only == "compare-lr":
            return
        run = reference_run(args.run or Path(scratch) / "reference", data)
        if args.only in (None, "metrics"):
            write_metrics(run)
        if args.only in (None, "figures"):
            write_figures(run, data)


if __name__ == "__main__":
    main()
