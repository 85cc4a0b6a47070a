"""``purenet sweep --scheduler``: the runs of a sweep as tasks on a real Dask cluster
(``distributed.LocalCluster``, worker processes on this machine), nothing mocked; the same
bits as ``purenet train`` alone, also when a worker is killed mid-run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pytest
from cli_helpers import assert_one_error_line, environment, run
from test_sweep import GRID, NAMES, alone, assert_all_same, start, wait_until  # noqa: F401
from test_writer import assert_same_run

try:
    import distributed
except ImportError:  # CI installs it (the dev extra): there, its absence is a failure
    distributed = None


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each, and their scheduler, on this machine."""
    if distributed is None:
        if os.environ.get("CI"):
            pytest.fail("distributed must be installed in CI (pip install -e '.[dev]')")
        pytest.skip("distributed is not installed: pip install -e '.[dev]'")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as local:
        yield local


def test_purenet_and_its_commands_never_load_dask():
    code = (
        "import sys, purenet, purenet.sweep, purenet_cli.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment(None), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_sweep_on_dask_equals_each_training_alone(cluster, mnist_dir, alone, tmp_path):  # noqa: F811
    out = tmp_path / "sweep"
    args = ["sweep", *GRID, "--out", out, "--scheduler", cluster.scheduler_address]
    result = run([*args, "--data", mnist_dir], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_all_same(out, alone)
    assert (out / "compare.png").is_file()
    again = run([*args, "--data", mnist_dir], tmp_path)
    assert again.returncode == 0, again.stderr
    assert all(f"{name}: already finished, skipped" in again.stderr for name in NAMES)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_its_run_resumes_bit_identical(
    cluster, mnist_dir, tmp_path
):
    options = ["--lr", "0.3", "--hidden", 4, "--epochs", 40, "--keyframe-every", 5, "--quiet"]
    whole = tmp_path / "whole"
    trained = run(["train", *options, "--out", whole], tmp_path, mnist_dir)
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "sweep"
    sweep = [
        "sweep",
        "--grid",
        "seed=0",
        *options,
        "--out",
        out,
        "--scheduler",
        cluster.scheduler_address,
        "--data",
        mnist_dir,
    ]
    process = start(sweep, tmp_path, mnist_dir)
    metrics, status = out / "seed=0" / "metrics.csv", out / "seed=0" / "status.json"
    # past its keyframe of epoch 10: the resumed run has something to resume from
    wait_until(lambda: metrics.is_file() and metrics.read_text().count("\n") >= 13)
    record = json.loads(status.read_text())
    assert record["status"] == "running"
    os.kill(record["pid"], signal.SIGKILL)  # the worker process training it
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert_same_run(out / "seed=0", whole)


@pytest.mark.slow
def test_a_scheduler_that_cannot_be_reached_is_one_line(tmp_path):
    result = run(
        [
            "sweep",
            "--grid",
            "lr=0.1",
            "-q",
            "--out",
            tmp_path / "o",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
        tmp_path,
    )
    line = assert_one_error_line(result)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in line
