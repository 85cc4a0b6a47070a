"""Continuing a run: extending it to more epochs exactly, and refusing options that
contradict it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run, trained_run
from test_train import synthetic

from purenet.config import Config
from purenet.runner import prepare_resume, record_training
from purenet.runs import Run, RunError

# -- the library, on a small synthetic problem -------------------------------------------------


def _recorded(folder: Path, config: Config, data, keyframe_every: int = 3, on_snapshot=None):
    run_ = Run.create(folder, config, data.sha256, keyframe_every=keyframe_every)
    return run_, record_training(run_, data, on_snapshot=on_snapshot)


def _same_params(a, b) -> bool:
    return all(
        x.w.tobytes() == y.w.tobytes() and x.b.tobytes() == y.b.tobytes()
        for x, y in zip(a.layers, b.layers, strict=True)
    )


def _rows(run_: Run) -> list[tuple]:
    """The rows without their seconds."""
    return [(r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc) for r in run_.rows()]


STOCHASTIC = dict(hidden=(6,), batch_size=16, dropout=0.2, shift=1, lr=0.2, optimizer="momentum")


@pytest.mark.parametrize(
    "settings",
    [dict(hidden=(8,), lr=0.3), dict(STOCHASTIC, schedule="step", step_every=2)],
    ids=["full-batch", "mini-batch"],
)
def test_an_interrupted_run_extended_on_resume_equals_a_longer_run(tmp_path, settings):
    data = synthetic()
    whole, _ = _recorded(tmp_path / "whole", Config(epochs=11, **settings), data)

    def stop_at_5(snapshot):
        if snapshot.epoch == 5:
            raise KeyboardInterrupt

    cut, outcome = _recorded(tmp_path / "cut", Config(epochs=7, **settings), data, 3, stop_at_5)
    assert outcome.status == "interrupted"
    start, seconds = prepare_resume(Run.open(cut.folder), 11)
    again = Run.open(cut.folder)
    assert again.config.epochs == 11 and again.meta["extended_from"] == [7]
    assert record_training(again, data, start, seconds).status == "finished"
    assert _rows(again) == _rows(whole)
    assert _same_params(again.load_keyframe(11).params, whole.load_keyframe(11).params)


def test_an_extension_killed_before_its_first_epoch_resumes_to_the_new_length(tmp_path):
    data = synthetic()
    short, _ = _recorded(tmp_path / "short", Config(hidden=(5,), epochs=4), data)
    prepare_resume(short, 9)  # then killed: nothing trained
    reopened = Run.open(short.folder)
    assert reopened.config.epochs == 9 and reopened.status()["status"] == "interrupted"
    start, seconds = prepare_resume(reopened)
    assert start.epoch == 4
    record_training(reopened, data, start, seconds)
    whole, _ = _recorded(tmp_path / "whole", Config(hidden=(5,), epochs=9), data)
    assert _rows(reopened) == _rows(whole)
    assert _same_params(reopened.load_keyframe(9).params, whole.load_keyframe(9).params)


@pytest.mark.parametrize(
    "epochs, message",
    [(None, "already finished all 4 epochs"), (4, "more than 4"), (3, "more than 4")],
)
def test_a_finished_run_is_only_extended_to_more_epochs(tmp_path, epochs, message):
    short, _ = _recorded(tmp_path / "r", Config(hidden=(4,), epochs=4), synthetic())
    with pytest.raises(RunError, match=message):
        prepare_resume(short, epochs)
    assert Run.open(short.folder).config.epochs == 4  # nothing changed


def test_an_interrupted_run_cannot_be_shortened(tmp_path):
    def stop_at_3(snapshot):
        if snapshot.epoch == 3:
            raise KeyboardInterrupt

    cut, _ = _recorded(tmp_path / "r", Config(hidden=(4,), epochs=8), synthetic(), 3, stop_at_3)
    with pytest.raises(RunError, match="only be made longer"):
        prepare_resume(cut, 5)


def test_a_cosine_run_is_not_extended_and_says_why(tmp_path):
    short, _ = _recorded(
        tmp_path / "r", Config(hidden=(4,), epochs=4, schedule="cosine"), synthetic()
    )
    with pytest.raises(RunError, match="learning rate at every epoch depends on the total"):
        prepare_resume(short, 8)
    assert Run.open(short.folder).config.epochs == 4
    assert Run.open(short.folder).status()["status"] == "finished"


def test_a_run_stopped_early_is_not_extended(tmp_path):
    cfg = Config(hidden=(4,), epochs=60, batch_size=10, lr=0.5, validation=20, patience=3)
    stopped, outcome = _recorded(tmp_path / "r", cfg, synthetic(m=60))
    assert outcome.stopped_early
    with pytest.raises(RunError, match=r"stopped early .* would have stopped there too"):
        prepare_resume(stopped, 100)


# -- the installed command ---------------------------------------------------------------------


@pytest.fixture
def synthetic_run(tmp_path) -> Path:
    """A finished 4-epoch full-batch run (synthetic data: commands that refuse before
    loading any data can be run on it)."""
    run_, _ = _recorded(tmp_path / "run", Config(hidden=(10,), epochs=4), synthetic())
    return run_.folder


def _refused(args, cwd: Path, code: int) -> str:
    result = run(args, cwd)
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("purenet: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_cli_refuses_options_that_differ_from_the_run_naming_each(synthetic_run, tmp_path):
    line = _refused(
        [
            "train",
            "--resume",
            synthetic_run,
            "--epochs",
            8,
            "--lr",
            0.5,
            "--hidden",
            "10",  # equal to the run's: not named
            "--nesterov",
            "--batch-size",
            "32",
            "--keyframe-every",
            2,
            "--out",
            tmp_path / "elsewhere",
            "--no-verify",
        ],
        tmp_path,
        2,
    )
    for named in (
        "--lr 0.5 (the run's: 0.1)",
        "--nesterov (the run's: off)",
        "--batch-size 32 (the run's: full)",
        "--keyframe-every 2 (the run's: 3)",
        "--out",
        "--no-verify",
    ):
        assert named in line
    assert "--hidden" not in line and "--epochs" not in line
    assert Run.open(synthetic_run).config.epochs == 4  # refused before anything changed


def test_cli_refuses_a_preset_that_is_not_the_runs(synthetic_run, tmp_path):
    line = _refused(["train", "--resume", synthetic_run, "--preset", "fast"], tmp_path, 2)
    assert "--preset fast" in line and "batch-size" in line and "schedule" in line


@pytest.mark.parametrize(
    "epochs, message",
    [(None, "already finished all 4 epochs"), (4, "more than 4"), (2, "more than 4")],
)
def test_cli_says_a_finished_run_needs_more_epochs(synthetic_run, tmp_path, epochs, message):
    extra = [] if epochs is None else ["--epochs", epochs]
    assert message in _refused(["train", "--resume", synthetic_run, *extra], tmp_path, 1)


def test_cli_refuses_to_extend_a_cosine_run_in_one_line(tmp_path):
    run_, _ = _recorded(
        tmp_path / "r", Config(hidden=(4,), epochs=4, schedule="cosine"), synthetic()
    )
    line = _refused(["train", "--resume", run_.folder, "--epochs", 9], tmp_path, 1)
    assert "cosine" in line and "depends on the total (4)" in line


def _rows_without_seconds(folder: Path) -> list[str]:
    return [line.rsplit(",", 1)[0] for line in (folder / "metrics.csv").read_text().splitlines()]


def _final_params(folder: Path, epoch: int):
    return Run.open(folder).load_keyframe(epoch).params


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        [],  # the reference design, full batch
        [
            "--hidden", "16", "--batch-size", "500", "--optimizer", "momentum", "--nesterov",
            "--schedule", "step", "--step-every", "3", "--dropout", "0.2", "--shift", "1",
            "--validation", "2000",
        ],
    ],
    ids=["full-batch", "mini-batch"],
)  # fmt: skip
def test_cli_extends_a_finished_run_exactly_as_a_longer_run(mnist_dir, tmp_path, options):
    short = trained_run(tmp_path / "short", mnist_dir, *options, "--epochs", 4)
    # options equal to the run's own are allowed, and so is --quiet
    extended = run(
        ["train", "--resume", short, "--epochs", 7, "--quiet", *options], tmp_path, data=mnist_dir
    )
    assert extended.returncode == 0, extended.stderr
    assert "epoch 7:" in extended.stdout
    whole = trained_run(tmp_path / "whole", mnist_dir, *options, "--epochs", 7)
    assert _rows_without_seconds(short) == _rows_without_seconds(whole)
    assert len(_rows_without_seconds(short)) == 9  # the header and epochs 0..7
    assert _same_params(_final_params(short, 7), _final_params(whole, 7))
    config = json.loads((short / "config.json").read_text())
    assert config["config"]["epochs"] == 7 and config["extended_from"] == [4]
    status = json.loads((short / "status.json").read_text())
    assert status["status"] == "finished" and status["epoch"] == 7
