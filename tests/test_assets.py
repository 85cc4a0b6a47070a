"""The recorded reference run (assets/reference-metrics.csv) is what the current code
computes, and the README quotes it.

When a change moves the reference run's numbers, even in the last bits, these tests fail:
regenerate the assets with ``python benchmarks/make_assets.py`` and update the README's
table from what it prints.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from purenet.config import Config
from purenet.history import Row, csv_header
from purenet.train import train

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "assets" / "reference-metrics.csv"
PREFIX_EPOCHS = 20


def recorded_lines() -> list[str]:
    return ASSET.read_text().splitlines()


def without_seconds(line: str) -> str:
    return line.rsplit(",", 1)[0]


@pytest.mark.mnist
def test_a_fresh_reference_training_reproduces_the_recorded_rows_bit_for_bit(reference_data):
    # The first epochs of the reference run, trained now, must give the recorded rows
    # exactly (every column but the wall time). The fold is lazy: taking its first
    # snapshots trains only those epochs of the 2,500-epoch run.
    fold = train(Config(), reference_data)
    fresh = [Row.of(s, 0.0).csv_fields() for s in itertools.islice(fold, PREFIX_EPOCHS + 1)]
    recorded = recorded_lines()[1 : PREFIX_EPOCHS + 2]
    assert [without_seconds(",".join(f)) for f in fresh] == list(map(without_seconds, recorded))


def test_the_asset_is_a_whole_reference_run():
    lines = recorded_lines()
    assert lines[0] + "\n" == csv_header()
    epochs = [int(line.split(",", 1)[0]) for line in lines[1:]]
    assert epochs == list(range(Config().epochs + 1))


def test_the_readme_table_quotes_the_asset():
    first, last = (line.split(",") for line in recorded_lines()[1:][:: Config().epochs])
    readme = (REPO / "README.md").read_text()
    for label, column, shown in (
        ("train loss", 1, lambda v: f"{v:.4f}"),
        ("train accuracy", 2, lambda v: f"{v:.2%}"),
        ("test accuracy", 4, lambda v: f"{v:.2%}"),
    ):
        expected = f"| {label} | {shown(float(first[column]))} | {shown(float(last[column]))} |"
        assert re.search(re.escape(expected), readme), expected
