"""Run folders: keyframes, exact replay, resume after a crash, and refusing bad files."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import attrs
import numpy as np
import pytest
from cli_helpers import PURENET, assert_one_error_line, environment, run, trained_run
from test_train import synthetic

import purenet.atomic
from purenet.arrays import same_array
from purenet.config import Config
from purenet.errors import WriteError
from purenet.flat import flatten
from purenet.replay import describe_mismatch, differing_columns, likely_cause, replay
from purenet.runner import prepare_resume, record_training
from purenet.runs import SNAPSHOT_DIR, Run, RunError, keyframe_name, list_runs

# -- the library, on a small synthetic problem -------------------------------------------------


def recorded_run(folder: Path, config: Config, keyframe_every: int, data):
    """Train ``config`` into a new run folder; returns (run, outcome, snapshots yielded)."""
    seen = []
    run_ = Run.create(folder, config, data.sha256, keyframe_every=keyframe_every)
    outcome = record_training(run_, data, on_snapshot=seen.append)
    return run_, outcome, seen


def test_keyframes_are_epoch_zero_every_k_and_the_last(tmp_path):
    run_, outcome, _ = recorded_run(tmp_path / "r", Config(hidden=(6,), epochs=12), 5, synthetic())
    assert outcome.status == "finished"
    assert run_.keyframe_epochs() == [0, 5, 10, 12]
    assert run_.status()["status"] == "finished" and run_.status()["epoch"] == 12


def test_every_epoch_replays_to_the_snapshot_training_yielded(tmp_path):
    data = synthetic()
    run_, _, yielded = recorded_run(tmp_path / "r", Config(hidden=(8,), epochs=11, lr=0.3), 4, data)
    rows = Run.open(run_.folder).rows()
    assert [s.epoch for s in yielded] == list(range(12)) == [r.epoch for r in rows]
    for snapshot in yielded:
        again = replay(Run.open(run_.folder), snapshot.epoch, data)
        assert again == snapshot  # params compared dtype, shape and bytes
        for old, new in zip(snapshot.params.layers, again.params.layers, strict=True):
            assert old.w.tobytes() == new.w.tobytes() and old.b.tobytes() == new.b.tobytes()
        assert differing_columns(again, rows[snapshot.epoch]) == []


def test_a_mismatch_names_the_columns_and_the_likely_cause(tmp_path):
    data = synthetic()
    run_, _, _ = recorded_run(tmp_path / "r", Config(hidden=(6,), epochs=3), 2, data)
    meta = Run.open(run_.folder).meta
    assert meta["computed_with"]["blas_threads"].startswith("1")
    again = replay(run_, 3, data)
    row = Run.open(run_.folder).rows()[3]
    assert describe_mismatch(run_, again, row) is None
    tampered = attrs.evolve(row, test_acc=row.test_acc + 1e-3)
    message = describe_mismatch(run_, again, tampered)
    assert "test_acc" in message and "train_loss" not in message
    assert repr(tampered.test_acc) in message and repr(row.test_acc) in message
    assert "same purenet, BLAS and kernels" in message
    meta["computed_with"]["blas"] = "openblas 0.3.31 (SkylakeX)"
    (run_.folder / "config.json").write_text(json.dumps(meta))
    message = describe_mismatch(Run.open(run_.folder), again, tampered)
    assert "SkylakeX" in message and "computed differently" in message
    meta["purenet_version"] = "0.0.1"
    (run_.folder / "config.json").write_text(json.dumps(meta))
    assert "recorded by purenet 0.0.1" in describe_mismatch(Run.open(run_.folder), again, tampered)


def test_a_dropout_run_recorded_before_0_4_is_said_to_have_drawn_other_masks(tmp_path):
    """0.4.0 draws dropout masks per batch, not per block: a dropout run recorded by an
    earlier version replays with other masks, which is no rounding difference."""
    data = synthetic()
    config = Config(hidden=(6,), epochs=2, batch_size=16, dropout=0.3)
    run_, _, _ = recorded_run(tmp_path / "r", config, 1, data)
    again = replay(run_, 2, data)
    row = Run.open(run_.folder).rows()[2]
    tampered = attrs.evolve(row, train_loss=row.train_loss * 1.01)
    meta = Run.open(run_.folder).meta
    for version, other_masks in [("0.3.1", True), ("0.0.1", True), ("0.4.0", False)]:
        meta["purenet_version"] = version
        (run_.folder / "config.json").write_text(json.dumps(meta))
        message = describe_mismatch(Run.open(run_.folder), again, tampered)
        assert ("drew other masks" in message) == other_masks, version
        if other_masks:
            assert f"recorded by purenet {version}" in message and "per batch" in message
            assert "only with the version that recorded it" in message
    no_dropout, _, _ = recorded_run(tmp_path / "plain", attrs.evolve(config, dropout=0.0), 1, data)
    meta = Run.open(no_dropout.folder).meta
    meta["purenet_version"] = "0.3.1"
    (no_dropout.folder / "config.json").write_text(json.dumps(meta))
    message = likely_cause(Run.open(no_dropout.folder))
    assert "recorded by purenet 0.3.1" in message and "masks" not in message


def test_keyframes_written_before_0_4_load_with_the_schedule_at_their_epoch(tmp_path):
    """purenet 0.3 kept no schedule position in a keyframe; at an epoch boundary it is the
    epoch's step 0, and such keyframes load, replay and resume exactly."""
    data = synthetic()
    config = Config(
        hidden=(6,), epochs=5, batch_size=16, optimizer="adam", lr=0.01, schedule="cosine"
    )
    run_, _, yielded = recorded_run(tmp_path / "r", config, 2, data)
    with np.load(run_.keyframe_path(2)) as npz:
        assert {"epoch", "opt.count", "opt.schedule.epoch", "opt.schedule.step"} <= set(npz)
    for epoch in run_.keyframe_epochs():
        path = run_.keyframe_path(epoch)
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if not k.startswith("opt.schedule.")}
        np.savez(path, **arrays)  # as purenet 0.3 wrote it
        assert run_.load_keyframe(epoch) == yielded[epoch].state
    assert replay(run_, 3, data) == yielded[3]


def test_replay_refuses_epochs_outside_the_run(tmp_path):
    data = synthetic()
    run_, _, _ = recorded_run(tmp_path / "r", Config(hidden=(4,), epochs=3), 2, data)
    for epoch in (4, 100):
        with pytest.raises(RunError, match=r"outside run r: its epochs are 0\.\.3"):
            replay(run_, epoch, data)


def test_replay_refuses_other_data(tmp_path):
    data = synthetic()
    run_ = Run.create(tmp_path / "r", Config(hidden=(4,), epochs=2), {"train_images": "ab" * 32})
    record_training(run_, data)
    with pytest.raises(RunError, match="differ"):
        replay(run_, 1, data)


def test_resuming_an_interrupted_session_gives_identical_params_and_rows(tmp_path):
    data = synthetic()
    config = Config(hidden=(8,), epochs=14, lr=0.3, seed=5)
    whole, _, _ = recorded_run(tmp_path / "whole", config, 4, data)

    def stop_at_epoch_9(snapshot):
        if snapshot.epoch == 9:
            raise KeyboardInterrupt

    cut = Run.create(tmp_path / "cut", config, data.sha256, keyframe_every=4)
    outcome = record_training(cut, data, on_snapshot=stop_at_epoch_9)
    assert outcome.status == "interrupted" and outcome.last.epoch == 8
    assert cut.keyframe_epochs() == [0, 4, 8]  # 8 kept at interruption
    assert cut.status()["status"] == "interrupted"

    start, seconds = prepare_resume(Run.open(cut.folder))
    assert start.epoch == 8 and seconds > 0
    assert record_training(cut, data, start, seconds).status == "finished"

    assert cut.load_keyframe(14).params == whole.load_keyframe(14).params
    strip = [(r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc) for r in cut.rows()]
    assert strip == [
        (r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc) for r in whole.rows()
    ]


def test_resume_drops_rows_after_the_last_keyframe_and_a_cut_last_line(tmp_path):
    data = synthetic()
    config = Config(hidden=(4,), epochs=9)
    run_, _, _ = recorded_run(tmp_path / "r", config, 3, data)
    # Pretend the process was killed after epoch 7's row, mid-way through epoch 8's row.
    for epoch in (9,):
        (run_.folder / SNAPSHOT_DIR / keyframe_name(epoch)).unlink()
    lines = (run_.folder / "metrics.csv").read_text().splitlines(keepends=True)
    (run_.folder / "metrics.csv").write_text("".join(lines[:9]) + lines[9][:7])
    run_.mark("interrupted", 7)
    with pytest.raises(RunError, match="cut mid-row"):
        run_.rows()
    start, _ = prepare_resume(Run.open(run_.folder))
    assert start.epoch == 6
    assert [r.epoch for r in run_.rows()] == list(range(7))


@pytest.mark.parametrize(
    "status, message", [("finished", "already finished"), ("diverged", "diverged")]
)
def test_resume_refuses_finished_and_diverged_runs(tmp_path, status, message):
    run_, _, _ = recorded_run(tmp_path / "r", Config(hidden=(4,), epochs=2), 1, synthetic())
    run_.mark(status, 2)
    with pytest.raises(RunError, match=message):
        prepare_resume(run_)


def test_a_failing_replace_keeps_the_previous_snapshot_and_leaves_no_temporary_file(
    tmp_path, monkeypatch
):
    data = synthetic()
    run_, _, yielded = recorded_run(tmp_path / "r", Config(hidden=(4,), epochs=3), 1, data)
    path = run_.keyframe_path(2)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(purenet.atomic.os, "replace", broken_replace)
    with pytest.raises(WriteError, match="the disk is full"):
        run_.save_keyframe(attrs.evolve(yielded[3].state, epoch=2))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [keyframe_name(e) for e in range(4)]
    assert not [p for p in run_.folder.rglob("*") if p.name.endswith(".tmp")]


def test_list_runs_reports_unreadable_folders(tmp_path):
    data = synthetic()
    recorded_run(tmp_path / "good", Config(hidden=(4,), epochs=2), 1, data)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (tmp_path / "not-a-run").mkdir()
    found = list_runs(tmp_path)
    assert [getattr(f, "name", None) for f in found] == [None, "good"]
    assert isinstance(found[0], tuple) and "config.json" in str(found[0][1])


# -- the installed command on the real MNIST ---------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, mnist_dir) -> Path:
    """A finished 6-epoch run with keyframes every 2 epochs, written by the CLI."""
    return trained_run(
        tmp_path_factory.mktemp("cli") / "six", mnist_dir, "--epochs", 6, "--keyframe-every", 2
    )


def broken_copy(cli_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(cli_run, folder)
    return folder


@pytest.mark.slow
def test_cli_replay_matches_the_record_and_the_params_training_saved(cli_run, mnist_dir, tmp_path):
    folder = broken_copy(cli_run, tmp_path)  # without the keyframe of epoch 6, replay
    (folder / SNAPSHOT_DIR / keyframe_name(6)).unlink()  # must fold forward from epoch 4
    figure, params = tmp_path / "f.png", tmp_path / "p.npz"
    result = run(
        ["replay", folder, "--epoch", 6, "--figure", figure, "--save-params", params],
        tmp_path,
        data=mnist_dir,
    )
    assert result.returncode == 0, result.stderr
    assert "from the snapshot of epoch 4, 2 epochs folded forward" in result.stdout
    assert "matches the recorded row bit for bit" in result.stdout
    assert figure.read_bytes()[:4] == b"\x89PNG"
    with np.load(params, allow_pickle=False) as saved:
        replayed = {k: saved[k] for k in saved.files}
    trained = flatten(Run.open(cli_run).load_keyframe(6).params)
    assert set(replayed) == set(trained) == {"w0", "b0", "w1", "b1"}
    assert all(same_array(replayed[k], trained[k]) for k in trained)


def test_cli_replay_out_of_range_names_the_valid_range(cli_run, mnist_dir, tmp_path):
    line = assert_one_error_line(run(["replay", cli_run, "--epoch", 7], tmp_path, data=mnist_dir))
    assert "epochs are 0..6" in line


def test_cli_evaluate_prints_per_class_accuracy_and_a_confusion_matrix(
    cli_run, mnist_dir, tmp_path
):
    result = run(["evaluate", cli_run], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    matrix = [line for line in lines if line.strip()[:2] in {f"{d}:" for d in range(10)}]
    per_class, confusion = matrix[:10], matrix[10:]
    assert len(confusion) == 10
    counts = np.array([[int(v) for v in line.split(":")[1].split()] for line in confusion])
    assert counts.sum() == 7000
    images = [int(line.split("(")[1].split()[0]) for line in per_class]
    assert images == counts.sum(axis=1).tolist()
    accuracy = float(lines[0].split("test accuracy ")[1].split("%")[0]) / 100
    assert accuracy == pytest.approx(np.trace(counts) / 7000, abs=5e-5)


@pytest.mark.slow
def test_cli_evaluate_warns_with_the_recorded_figures_when_the_replay_differs(
    cli_run, mnist_dir, tmp_path
):
    folder = tmp_path / "copy"
    shutil.copytree(cli_run, folder)
    metrics = folder / "metrics.csv"
    lines = metrics.read_text().splitlines()
    fields = lines[-1].split(",")
    fields[4] = repr(float(fields[4]) - 0.01)  # the test accuracy on record
    metrics.write_text("\n".join([*lines[:-1], ",".join(fields)]) + "\n")
    result = run(["evaluate", folder], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    warning = result.stderr.strip()
    assert warning.startswith("purenet: warning: ") and "\n" not in warning
    assert "test_acc" in warning and f"{float(fields[4]):.2%}" in warning


def test_cli_runs_lists_status_and_progress(cli_run, tmp_path):
    result = run(["runs", cli_run.parent], tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("six "))
    assert "finished" in line and "6/6" in line and "784-10-10" in line


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + os.urandom(200))


class Payload:
    """Unpickling this would create a marker file: proof that code from a file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbled", "object array"])
def test_cli_refuses_a_damaged_snapshot_naming_it(cli_run, mnist_dir, tmp_path, damage):
    folder = broken_copy(cli_run, tmp_path)
    snapshot = folder / SNAPSHOT_DIR / keyframe_name(4)
    marker = tmp_path / "code-ran"
    if damage == "truncated":
        _truncate(snapshot)
    elif damage == "garbled":
        _garble(snapshot)
    else:
        arrays = dict(np.load(snapshot))
        arrays["w0"] = np.array([Payload(marker)], dtype=object)
        np.savez(snapshot, **arrays)
    for command in (["replay", folder, "--epoch", 5], ["evaluate", folder, "--epoch", 4]):
        line = assert_one_error_line(run(command, tmp_path, data=mnist_dir))
        assert str(snapshot) in line
        if damage == "object array":
            assert "object arrays" in line
    assert not marker.exists()


def test_cli_refuses_an_unknown_schema_version(cli_run, mnist_dir, tmp_path):
    folder = broken_copy(cli_run, tmp_path)
    meta = json.loads((folder / "config.json").read_text())
    meta["schema_version"] = 99
    (folder / "config.json").write_text(json.dumps(meta))
    line = assert_one_error_line(run(["replay", folder], tmp_path, data=mnist_dir))
    assert str(folder / "config.json") in line and "schema version 99" in line
    listing = run(["runs", tmp_path], tmp_path)
    assert "unreadable" in listing.stdout and "schema version 99" in listing.stdout


def test_cli_refuses_a_metrics_file_cut_mid_line(cli_run, mnist_dir, tmp_path):
    folder = broken_copy(cli_run, tmp_path)
    metrics = folder / "metrics.csv"
    metrics.write_text(metrics.read_text()[:-12])
    line = assert_one_error_line(run(["evaluate", folder], tmp_path, data=mnist_dir))
    assert str(metrics) in line and "cut" in line


def test_cli_refuses_a_missing_run_folder(tmp_path):
    for command in (["replay", tmp_path / "nope"], ["evaluate", tmp_path / "nope"]):
        line = assert_one_error_line(run(command, tmp_path))
        assert "does not exist" in line and "nope" in line
    assert_one_error_line(run(["train", "--resume", tmp_path / "nope"], tmp_path))


def _rows_without_seconds(folder: Path) -> list[tuple]:
    return [
        tuple(line.split(",")[:5]) for line in (folder / "metrics.csv").read_text().splitlines()
    ]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(mnist_dir, tmp_path):
    args = ["train", "--epochs", 40, "--keyframe-every", 8, "--quiet"]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [str(PURENET), *map(str, args), "--out", str(killed)],
        cwd=tmp_path,
        env=environment(mnist_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while (
            not (killed / "metrics.csv").exists()
            or len((killed / "metrics.csv").read_text().splitlines()) < 20
        ):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    killed_run = Run.open(killed)  # readable as it was left
    assert killed_run.status()["status"] == "interrupted"
    assert 19 <= len(killed_run.rows(tolerate_cut_last_line=True)) <= 41
    listing = run(["runs", tmp_path], tmp_path)
    assert any(
        line.startswith("killed ") and "interrupted" in line for line in listing.stdout.splitlines()
    )

    resumed = run(["train", "--resume", killed, "--quiet"], tmp_path, data=mnist_dir)
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    assert run([*args, "--out", whole], tmp_path, data=mnist_dir).returncode == 0

    final_killed = Run.open(killed).load_keyframe(40).params
    final_whole = Run.open(whole).load_keyframe(40).params
    for a, b in zip(final_killed.layers, final_whole.layers, strict=True):
        assert a.w.tobytes() == b.w.tobytes() and a.b.tobytes() == b.b.tobytes()
    assert _rows_without_seconds(killed) == _rows_without_seconds(whole)
    assert Run.open(killed).status()["status"] == "finished"
