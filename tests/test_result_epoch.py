"""A run's result: the best validation epoch under early stopping, and reading an epoch
from its snapshot on disk instead of refolding the epochs before it."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from cli_helpers import run, trained_run
from test_train import synthetic
from typer.testing import CliRunner

from purenet.config import Config
from purenet.replay import differing_columns, replay, snapshot_at
from purenet.runner import record_training
from purenet.runs import Run
from purenet_cli.main import app


def _recorded(folder: Path, config: Config, data, on_snapshot=None, keyframe_every: int = 5):
    run_ = Run.create(folder, config, data.sha256, keyframe_every=keyframe_every)
    return run_, record_training(run_, data, on_snapshot=on_snapshot)


def _best(run_: Run) -> int:
    return max(run_.rows(), key=lambda r: (r.valid_acc, -r.epoch)).epoch


EARLY = Config(hidden=(4,), epochs=60, batch_size=10, lr=0.5, validation=20, patience=3, seed=1)


def test_early_stopping_keeps_the_best_epoch_as_the_result_on_disk(tmp_path):
    data = synthetic(m=60)
    stopped, outcome = _recorded(tmp_path / "r", EARLY, data)
    best = _best(stopped)
    assert outcome.stopped_early and outcome.result_epoch == best == outcome.best_epoch
    assert stopped.status()["result_epoch"] == best == stopped.result_epoch()
    assert best % 5 != 0  # not a regular keyframe: kept because it is the result
    assert best in stopped.keyframe_epochs()
    # the kept snapshot is exactly the epoch that training had (replay folds to it)
    replayed = replay(Run.open(stopped.folder), best, data)
    assert stopped.load_keyframe(best) == replayed.state


def test_a_patience_run_that_uses_all_its_epochs_also_ends_with_its_best(tmp_path):
    config = Config(hidden=(4,), epochs=9, batch_size=10, lr=0.5, validation=20, patience=50)
    whole, outcome = _recorded(tmp_path / "r", config, synthetic(m=60))
    assert not outcome.stopped_early and outcome.status == "finished"
    assert whole.result_epoch() == _best(whole) == outcome.result_epoch
    assert _best(whole) in whole.keyframe_epochs()


def test_without_patience_the_last_epoch_is_the_result(tmp_path):
    config = Config(hidden=(4,), epochs=6, batch_size=10, lr=0.5, validation=20)
    plain, outcome = _recorded(tmp_path / "r", config, synthetic(m=60))
    assert outcome.result_epoch is None and plain.result_epoch() is None
    assert "result_epoch" not in plain.status()


def test_an_interrupted_patience_run_has_no_result_yet_but_keeps_its_best(tmp_path):
    def stop_at_12(snapshot):
        if snapshot.epoch == 12:
            raise KeyboardInterrupt

    config = Config(hidden=(4,), epochs=40, batch_size=10, lr=0.5, validation=20, patience=30)
    cut, outcome = _recorded(tmp_path / "r", config, synthetic(m=60), stop_at_12)
    assert outcome.status == "interrupted" and cut.result_epoch() is None
    assert _best(cut) in cut.keyframe_epochs()


def _no_training(*args, **kwargs):
    raise AssertionError("the fold was run")


# the modules (the package's attribute ``purenet.replay`` is the function of that name)
REPLAY = importlib.import_module("purenet.replay")
KEYFRAMES = importlib.import_module("purenet.keyframes")


def test_snapshot_at_reads_a_stochastic_runs_keyframe_without_training(tmp_path, monkeypatch):
    data = synthetic()
    config = Config(hidden=(6,), epochs=7, batch_size=16, dropout=0.2, shift=1, validation=8)
    recorded, _ = _recorded(tmp_path / "r", config, data, keyframe_every=3)
    folded = {e: replay(recorded, e, data) for e in (6, 7)}
    monkeypatch.setattr(REPLAY, "train", _no_training)
    for epoch in (6, 7):  # keyframes
        snapshot, was_folded = snapshot_at(recorded, epoch, data)
        assert not was_folded and snapshot == folded[epoch]
        assert differing_columns(snapshot, recorded.rows()[epoch]) == []
    with pytest.raises(AssertionError, match="the fold was run"):
        snapshot_at(recorded, 5, data)  # no keyframe: it must fold


# -- the installed command on the real MNIST ---------------------------------------------------

SEVEN = str(Path(__file__).resolve().parents[1] / "assets" / "digits" / "seven.jpg")
MINI_BATCH = ["--hidden", "16", "--batch-size", "2000", "--optimizer", "momentum", "--epochs", 3]


@pytest.mark.mnist
@pytest.mark.slow
def test_evaluate_plot_and_predict_read_the_last_snapshot_without_folding(
    mnist_dir, tmp_path, monkeypatch
):
    folder = trained_run(tmp_path / "mini", mnist_dir, *MINI_BATCH)
    monkeypatch.setattr(REPLAY, "train", _no_training)
    monkeypatch.setattr(KEYFRAMES, "train", _no_training)
    runner = CliRunner()
    evaluated = runner.invoke(app, ["evaluate", str(folder), "--data", str(mnist_dir)])
    assert evaluated.exit_code == 0, evaluated.output
    recorded = Run.open(folder).rows()[3]
    assert f"epoch 3: test loss {recorded.test_loss:.4f}" in evaluated.stdout
    assert "warning" not in evaluated.output  # the test metrics match the record
    plotted = runner.invoke(
        app, ["plot", str(folder), "--data", str(mnist_dir), "--out", str(tmp_path / "f")]
    )
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "f" / "weights.png").exists()
    predicted = runner.invoke(app, ["predict", str(folder), SEVEN, "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["epoch"] == 3


STOPS_EARLY = [
    "--hidden", "8", "--batch-size", "2000", "--lr", "0.5", "--validation", "1000",
    "--patience", "1", "--epochs", "20", "--keyframe-every", "5",
]  # fmt: skip


@pytest.mark.mnist
@pytest.mark.slow
def test_cli_an_early_stopped_run_is_its_best_epoch(mnist_dir, tmp_path):
    folder = tmp_path / "early"
    trained = run(["train", *STOPS_EARLY, "--quiet", "--out", folder], tmp_path, data=mnist_dir)
    assert trained.returncode == 0, trained.stderr
    status = json.loads((folder / "status.json").read_text())
    best, last = status["best_epoch"], status["epoch"]
    assert status["stopped_early"] and status["result_epoch"] == best < last
    assert best % 5 != 0 and (folder / "snapshots" / f"epoch-{best:06d}.npz").exists()
    assert trained.stdout.startswith(f"epoch {best} (the best validation epoch; ")

    evaluated = run(["evaluate", folder], tmp_path, data=mnist_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"epoch {best}: test loss" in evaluated.stdout
    assert f"epoch {best}, the best validation epoch, is the result" in evaluated.stderr
    assert f"--epoch {last}" in evaluated.stderr

    predicted = run(["predict", folder, "--json", SEVEN], tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["epoch"] == best

    at_last = run(["evaluate", folder, "--epoch", last], tmp_path, data=mnist_dir)
    assert f"epoch {last}: test loss" in at_last.stdout and at_last.stderr == ""


def test_runs_lists_an_early_stopped_run_by_its_result_epoch(tmp_path):
    from purenet_cli.runs import LISTING_COLUMNS, listing_row

    stopped, outcome = _recorded(tmp_path / "r", EARLY, synthetic(m=60))
    best = outcome.result_epoch
    rows = stopped.rows()
    assert best is not None and best != rows[-1].epoch
    cells = dict(zip(LISTING_COLUMNS, listing_row(Run.open(stopped.folder)), strict=True))
    assert cells["epochs"] == f"{best}/{EARLY.epochs}"
    assert cells["test acc"] == f"{rows[best].test_acc:.2%}"
    assert f"result: epoch {best}" in cells["notes"]
