"""One writer per run folder, and a run stopped at any instant that can be taken up again.

Everything here goes through the installed ``purenet`` command in subprocesses. A kill
at an exact instant is made by a small wrapper (:data:`KILLED_AT`) that runs the real
command with one library function patched to signal its own process when it is reached.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_error_line, environment, run, start

from purenet.runlock import writing
from purenet.runs import Run

pytestmark = pytest.mark.slow

ARGS = ["train", "--epochs", 4, "--keyframe-every", 2, "--hidden", 8, "--quiet"]

KILLED_AT = """
import os, signal, sys
import purenet.runs as runs

point, how, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
reached = [0]

def reach():
    reached[0] += 1
    if reached[0] == nth:
        if how == "MemoryError":
            raise MemoryError
        os.kill(os.getpid(), getattr(signal, how))

if point == "config":  # just before config.json is written
    write_json = runs._write_json
    def patched(path, value):
        if path.name == "config.json":
            reach()
        return write_json(path, value)
    runs._write_json = patched
elif point == "keyframe":  # just before the nth keyframe is written
    save_keyframe = runs.Run.save_keyframe
    def patched(self, state):
        reach()
        return save_keyframe(self, state)
    runs.Run.save_keyframe = patched
sys.argv = ["purenet", *sys.argv[4:]]
from purenet_cli.main import main
main()
"""


def killed_at(point: str, how: str, nth: int, args, cwd: Path, data: Path):
    """Run ``purenet args`` and signal it with ``how`` (or raise MemoryError, if ``how`` is
    "MemoryError") at the ``nth`` time ``point`` is reached."""
    return subprocess.run(
        [sys.executable, "-c", KILLED_AT, point, how, str(nth), *map(str, args)],
        cwd=cwd,
        env=environment(data),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def listed_status(parent: Path, name: str) -> str:
    """The status ``purenet runs parent`` shows for the run folder ``name``."""
    listing = run(["runs", parent], parent)
    assert listing.returncode == 0, listing.stderr
    found = [line.split()[1] for line in listing.stdout.splitlines() if line.split()[0] == name]
    assert len(found) == 1, listing.stdout
    return found[0]


def rows_without_seconds(folder: Path) -> list[list[str]]:
    return [line.split(",")[:-1] for line in (folder / "metrics.csv").read_text().splitlines()]


def final_params_bytes(folder: Path) -> list[bytes]:
    run_ = Run.open(folder)
    params = run_.load_keyframe(run_.keyframe_epochs()[-1]).params
    return [a.tobytes() for layer in params.layers for a in (layer.w, layer.b)]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_same_run(folder: Path, whole: Path) -> None:
    """Same rows (all columns but the time) and the same final params, bit for bit."""
    assert rows_without_seconds(folder) == rows_without_seconds(whole)
    assert final_params_bytes(folder) == final_params_bytes(whole)
    assert json.loads((folder / "status.json").read_text())["status"] == "finished"


@pytest.fixture(scope="module")
def whole(mnist_dir, tmp_path_factory) -> Path:
    """The run of :data:`ARGS`, uninterrupted."""
    folder = tmp_path_factory.mktemp("whole") / "run"
    result = run([*ARGS, "--out", folder], folder.parent, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    return folder


# -- one writer per run folder --------------------------------------------------------------


def test_two_trainings_into_one_new_folder_started_together_leave_one_intact_run(
    mnist_dir, whole, tmp_path
):
    for attempt in range(3):
        folder = tmp_path / f"race-{attempt}"
        both = [start([*ARGS, "--out", folder], tmp_path, mnist_dir) for _ in range(2)]
        results = [(p.wait(timeout=120), p.communicate()) for p in both]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 1], results
        (_, (_, stderr)) = next(r for r in results if r[0] == 1)
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("purenet: error: "), stderr
        # The loser is refused by the lock while the winner trains; on a quiet machine the
        # short winner can finish before the loser has started, which then finds a run.
        refusals = ("another purenet process", "already holds a run")
        assert str(folder) in lines[0] and any(r in lines[0] for r in refusals), lines[0]
        assert_same_run(folder, whole)
    assert run(["replay", folder], tmp_path, data=mnist_dir).returncode == 0


def test_two_resumes_of_one_run_started_together_leave_one_intact_run(mnist_dir, whole, tmp_path):
    for attempt in range(2):
        folder = tmp_path / f"race-{attempt}"
        killed = killed_at("keyframe", "SIGKILL", 3, [*ARGS, "--out", folder], tmp_path, mnist_dir)
        assert killed.returncode == -signal.SIGKILL
        both = [start(["train", "--resume", folder, "--quiet"], tmp_path, mnist_dir) for _ in "ab"]
        results = [(p.wait(timeout=120), p.communicate()) for p in both]
        assert sorted(code for code, _ in results) == [0, 1], results
        (_, (_, stderr)) = next(r for r in results if r[0] == 1)
        # Refused by the lock while the other resumes; on a quiet machine the other can
        # finish its last epoch before this one has started, which then finds it finished.
        refusals = ("another purenet process", "already finished all")
        assert stderr.count("\n") == 1 and any(r in stderr for r in refusals), stderr
        assert_same_run(folder, whole)


def test_a_second_writer_is_refused_before_loading_data_and_a_stale_pid_blocks_nothing(
    mnist_dir, whole, tmp_path
):
    folder = tmp_path / "held"
    killed = killed_at("keyframe", "SIGKILL", 3, [*ARGS, "--out", folder], tmp_path, mnist_dir)
    assert killed.returncode == -signal.SIGKILL
    before = files_of(folder)
    with writing(folder):  # this test process is the writer now
        for args in (
            ["train", "--resume", folder],
            [*ARGS, "--out", folder],
            # Refused before the data is looked at: a missing --data is not reported.
            ["train", "--resume", folder, "--data", tmp_path / "no-data"],
            [*ARGS, "--out", folder, "--data", tmp_path / "no-data"],
        ):
            line = assert_one_error_line(run(args, tmp_path, data=mnist_dir))
            assert f"run folder {folder} is being written by another purenet process" in line
        assert listed_status(tmp_path, "held") == "running"
    assert files_of(folder) == before
    # The pid of the killed writer now belongs to a live process (this one) on this host:
    # that blocks nothing, the lock alone tells.
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "running"
    status.update(pid=os.getpid(), host=socket.gethostname())
    (folder / "status.json").write_text(json.dumps(status))
    assert listed_status(tmp_path, "held") == "interrupted"
    resumed = run(["train", "--resume", folder, "--quiet"], tmp_path, data=mnist_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(folder, whole)


def test_a_resumed_run_shows_running_while_it_trains(mnist_dir, tmp_path):
    folder = tmp_path / "long"
    args = ["train", "--epochs", 2000, "--keyframe-every", 2, "--hidden", 8, "--quiet"]
    killed = killed_at("keyframe", "SIGKILL", 3, [*args, "--out", folder], tmp_path, mnist_dir)
    assert killed.returncode == -signal.SIGKILL
    process = start(["train", "--resume", folder, "--quiet"], tmp_path, mnist_dir)
    try:
        # Wait until the resumed session has written a row of its own (epoch 5).
        metrics = folder / "metrics.csv"
        while len(metrics.read_text().splitlines()) < 7:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert listed_status(tmp_path, "long") == "running"
        assert process.poll() is None  # it was still training when listed
    finally:
        process.kill()
        process.wait(timeout=30)
    assert listed_status(tmp_path, "long") == "interrupted"


# -- stopped at any instant -----------------------------------------------------------------


def test_killed_before_its_config_was_written_the_folder_can_be_trained_into_again(
    mnist_dir, whole, tmp_path
):
    folder = tmp_path / "early"
    killed = killed_at("config", "SIGKILL", 1, [*ARGS, "--out", folder], tmp_path, mnist_dir)
    assert killed.returncode == -signal.SIGKILL
    assert not (folder / "config.json").exists()
    line = assert_one_error_line(run(["train", "--resume", folder], tmp_path, data=mnist_dir))
    assert f"{folder} holds no run to resume" in line and "--out" in line
    again = run([*ARGS, "--out", folder], tmp_path, data=mnist_dir)
    assert again.returncode == 0, again.stderr
    assert_same_run(folder, whole)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_stopped_before_its_first_keyframe_a_run_resumes_from_the_start(
    mnist_dir, whole, tmp_path, how
):
    folder = tmp_path / "before-keyframe"
    killed = killed_at("keyframe", how, 1, [*ARGS, "--out", folder], tmp_path, mnist_dir)
    assert killed.returncode != 0
    assert Run.open(folder).keyframe_epochs() == []
    assert Run.open(folder).status()["status"] == "interrupted"
    if how != "SIGKILL":
        assert "Traceback" not in killed.stderr
        assert f"purenet train --resume {folder}" in killed.stderr
    line = assert_one_error_line(run([*ARGS, "--out", folder], tmp_path, data=mnist_dir))
    assert "interrupted" in line and f"purenet train --resume {folder}" in line
    resumed = run(["train", "--resume", folder], tmp_path, data=mnist_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "from the start" in resumed.stderr
    assert_same_run(folder, whole)


def test_stopped_mid_run_by_sigterm_a_run_resumes_to_the_same_bits(mnist_dir, whole, tmp_path):
    folder = tmp_path / "mid"
    killed = killed_at("keyframe", "SIGTERM", 3, [*ARGS, "--out", folder], tmp_path, mnist_dir)
    assert killed.returncode != 0
    resumed = run(["train", "--resume", folder, "--quiet"], tmp_path, data=mnist_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(folder, whole)
