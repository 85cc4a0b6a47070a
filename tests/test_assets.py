"""The recorded reference run (assets/reference-metrics.csv) is what the current code
computes, and the README quotes it.

When a change moves the reference run's numbers, even in the last bits, these tests fail:
regenerate the assets with ``python benchmarks/make_assets.py`` and update the README's
table from what it prints.

The last bits depend on the BLAS kernels (Haswell or SkylakeX for NumPy's OpenBLAS), so
the first epochs are recorded once per kernel family in ``tests/reference-prefixes/``,
and every file there must be written again when the bits change: ``python
benchmarks/make_assets.py --only prefix`` writes this machine's family, and on a machine
with AVX-512 (SkylakeX kernels) the Haswell one too. The asset itself must begin with one
of them. Whatever the kernels, the fresh epochs must agree with the asset up to rounding.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from purenet._engine.threads import blas_kernels
from purenet.config import Config
from purenet.history import Row, csv_header
from purenet.train import train

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "assets" / "reference-metrics.csv"
PREFIXES = REPO / "tests" / "reference-prefixes"
PREFIX_EPOCHS = 20
# How far the fresh epochs may be from the asset's under other kernels: a loss relative
# (other kernels differ by about 4e-9), an accuracy absolute (2 of the 7,000 test images,
# 19 of the 63,000 training images; other kernels differ by at most 1 training image).
LOSS_RTOL = 1e-6
ACCURACY_ATOL = 3e-4


def recorded_lines() -> list[str]:
    return ASSET.read_text().splitlines()


def without_seconds(line: str) -> str:
    return line.rsplit(",", 1)[0]


def recorded_prefix(kernels: str) -> list[str] | None:
    path = PREFIXES / f"{kernels}.csv"
    return path.read_text().splitlines()[: PREFIX_EPOCHS + 2] if path.exists() else None


@pytest.fixture(scope="module")
def fresh_lines(reference_data) -> list[str]:
    """The first epochs of the reference run, trained now, as metrics.csv lines with 0 s.
    The fold is lazy: taking its first snapshots trains only those epochs of the 2,500."""
    fold = train(Config(), reference_data)
    return [
        ",".join(Row.of(s, 0.0).csv_fields()) for s in itertools.islice(fold, PREFIX_EPOCHS + 1)
    ]


@pytest.mark.mnist
def test_a_fresh_reference_training_reproduces_the_recorded_rows_bit_for_bit(fresh_lines):
    # exactly the rows recorded with this machine's kernels, every column but the wall time
    kernels = blas_kernels()
    recorded = recorded_prefix(kernels)
    if recorded is None:
        pytest.skip(f"no recorded prefix for {kernels} kernels in {PREFIXES}")
    assert recorded[0] + "\n" == csv_header()
    assert list(map(without_seconds, fresh_lines)) == list(map(without_seconds, recorded[1:]))


@pytest.mark.mnist
def test_a_fresh_reference_training_agrees_with_the_asset_up_to_rounding(fresh_lines):
    assert_same_up_to_rounding(fresh_lines, recorded_lines()[1 : PREFIX_EPOCHS + 2])


def test_the_recorded_prefixes_agree_up_to_rounding():
    for path in sorted(PREFIXES.glob("*.csv")):
        lines = recorded_prefix(path.stem)[1:]
        assert_same_up_to_rounding(lines, recorded_lines()[1 : PREFIX_EPOCHS + 2])


def assert_same_up_to_rounding(lines: list[str], expected_lines: list[str]) -> None:
    """The metrics lines agree epoch by epoch: losses within LOSS_RTOL, accuracies
    within ACCURACY_ATOL (columns 1-4: train loss and accuracy, test loss and accuracy)."""
    for line, expected_line in zip(lines, expected_lines, strict=True):
        values, expected = (list(map(float, x.split(",")[1:5])) for x in (line, expected_line))
        assert values[0::2] == pytest.approx(expected[0::2], rel=LOSS_RTOL), line
        assert values[1::2] == pytest.approx(expected[1::2], abs=ACCURACY_ATOL), line


def test_the_asset_begins_with_a_recorded_prefix():
    prefixes = sorted(PREFIXES.glob("*.csv"))
    assert prefixes, f"no recorded prefixes in {PREFIXES}"
    start = list(map(without_seconds, recorded_lines()[: PREFIX_EPOCHS + 2]))
    matching = [
        path.stem
        for path in prefixes
        if list(map(without_seconds, recorded_prefix(path.stem))) == start
    ]
    assert matching, "assets/reference-metrics.csv begins with none of the recorded prefixes"


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
