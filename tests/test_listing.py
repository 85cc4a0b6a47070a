"""``purenet runs``: one aligned row per run with the settings that tell runs apart."""

from __future__ import annotations

import json
import re

import pytest
from cli_helpers import run, trained_run

from purenet.history import read_history

pytestmark = pytest.mark.slow  # three trainings through the installed command

LONG = "a-run-with-a-much-longer-name-than-the-time-stamped-ones"


@pytest.fixture(scope="module")
def listing(tmp_path_factory, mnist_dir):
    parent = tmp_path_factory.mktemp("listing")
    trained_run(parent / "plain", mnist_dir, "--epochs", 1)
    trained_run(
        parent / LONG,
        mnist_dir,
        *("--epochs", 1, "--optimizer", "momentum", "--nesterov", "--batch-size", 7000),
        *("--seed", 5, "--hidden", "12,8", "--lr", 0.05),
    )
    diverged = run(
        ["train", "--epochs", 3, "--lr", "1e6", "--quiet", "--out", parent / "wild"],
        parent,
        data=mnist_dir,
    )
    assert diverged.returncode == 1, diverged.stderr
    result = run(["runs", parent], parent)
    assert result.returncode == 0, result.stderr
    return parent, result.stdout.splitlines()


def cells(lines: list[str], name: str) -> dict[str, str]:
    """The cells of run ``name`` (every cell of these runs but the last is filled)."""
    names = re.split(r"\s{2,}", lines[0].strip())
    line = next(line for line in lines[1:] if line.split()[0] == name)
    return dict(zip(names, re.split(r"\s{2,}", line.strip()), strict=False))


def test_runs_shows_optimizer_batch_size_seed_layers_and_lr(listing):
    _, lines = listing
    header = lines[0].split()
    for column in ("run", "status", "epochs", "network", "optimizer", "lr", "batch", "seed"):
        assert column in header
    plain = cells(lines, "plain")
    assert plain["optimizer"] == "SGD" and plain["batch"] == "full" and plain["seed"] == "0"
    assert plain["network"] == "784-10-10" and plain["lr"] == "0.1"
    long = cells(lines, LONG)
    assert long["optimizer"] == "Nesterov momentum 0.9" and long["batch"] == "7000"
    assert long["seed"] == "5" and long["network"] == "784-12-8-10" and long["lr"] == "0.05"
    assert long["status"] == "finished" and long["epochs"] == "1/1"


def test_runs_stays_aligned_with_long_names(listing):
    _, lines = listing
    header = lines[0]
    for line in lines[1:]:
        # every row's status starts under the header's "status", its seed ends under "seed"
        assert line[header.index("status") - 2 : header.index("status")] == "  "
        assert line[header.index("status")] != " "
        end = header.index("seed") + len("seed")
        assert line[end - 1] != " " and line[end : end + 2] in ("  ", "")


def test_a_diverged_run_shows_its_last_sound_epoch_and_says_it_diverged(listing):
    parent, lines = listing
    status = json.loads((parent / "wild" / "status.json").read_text())
    history = read_history(parent / "wild" / "metrics.csv")
    kept = status["epoch"]
    assert history.epoch[-1] == kept + 1  # the diverged row is on record...
    row = cells(lines, "wild")
    assert row["status"] == "diverged"
    assert row["epochs"] == f"{kept}/3"
    assert row["test acc"] == f"{history.test_acc[kept]:.2%}"  # ...but not shown
    assert f"diverged at epoch {kept + 1}" in row["notes"]
