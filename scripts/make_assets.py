"""Regenerate the README's figures in assets/ from what the repository records.

    python scripts/make_assets.py fig                 # assets/fig.png from reference-metrics.csv
    python scripts/make_assets.py own-digits RUN      # assets/own-digits.png, with RUN's network

``fig`` draws the training figure of the reference run from its recorded per-epoch
metrics (``assets/reference-metrics.csv``), exactly as ``purenet train`` draws
``figure.png``; rerun it whenever that file or the figure's code changes. ``own-digits``
runs ``purenet predict RUN assets/digits/* --show-input assets/own-digits.png``: RUN is
the reference run (``purenet train`` with the defaults, seed 0), read at its last epoch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from purenet.config import Config
from purenet.history import read_history
from purenet.plot import figure_title, save_figure, training_figure

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def training(out: Path) -> None:
    """The reference run's training figure from its recorded metrics."""
    history = read_history(ASSETS / "reference-metrics.csv")
    save_figure(training_figure(history, figure_title(Config())), out)


def own_digits(run: Path, out: Path) -> None:
    """The pictures in assets/digits beside the 28x28 inputs ``run``'s network reads."""
    pictures = sorted((ASSETS / "digits").iterdir())
    purenet = Path(sys.executable).parent / "purenet"
    command = [str(purenet), "predict", str(run), *map(str, pictures), "--show-input", str(out)]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="what", required=True)
    fig = commands.add_parser("fig", help="assets/fig.png from assets/reference-metrics.csv")
    fig.add_argument("--out", type=Path, default=ASSETS / "fig.png")
    digits = commands.add_parser("own-digits", help="assets/own-digits.png with a run's network")
    digits.add_argument("run", type=Path, help="the reference run folder")
    digits.add_argument("--out", type=Path, default=ASSETS / "own-digits.png")
    args = parser.parse_args()
    if args.what == "fig":
        training(args.out)
    else:
        own_digits(args.run, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
