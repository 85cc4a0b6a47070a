"""The installed ``purenet`` command, run in a subprocess as a user would run it."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import PURENET, assert_one_error_line, environment, run, trained_run
from matplotlib.image import imread

import purenet
from purenet.data import DATA_ENV, FILE_STEMS
from purenet.history import COLUMNS, read_history
from purenet.runs import Run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def kept_params(folder: Path, epoch: int):
    """The params of the run's snapshot of ``epoch``, which must be its last one."""
    run = Run.open(folder)
    assert run.keyframe_epochs()[-1] == epoch
    return run.load_keyframe(epoch).params


def read_status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert float(image.std()) > 0  # not a blank canvas


def test_the_command_is_installed_next_to_the_interpreter():
    assert PURENET.is_file()
    assert os.access(PURENET, os.X_OK)


# -- help and version ------------------------------------------------------------------------


def test_top_level_help(tmp_path):
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    assert "Usage: purenet" in result.stdout
    for word in ("train", "replay", "evaluate", "runs", "data", "--version", "--help"):
        assert word in result.stdout


@pytest.mark.parametrize(
    "command, options",
    [
        (["replay"], ["--epoch", "--figure", "--save-params", "--data", "RUN"]),
        (["evaluate"], ["--epoch", "--data", "RUN"]),
        (["runs"], ["[FOLDER]"]),
        (["data"], ["download", "verify", "info"]),
        (["data", "download"], ["--quiet"]),
        (["data", "verify"], ["--data"]),
        (["data", "info"], ["--data"]),
    ],
)
def test_every_command_has_help(tmp_path, command, options):
    result = run([*command, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Usage: purenet {' '.join(command)}" in result.stdout
    for option in options:
        assert option in result.stdout
    body = result.stdout.split("Options:")[0].splitlines()[2:]
    assert any(line.strip() for line in body), "the command says what it does"


def test_train_help_lists_its_options(tmp_path):
    result = run(["train", "--help"], tmp_path)
    assert result.returncode == 0
    assert "Usage: purenet train" in result.stdout
    for option in ("--hidden", "--epochs", "--lr", "--seed", "--split", "--init", "--data"):
        assert option in result.stdout
    for option in ("--out", "--quiet", "--resume", "--keyframe-every", "--no-verify"):
        assert option in result.stdout
    for option in ("reference", "standard", DATA_ENV):
        assert option in result.stdout


def test_version(tmp_path):
    result = run(["--version"], tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"purenet {purenet.__version__}\n"


# -- a short training run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, mnist_dir):
    cwd = tmp_path_factory.mktemp("short")
    result = run(["train", "--epochs", 3, "--quiet", "--out", "run"], cwd, data=mnist_dir)
    return result, cwd / "run"


def test_short_run_exits_0_with_a_summary_on_stdout_and_nothing_on_stderr(short_run):
    result, folder = short_run
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    last = read_history(folder / "metrics.csv")
    match = re.fullmatch(
        r"epoch 3: train loss (\S+), train accuracy (\S+)%, test accuracy (\S+)% "
        r"\(\S+ s\); results in run",
        lines[0],
    )
    assert match, lines[0]
    assert match[1] == f"{last.train_loss[-1]:.4f}"
    assert float(match[2]) == pytest.approx(100 * last.train_acc[-1], abs=0.006)
    assert float(match[3]) == pytest.approx(100 * last.test_acc[-1], abs=0.006)


def test_short_run_writes_one_metrics_row_per_epoch(short_run):
    _, folder = short_run
    text = (folder / "metrics.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 5 and text.endswith("\n")
    history = read_history(folder / "metrics.csv")
    assert history.epoch.tolist() == [0, 1, 2, 3]
    for losses in (history.train_loss, history.test_loss):
        assert np.all(np.isfinite(losses)) and np.all(losses > 0)
    # Untrained, a 10-class softmax is near chance; three small steps lower the loss.
    assert 1.5 < history.train_loss[0] < 4
    assert history.train_loss[-1] < history.train_loss[0]
    for accuracies in (history.train_acc, history.test_acc):
        assert np.all((accuracies >= 0) & (accuracies <= 1))
    assert np.all(np.diff(history.seconds) > 0) and history.seconds[0] >= 0


def test_short_run_writes_a_real_png_figure(short_run):
    assert_png(short_run[1] / "figure.png")


def test_short_run_params_load_and_have_the_reference_shape(short_run):
    params = kept_params(short_run[1], 3)
    assert params.sizes == (784, 10, 10)
    for layer in params.layers:
        assert np.all(np.isfinite(layer.w)) and np.all(np.isfinite(layer.b))


def test_short_run_status_and_config(short_run, mnist_dir):
    _, folder = short_run
    status = read_status(folder)
    assert status["status"] == "finished"
    assert status["epoch"] == 3
    meta = json.loads((folder / "config.json").read_text())
    config = meta["config"]
    assert config["epochs"] == 3 and config["hidden"] == [10] and config["lr"] == 0.1
    assert config["split"] == "reference" and config["layer_sizes"] == [784, 10, 10]
    assert config["optimizer"] == "sgd" and config["batch_size"] is None
    assert meta["data"]["folder"] == str(mnist_dir.resolve())
    assert meta["data"]["sha256"]["train_images"] == (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    )
    assert meta["schema_version"] == 1 and meta["purenet_version"] == purenet.__version__


def test_out_folder_that_already_holds_a_run_is_refused(short_run, mnist_dir):
    _, folder = short_run
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = run(["train", "--epochs", 1, "--quiet", "--out", folder], folder, data=mnist_dir)
    line = assert_one_error_line(result)
    assert f"{folder} already holds a run" in line
    assert "--out" in line
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


# -- usage errors ----------------------------------------------------------------------------


BAD_OPTIONS = [
    ["--lr", "-1"],
    ["--lr", "0"],
    ["--lr", "nan"],
    ["--lr", "inf"],
    ["--hidden", "0"],
    ["--hidden", "abc"],
    ["--hidden", "10,,5"],
    ["--hidden", "10,-5"],
    ["--hidden", ""],
    ["--epochs", "0"],
    ["--seed", "-1"],
    ["--split", "foo"],
    ["--init", "zeros"],
    ["--hidden", "-3"],
    ["--optimizer", "rmsprop"],
    ["--activation", "softplus"],
    ["--preset", "fastest"],
    ["--schedule", "linear"],
    ["--batch-size", "0"],
    ["--batch-size", "abc"],
    ["--batch-size", "100000"],  # above the 63,000 training images
    ["--dropout", "1"],
    ["--dropout", "-0.1"],
    ["--momentum", "1"],
    ["--shift", "9"],
    ["--elastic-alpha", "101"],
    ["--elastic-sigma", "0"],
    ["--validation", "63000"],
    ["--patience", "3"],  # early stopping without a validation set
]


@pytest.mark.parametrize("args", BAD_OPTIONS, ids=" ".join)
def test_bad_option_exits_2_naming_it(tmp_path, mnist_dir, args):
    option = args[0]
    # The bad value comes last, so it overrides the short --epochs (the last one wins).
    result = run(["train", "--epochs", 1, "--out", "run", *args], tmp_path, data=mnist_dir)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"purenet: error: {option}: "), line
    assert result.stdout == ""
    assert not (tmp_path / "run").exists()


def test_unknown_option_exits_2(tmp_path):
    result = run(["train", "--learning-rate", "0.1"], tmp_path)
    assert result.returncode == 2
    assert "--learning-rate" in result.stderr
    assert "Traceback" not in result.stderr


# -- runtime failures ------------------------------------------------------------------------


def test_missing_data_folder_is_one_error_line(tmp_path, mnist_dir):
    result = run(["train", "--data", "/nonexistent", "--out", "run"], tmp_path, data=mnist_dir)
    line = assert_one_error_line(result)
    assert "/nonexistent does not exist" in line
    assert "--data" in line and DATA_ENV in line
    assert not (tmp_path / "run").exists()


def test_no_data_anywhere_and_no_mirror_is_one_error_line(tmp_path):
    result = run(["train", "--out", "run"], tmp_path, data=None)
    line = assert_one_error_line(result)
    assert "could not download" in line and "127.0.0.1:9" in line
    assert "--data" in line and DATA_ENV in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("threads", ["0", "two", "-1"])
def test_a_bad_thread_count_is_one_error_line(tmp_path, mnist_dir, threads):
    env = {"PURENET_THREADS": threads}
    result = run(["train", "--epochs", "1", "--out", "run"], tmp_path, mnist_dir, env)
    line = assert_one_error_line(result)
    assert "PURENET_THREADS" in line and repr(threads) in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_replays_bit_for_bit_on_one_thread(tmp_path, mnist_dir):
    """Trained on every core, replayed on one: the thread count is not part of the bits."""
    folder = trained_run(tmp_path / "run", mnist_dir, "--epochs", "4", "--keyframe-every", "2")
    env = {"PURENET_THREADS": "1"}
    result = run(["replay", folder, "--epoch", "3"], tmp_path, mnist_dir, env)
    assert result.returncode == 0, result.stderr
    assert "matches the recorded row bit for bit" in result.stdout


@pytest.mark.slow
def test_an_elastic_run_records_its_distortions_and_replays_bit_for_bit(tmp_path, mnist_dir):
    """--elastic-alpha/--elastic-sigma reach the run's config, and the distorted batches
    are drawn again exactly on replay (here on one thread)."""
    options = ["--hidden", "16", "--batch-size", "2000", "--epochs", "2", "--rotate", "5"]
    elastic = ["--elastic-alpha", "30", "--elastic-sigma", "5"]
    folder = trained_run(tmp_path / "run", mnist_dir, *options, *elastic)
    config = json.loads((folder / "config.json").read_text())["config"]
    assert (config["elastic_alpha"], config["elastic_sigma"]) == (30, 5)
    env = {"PURENET_THREADS": "1"}
    result = run(["replay", folder, "--epoch", "2"], tmp_path, mnist_dir, env)
    assert result.returncode == 0, result.stderr
    assert "matches the recorded row bit for bit" in result.stdout
    plain = trained_run(tmp_path / "plain", mnist_dir, *options)

    def losses(run: Path) -> list[str]:  # the train loss column, after epoch 0
        return [line.split(",")[1] for line in (run / "metrics.csv").read_text().splitlines()[2:]]

    assert losses(folder) != losses(plain)


def truncated_gzip(source: Path) -> bytes:
    data = source.read_bytes()
    return data[: len(data) // 2]


def truncated_raw(source: Path) -> bytes:
    with gzip.open(source) as fh:
        return fh.read(16 + 1000 * 784 + 5)  # header + 1000 images and a bit


@pytest.mark.parametrize(
    ("make", "suffix", "message"),
    [(truncated_gzip, ".gz", "corrupt gzip stream"), (truncated_raw, "", "file truncated")],
    ids=["gzip-cut-in-half", "raw-truncated"],
)
def test_truncated_train_images_file_is_named_in_the_error(
    tmp_path, mnist_dir, make, suffix, message
):
    data = tmp_path / "data"
    data.mkdir()
    for key, stem in FILE_STEMS.items():
        if key != "train_images":
            (data / f"{stem}.gz").symlink_to(mnist_dir / f"{stem}.gz")
    bad = data / (FILE_STEMS["train_images"] + suffix)
    bad.write_bytes(make(mnist_dir / (FILE_STEMS["train_images"] + ".gz")))
    result = run(["train", "--data", data, "--out", "run"], tmp_path)
    line = assert_one_error_line(result)
    assert f"purenet: error: {bad}: {message}" in line
    assert not (tmp_path / "run").exists()


def test_diverging_run_exits_1_naming_the_epoch_and_keeps_its_records(tmp_path, mnist_dir):
    result = run(
        ["train", "--lr", "1e6", "--epochs", 30, "--quiet", "--out", "run"],
        tmp_path,
        data=mnist_dir,
    )
    line = assert_one_error_line(result)
    match = re.search(r"training diverged: the loss became (\S+) at epoch (\d+)", line)
    assert match, line
    assert "--lr" in line
    folder = tmp_path / "run"
    history = read_history(folder / "metrics.csv")
    epoch = int(match[2])
    assert history.epoch.tolist() == list(range(epoch + 1))
    bad_loss = history.train_loss[-1]
    assert not (bad_loss <= 1e3)
    assert match[1] == str(bad_loss) or (math.isnan(bad_loss) and match[1] == "nan")
    assert np.all(history.train_loss[:-1] <= 1e3)
    status = read_status(folder)
    assert status["status"] == "diverged"
    assert status["epoch"] == epoch - 1
    assert f"params of epoch {epoch - 1}" in line
    params = kept_params(folder, epoch - 1)
    assert all(np.all(np.isfinite(layer.w)) for layer in params.layers)
    assert_png(folder / "figure.png")


# -- interrupted runs ------------------------------------------------------------------------


def complete_data_rows(metrics: Path) -> int:
    if not metrics.exists():
        return 0
    text = metrics.read_text()
    return max(0, text.count("\n") - 1)


def _default_sigint() -> None:
    # A terminal hands its foreground job the default SIGINT disposition; a test runner in
    # the background may have SIGINT ignored, which the child would inherit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_exits_130_and_keeps_what_it_has(tmp_path, mnist_dir, signum):
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [str(PURENET), "train", "--epochs", "2000", "--out", str(folder)],
        cwd=tmp_path,
        env=environment(mnist_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while complete_data_rows(folder / "metrics.csv") < 3:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no 3 epochs within 60 s"
            time.sleep(0.02)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    match = re.search(r"purenet: interrupted after epoch (\d+);", stderr)
    assert match, stderr

    text = (folder / "metrics.csv").read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert all(len(line.split(",")) == len(COLUMNS) for line in lines)
    history = read_history(folder / "metrics.csv")
    rows = len(history)
    assert rows >= 3 and rows < 2001
    assert history.epoch.tolist() == list(range(rows))

    status = read_status(folder)
    assert status["status"] == "interrupted"
    # The params kept are those of the last finished snapshot: the last row, or the one
    # before it if the signal landed between writing a row and keeping its snapshot.
    assert status["epoch"] in (rows - 1, rows - 2)
    assert int(match[1]) == status["epoch"]
    assert kept_params(folder, status["epoch"]).sizes == (784, 10, 10)
    assert_png(folder / "figure.png")


@pytest.mark.slow
def test_live_rewrites_a_png_in_the_run_folder_while_training(tmp_path, mnist_dir):
    result = run(
        ["train", "--epochs", 4, "--live", "--live-every", 1, "--quiet", "--out", "run"],
        tmp_path,
        data=mnist_dir,
    )
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "run" / "live.png")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
