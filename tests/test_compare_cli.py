"""``purenet compare`` through the installed command: the table, CSV and JSON hold the
runs' recorded numbers, the figure is written where asked, bad input is one line."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from cli_helpers import assert_one_error_line, run, trained_run
from test_compare import recorded

from purenet.config import Config
from purenet.data import Split
from purenet.runlock import writing
from purenet.runs import RUNNING, Run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A folder of small runs: two finished (lr 0.05 and 0.5), one interrupted, one
    diverged."""
    folder = tmp_path_factory.mktemp("compare")
    recorded(folder / "lr-0.05", Config(hidden=(8,), epochs=10, lr=0.05))
    recorded(folder / "lr-0.5", Config(hidden=(8,), epochs=10, lr=0.5))
    recorded(folder / "cut", Config(hidden=(8,), epochs=10, lr=0.1), stop_at=6)
    recorded(folder / "wild", Config(hidden=(8,), epochs=10, lr=1e6))
    return folder


def cells(lines: list[str], name: str) -> dict[str, str]:
    header = re.split(r"\s{2,}", lines[0].strip())
    line = next(line for line in lines[1:] if line.split()[0] == name)
    return dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False))


def test_the_table_shows_each_run_by_what_sets_it_apart(parent, tmp_path):
    result = run(["compare", parent / "lr-0.05", parent / "lr-0.5", "--no-figure"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    for name, lr in (("lr-0.05", 0.05), ("lr-0.5", 0.5)):
        rows = Run.open(parent / name).rows()
        best = max(rows, key=lambda r: r.test_acc)
        row = cells(lines, name)
        assert row["settings"] == f"lr={lr}" and row["status"] == "finished"
        assert row["epochs"] == "10/10" and row["split"] == "reference"
        assert row["final test acc"] == f"{rows[-1].test_acc:.2%}"
        assert row["best test acc"] == f"{best.test_acc:.2%}"
        assert row["best epoch"] == str(best.epoch)
        assert row["time"] == f"{rows[-1].seconds:.1f} s"
    assert not (tmp_path / "compare.png").exists()


def test_a_folder_of_runs_shows_them_all_marked(parent, tmp_path):
    result = run(["compare", parent, "--no-figure"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines[1:]) == ["cut", "lr-0.05", "lr-0.5", "wild"]
    cut, wild = cells(lines, "cut"), cells(lines, "wild")
    assert cut["status"] == "interrupted" and cut["epochs"] == "5/10"  # stopped at epoch 6
    wild_rows = Run.open(parent / "wild").rows()
    assert wild["status"] == "diverged"
    assert wild["epochs"] == f"{wild_rows[-1].epoch - 1}/10"
    assert f"diverged at epoch {wild_rows[-1].epoch}" in wild["notes"]


def test_csv_holds_the_recorded_numbers_exactly(parent, tmp_path):
    result = run(["compare", parent, "--csv", "--no-figure"], tmp_path)
    assert result.returncode == 0, result.stderr
    records = {r["run"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert set(records) == {"cut", "lr-0.05", "lr-0.5", "wild"}
    for name, record in records.items():
        rows = Run.open(parent / name).rows()
        done = int(record["epochs_done"])
        sound = rows[: done + 1]
        assert float(record["final_test_acc"]) == rows[done].test_acc
        assert float(record["final_test_loss"]) == rows[done].test_loss
        assert float(record["best_test_acc"]) == max(r.test_acc for r in sound)
        assert float(record["seconds"]) == rows[-1].seconds
        assert record["epochs_planned"] == "10"
    assert records["lr-0.5"]["lr"] == "0.5" and records["cut"]["lr"] == "0.1"
    assert records["wild"]["status"] == "diverged"


def test_json_holds_the_recorded_numbers_and_the_common_settings(parent, tmp_path):
    result = run(["compare", parent / "lr-0.05", parent / "lr-0.5", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["warnings"] == []
    assert value["common"]["hidden"] == [8] and value["common"]["batch-size"] == "full"
    assert [r["settings"] for r in value["runs"]] == [{"lr": 0.05}, {"lr": 0.5}]
    for record in value["runs"]:
        rows = Run.open(parent / record["name"]).rows()
        assert record["final_test_acc"] == rows[-1].test_acc
        assert record["seconds"] == rows[-1].seconds
        assert record["status"] == "finished" and record["epochs_done"] == 10
    # the data stays alone on stdout; the figure's path is said on stderr
    assert result.stderr == "figure written to compare.png\n"
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG_SIGNATURE


def test_the_figure_goes_where_out_says(parent, tmp_path):
    for name, magic in (("c.png", PNG_SIGNATURE), ("c.svg", b"<?xml"), ("c.pdf", b"%PDF")):
        result = run(["compare", parent, "--out", tmp_path / name], tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == f"figure written to {tmp_path / name}"
        assert (tmp_path / name).read_bytes().startswith(magic)


def test_runs_on_different_splits_are_compared_with_a_warning(tmp_path):
    recorded(tmp_path / "a", Config(hidden=(4,), epochs=2))
    recorded(tmp_path / "b", Config(hidden=(4,), epochs=2, split=Split.STANDARD))
    result = run(["compare", tmp_path / "a", tmp_path / "b", "--no-figure"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("purenet: warning: runs on different splits")
    lines = result.stdout.splitlines()
    assert cells(lines, "a")["split"] == "reference" and cells(lines, "b")["split"] == "standard"


def test_a_run_in_training_is_shown_as_running(tmp_path):
    live = recorded(tmp_path / "live", Config(hidden=(4,), epochs=8), stop_at=3)
    live.mark(RUNNING, 2)
    with writing(live.folder):  # as its training process would
        result = run(["compare", live.folder, "--no-figure"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert cells(result.stdout.splitlines(), "live")["status"] == RUNNING


def test_unreadable_runs_in_a_folder_are_listed_not_fatal(parent, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    recorded(tmp_path / "fine", Config(hidden=(4,), epochs=2))
    result = run(["compare", tmp_path, "--no-figure"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert cells(result.stdout.splitlines(), "broken")["status"] == "unreadable"
    assert "cannot read 1 run(s): broken" in result.stderr
    (tmp_path / "fine" / "config.json").write_text("{}")  # now none can be read
    result = run(["compare", tmp_path], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no run could be read: no figure written" in result.stderr
    assert not (tmp_path / "compare.png").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["missing"], "missing does not exist"),
        (["empty"], "empty is not a run folder and holds no runs"),
        (["runs", "--out", "nowhere/c.png"], "folder nowhere does not exist"),
        (["runs", "--out", "runs/a/figure.png"], "would overwrite a file of run"),
        (["runs", "--out", "runs/a/metrics.csv.png"], None),  # not a run's file: fine
        (["runs/a/broken"], "config.json"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, args, words):
    (tmp_path / "empty").mkdir()
    recorded(tmp_path / "runs" / "a", Config(hidden=(4,), epochs=2))
    (tmp_path / "runs" / "a" / "broken").mkdir()
    (tmp_path / "runs" / "a" / "broken" / "config.json").write_text("[]")
    result = run(["compare", *args], tmp_path)
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    line = assert_one_error_line(result)
    assert words in line
    assert not (tmp_path / "compare.png").exists()


@pytest.mark.parametrize(
    "args, option",
    [
        ([], "RUN"),
        (["runs", "--csv", "--json"], "--csv"),
        (["runs", "--out", "c.jpg"], "--out"),
        (["runs", "--out", "c.png", "--no-figure"], "--out"),
    ],
)
def test_bad_options_exit_2_naming_them(tmp_path, args, option):
    recorded(tmp_path / "runs" / "a", Config(hidden=(4,), epochs=2))
    result = run(["compare", *args], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("purenet: error: ") and option in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_compare_help_names_every_option(tmp_path):
    result = run(["compare", "--help"], tmp_path)
    assert result.returncode == 0
    for word in ("RUN", "--out", "--no-figure", "--csv", "--json", "compare.png"):
        assert word in result.stdout


@pytest.mark.slow
def test_runs_trained_by_the_command_compare_by_their_recorded_metrics(mnist_dir, tmp_path):
    for lr in ("0.05", "0.5"):
        trained_run(tmp_path / f"lr-{lr}", mnist_dir, "--epochs", 3, "--lr", lr)
    result = run(["compare", tmp_path, "--csv", "--out", tmp_path / "c.png"], tmp_path)
    assert result.returncode == 0, result.stderr
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["run"], r["label"]) for r in records] == [
        ("lr-0.05", "lr=0.05"),
        ("lr-0.5", "lr=0.5"),
    ]
    for record in records:
        rows = Run.open(tmp_path / record["run"]).rows()
        assert float(record["final_test_acc"]) == rows[3].test_acc
        assert float(record["best_test_acc"]) == max(r.test_acc for r in rows)
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_SIGNATURE
