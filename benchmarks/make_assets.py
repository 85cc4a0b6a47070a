"""Regenerate the reference run's assets from the current code.

    python benchmarks/make_assets.py [--data DIR] [--run DIR] [--compare-runs DIR]
                                     [--only metrics|figures|compare-lr|distortions|prefix]

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
  each), written alone with ``--only compare-lr`` (no reference run is trained then);
- ``assets/distortions.png`` (nothing is trained for it): the first training digits of
  the standard split and the same digits as the ``record`` preset's distortions change
  them (:func:`purenet.plot.distortions_figure`), with the draws its training makes for
  the first images of its first batch; written alone with ``--only distortions``.
- ``tests/reference-prefixes/<kernels>.csv`` (with ``--only prefix``, and beside the
  metrics): the reference run's first :data:`PREFIX_EPOCHS` epochs as this machine's BLAS
  kernels compute them, which ``tests/test_assets.py`` checks bit for bit on machines
  with the same kernels. Every file there must be written again when the bits change: a
  machine with AVX-512 writes both the SkylakeX and the Haswell file (the latter in a
  child process with ``OPENBLAS_CORETYPE=Haswell``); one without AVX-512 only Haswell's.

``--run DIR`` keeps the run in DIR, or reuses the finished reference run already there (so
the figures can be redrawn without training again); without it the run goes to a
temporary folder; ``--compare-runs DIR`` does the same for the learning-rate runs.
``--only`` writes one of the five groups. Run it whenever the recorded
numbers change (``tests/test_assets.py`` fails then), and update the README's reference
table and times from what it prints (and the own-digits output it prints).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs

from purenet._engine.threads import blas_kernels
from purenet.config import Config
from purenet.data_folder import load_from, locate
from purenet.history import Row, csv_header
from purenet.plot import distortions_figure, save_figure
from purenet.presets import preset_config
from purenet.runs import Run
from purenet.train import distort_batch, train

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
PURENET = Path(sys.executable).parent / "purenet"
EPOCH_FIGURES = ("confusion.png", "per-class.png", "weights.png", "misclassified.png")
STRIDE = 50
COMPARE_LRS = ("0.05", "0.1", "0.5")
COMPARE_EPOCHS = 300
PREFIXES = REPO / "tests" / "reference-prefixes"
PREFIX_EPOCHS = 20  # as tests/test_assets.py checks them


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
    prefix = PREFIXES / f"{blas_kernels()}.csv"
    if prefix.exists() and not same_start(prefix, ASSETS / "reference-metrics.csv"):
        print(
            f"make_assets: warning: the run's first epochs differ from {prefix.name}'s: "
            "it was trained by other code or with other kernels than these"
        )
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


def same_start(a: Path, b: Path) -> bool:
    """Whether two metrics files have the same first :data:`PREFIX_EPOCHS` epochs, every
    column but the seconds."""

    def start(path: Path) -> list[str]:
        return [
            line.rsplit(",", 1)[0] for line in path.read_text().splitlines()[: PREFIX_EPOCHS + 2]
        ]

    return start(a) == start(b)


# Set for the child process that writes the Haswell prefix (see write_prefix).
PREFIX_CHILD = "PURENET_ASSETS_PREFIX_CHILD"


def write_prefix(data: str | None) -> None:
    """The reference run's first :data:`PREFIX_EPOCHS` epochs, trained here in-process, as
    ``tests/reference-prefixes/<kernels>.csv`` (the seconds column written as 0). With
    SkylakeX kernels (a CPU with AVX-512), the Haswell file too, from a child process
    told to use those kernels; then names the files left for other machines to write."""
    config = Config()
    dataset = load_from(locate(Path(data) if data else None), config.split, config.seed)
    fold = train(config, dataset)
    rows = [Row.of(snapshot, 0.0) for snapshot in itertools.islice(fold, PREFIX_EPOCHS + 1)]
    PREFIXES.mkdir(exist_ok=True)
    kernels = blas_kernels()
    path = PREFIXES / f"{kernels}.csv"
    path.write_text(csv_header() + "".join(",".join(row.csv_fields()) + "\n" for row in rows))
    print(f"{path.relative_to(REPO)} written")
    if PREFIX_CHILD in os.environ:
        return
    written = {kernels}
    if kernels == "SkylakeX":
        child = [sys.executable, __file__, "--only", "prefix", *(["--data", data] if data else [])]
        env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell", PREFIX_CHILD: "1"}
        subprocess.run(child, check=True, env=env)
        written.add("Haswell")
    others = sorted(p.name for p in PREFIXES.glob("*.csv") if p.stem not in written)
    if others:
        print(f"  also write {', '.join(others)} again on a machine with those kernels")


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


def write_distortions(data: str | None, n: int = 10) -> None:
    """assets/distortions.png: ``n`` training digits, each distortion of the ``record``
    preset alone, and all of them together as two epochs of its training draw them."""
    config = preset_config("record")
    dataset = load_from(locate(Path(data) if data else None), "standard", config.seed)
    x = dataset.x_train[:n]
    affine = attrs.evolve(config, elastic_alpha=0.0)
    elastic = attrs.evolve(config, shift=0, rotate=0.0, scale=0.0)
    affine_label = (
        f"affine\n(rotate {config.rotate:g} deg,\nscale {config.scale:g}, shift {config.shift})"
    )
    elastic_label = f"elastic\n(alpha {config.elastic_alpha:g},\nsigma {config.elastic_sigma:g})"
    rows = [
        ("original", x),
        (affine_label, distort_batch(affine, x, 0, 0)),
        (elastic_label, distort_batch(elastic, x, 0, 0)),
        ("both, epoch 1", distort_batch(config, x, 0, 0)),
        ("both, epoch 2", distort_batch(config, x, 1, 0)),
    ]
    title = "the record preset's distortions of the first training digits (drawn afresh each epoch)"
    save_figure(distortions_figure(rows, title), ASSETS / "distortions.png")
    print("assets/distortions.png written")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the MNIST folder (default: as purenet finds it)")
    parser.add_argument("--run", type=Path, help="keep (or reuse) the reference run here")
    parser.add_argument(
        "--only",
        choices=["metrics", "figures", "compare-lr", "distortions", "prefix"],
        help="write one group only",
    )
    parser.add_argument(
        "--compare-runs", type=Path, help="keep (or reuse) the learning-rate runs here"
    )
    args = parser.parse_args()
    data = ["--data", args.data] if args.data else []
    if args.only in (None, "metrics", "prefix"):
        write_prefix(args.data)  # before write_metrics, which checks the run against it
    if args.only == "prefix":
        return
    if args.only in (None, "distortions"):
        write_distortions(args.data)
    if args.only == "distortions":
        return
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
