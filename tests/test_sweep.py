"""``purenet sweep`` through the installed command, in real processes: each run of a sweep
equals the same ``purenet train`` alone, bit for bit, however the sweep is stopped (Ctrl-C,
SIGTERM, SIGKILL at any moment) and taken up again."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import run, start
from test_train import synthetic
from test_writer import assert_same_run, files_of

from purenet.config import Config
from purenet.runlock import writing
from purenet.runs import Run

LRS, HIDDEN = ("0.05", "0.5"), ("4", "8")
OPTIONS = ["--epochs", 6, "--keyframe-every", 2]
GRID = ["--grid", f"lr={','.join(LRS)}", "--grid", f"hidden={','.join(HIDDEN)}", *OPTIONS]
NAMES = [f"lr={lr},hidden={h}" for lr in LRS for h in HIDDEN]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def rows_of(metrics: Path) -> int:
    try:
        return max(0, metrics.read_text().count("\n") - 1)
    except OSError:
        return 0


def rows_on_record(out: Path) -> int:
    total = 0
    for metrics in out.glob("*/metrics.csv"):
        try:
            total += max(0, metrics.read_text().count("\n") - 1)
        except OSError:
            pass
    return total


@pytest.fixture(scope="module")
def alone(mnist_dir, tmp_path_factory) -> dict[str, Path]:
    """Each run of the grid trained alone by ``purenet train``."""
    parent = tmp_path_factory.mktemp("alone")
    folders, trainings = {}, []
    for lr in LRS:
        for h in HIDDEN:
            folder = folders[f"lr={lr},hidden={h}"] = parent / f"{lr}-{h}"
            options = ["--lr", lr, "--hidden", h, *OPTIONS, "--quiet", "--out", folder]
            trainings.append(start(["train", *options], parent, mnist_dir))
    for process in trainings:
        assert process.wait(timeout=120) == 0, process.communicate()
    return folders


def assert_all_same(out: Path, alone: dict[str, Path]) -> None:
    for name in NAMES:
        assert_same_run(out / name, alone[name])


# -- refused before anything starts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--grid", "lr=0.05,x"], "--grid: lr: 'x' is not a finite number"),
        (["--grid", "learning=0.1"], "--grid: unknown setting 'learning'"),
        (["--grid", "lr="], "--grid: lr: an empty value"),
        (["--grid", "lr=0.1,0.10"], "--grid: lr: 0.1 is given twice"),
        (["--grid", "lr=0.1", "--lr", "0.2"], "--grid: lr is also given as --lr"),
        (["--grid", "lr=0.1", "--grid", "lr=0.2"], "--grid: lr is in --grid twice"),
        (["--grid", "hidden=0,4"], "--grid: hidden: must be one or more layer widths"),
        (["--grid", "patience=3"], "--grid: patience: early stopping needs a validation set"),
        (["--grid", "lr=0.1", "--jobs", "0"], "--jobs: must be at least 1"),
        (["--grid", "lr=0.1", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:9"], "--jobs: not"),
        (["--grid", "lr=0.1", "--lr", "nan"], "--lr"),
        (["--lr", "0.1"], "missing option --grid"),
    ],
)
def test_a_bad_grid_is_one_line_naming_it_and_nothing_starts(tmp_path, args, words):
    result = run(["sweep", *args, "--out", tmp_path / "out"], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("purenet: error: "), result.stderr
    assert words in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_a_run_of_other_settings_is_refused_naming_them(tmp_path, mnist_dir):
    Run.create(tmp_path / "out" / "lr=0.1", Config(epochs=4), synthetic().sha256)
    before = files_of(tmp_path / "out")
    result = run(
        ["sweep", "--grid", "lr=0.1", "--epochs", 5, "--out", tmp_path / "out"], tmp_path, mnist_dir
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"purenet: error: {tmp_path / 'out' / 'lr=0.1'} holds a run with other settings "
        "(epochs 4 there, 5 here); pass another --out folder, or move that run away"
    ]
    assert files_of(tmp_path / "out") == before


# -- runs equal to purenet train alone -----------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_equals_each_training_alone_and_the_same_command_skips_it(
    mnist_dir, alone, tmp_path
):
    out = tmp_path / "sweep"
    result = run(["sweep", *GRID, "--out", out, "--jobs", 2], tmp_path, mnist_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_all_same(out, alone)
    table = result.stdout.splitlines()
    for name in NAMES:  # the comparison: a row per run, and the figure
        assert any(line.startswith(f"{name} ") and "finished" in line for line in table)
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    runs = {name: files_of(out / name) for name in NAMES}
    again = run(["sweep", *GRID, "--out", out, "--jobs", 2], tmp_path, mnist_dir)
    assert again.returncode == 0, again.stderr
    for name in NAMES:
        assert f"{name}: already finished, skipped" in again.stderr
        assert files_of(out / name) == runs[name]


@pytest.mark.slow
def test_more_jobs_than_cores_are_capped_with_a_warning(mnist_dir, tmp_path):
    args = ["sweep", "--grid", "lr=0.1,0.2", "--epochs", 1, "--hidden", 4, "--jobs", 3, "-q"]
    result = run([*args, "--out", tmp_path / "out"], tmp_path, mnist_dir, {"PURENET_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "purenet: warning: --jobs 3 is more than the 1 core this process may use; training "
        "1 run at a time (more would only take turns on the cores)"
    ]


# -- stopped at any moment ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_killed_at_any_moment_then_run_again_ends_bit_identical(mnist_dir, alone, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", *GRID, "--out", out, "--jobs", 2, "--quiet"]
    for rows in (0, 3, 10, 17, 24):  # killed when that many rows are on record in all
        process = start(args, tmp_path, mnist_dir)
        wait_until(lambda p=process, n=rows: rows_on_record(out) >= n or p.poll() is not None)
        workers = children(process.pid)
        before = {f: rows_of(f) for f in out.glob("*/metrics.csv")}
        if rows == 3 and workers:  # each worker's threads are its share of the cores
            env = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
            assert f"PURENET_THREADS={max(1, len(os.sched_getaffinity(0)) // 2)}".encode() in env
        process.kill()
        process.wait()
        # the kernel stops the workers (parent-death signal): none trains on unseen
        wait_until(lambda w=workers: not any(alive(pid) for pid in w), timeout=30)
        # each stopped within the epoch it was in (left alone, they would train on)
        assert all(rows_of(f) <= n + 2 for f, n in before.items()), (before, rows)
    result = run(args, tmp_path, mnist_dir)
    assert result.returncode == 0, result.stderr
    assert_all_same(out, alone)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "code", "line"),
    [
        (
            "ctrl-c",
            130,
            "purenet: sweep interrupted; every run is kept: run the same command "
            "again to continue it",
        ),
        ("sigterm", 143, "purenet: terminated (SIGTERM)"),
    ],
)
def test_ctrl_c_or_sigterm_stops_every_run_cleanly_and_resumably(
    mnist_dir, alone, tmp_path, how, code, line
):
    out = tmp_path / "sweep"
    args = ["sweep", *GRID, "--out", out, "--jobs", 2, "--quiet"]
    process = start(args, tmp_path, mnist_dir, start_new_session=True)
    wait_until(lambda: rows_on_record(out) >= 3 or process.poll() is not None)
    workers = children(process.pid)
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole group
    else:
        process.terminate()  # the sweep alone
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert stderr.splitlines() == [line]
    assert not any(alive(pid) for pid in workers)
    for folder in out.iterdir():
        if (folder / "config.json").exists():
            status = Run.open(folder).status()
            assert status["status"] in ("interrupted", "finished"), status
            assert not status.get("killed"), status  # stopped cleanly, not left running
    result = run(args, tmp_path, mnist_dir)
    assert result.returncode == 0, result.stderr
    assert_all_same(out, alone)
    assert json.loads((out / NAMES[0] / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_a_run_another_process_writes_is_taken_up_last_once_its_writer_ends(
    mnist_dir, alone, tmp_path
):
    out = tmp_path / "sweep"
    held = out / NAMES[0]
    held.mkdir(parents=True)
    waiting = f"{NAMES[0]}: another purenet process is writing this run; it is taken up last"
    with writing(held):  # this test process is that run's writer for a while
        process = start(["sweep", *GRID, "--out", out, "--jobs", 2], tmp_path, mnist_dir)
        said: list[str] = []

        def read_stderr() -> None:
            for line in process.stderr:
                said.append(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        others = [out / name / "status.json" for name in NAMES[1:]]

        def finished(status) -> bool:
            return status.is_file() and '"finished"' in status.read_text()

        # The lock is held until the sweep has tried the run and put it aside (its first
        # try waits a second for the lock, longer than the other runs may take).
        wait_until(
            lambda: (
                (all(finished(s) for s in others) and any(waiting in x for x in said))
                or process.poll() is not None
            )
        )
        assert process.poll() is None  # it waits for the run it could not take
        assert not (held / "config.json").exists()
    process.wait(timeout=120)
    reader.join(10)
    stderr = "".join(said)
    assert process.returncode == 0, stderr
    assert waiting in stderr
    assert_all_same(out, alone)
