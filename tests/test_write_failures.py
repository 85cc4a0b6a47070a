"""Writes that fail (a full disk, a read-only or missing folder) and writes that would
overwrite a run's files: one ``purenet: error:`` line, a non-zero exit, nothing lost.

A full disk and a read-only folder are real: the commands run in a mount namespace of
their own (``unshare --user --map-root-user --mount``, no privileges needed) on a small
tmpfs, which is then grown or made read-only. Tests that need this skip where the kernel
does not allow user namespaces.
"""

from __future__ import annotations

import json
import resource
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from cli_helpers import PURENET, assert_one_error_line, environment, run
from test_writer import ARGS, assert_same_run, files_of, killed_at

from purenet.config import Config
from purenet.memory import estimated_bytes
from purenet.runs import Run

pytestmark = pytest.mark.slow


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(
    not _namespaces_work(), reason="needs unshare and user namespaces to mount a small tmpfs"
)


def in_namespace(script: str, tmp_path: Path, data: Path) -> None:
    """Run the shell ``script`` as root of a new user and mount namespace, with ``$P``
    the installed purenet, ``$M`` an empty folder to mount on and ``$T`` ``tmp_path``."""
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    prelude = f"P={shlex.quote(str(PURENET))}; M={shlex.quote(str(mount_point))}; "
    prelude += f'T={shlex.quote(str(tmp_path))}; cd "$T"\n'
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", prelude + script],
        env=environment(data),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def outcome(tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    """What a command of the script left in ``$T/name.{rc,out,err}``."""
    return subprocess.CompletedProcess(
        name,
        int((tmp_path / f"{name}.rc").read_text()),
        (tmp_path / f"{name}.out").read_text(),
        (tmp_path / f"{name}.err").read_text(),
    )


def captured(name: str, command: str) -> str:
    """A line of shell running ``command`` with its output and exit code kept as ``name``."""
    return f'{command} >"$T/{name}.out" 2>"$T/{name}.err"; echo $? >"$T/{name}.rc"\n'


@pytest.fixture(scope="module")
def whole(mnist_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("whole") / "run"
    result = run([*ARGS, "--out", folder], folder.parent, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    return folder


def interrupted_run(folder: Path, data: Path) -> Path:
    """A run of :data:`ARGS` killed mid-way (after epoch 4's row, before its keyframe)."""
    killed = killed_at("keyframe", "SIGKILL", 3, [*ARGS, "--out", folder], folder.parent, data)
    assert killed.returncode == -signal.SIGKILL
    return folder


# -- a full disk ------------------------------------------------------------------------------


@needs_namespace
def test_a_disk_that_fills_up_during_training_stops_it_cleanly_and_it_resumes(
    mnist_dir, whole, tmp_path
):
    train = " ".join(shlex.quote(str(a)) for a in ARGS)
    in_namespace(
        # Room for the settings and the first keyframe (about 26 KB), not for all three.
        'mount -t tmpfs -o size=56k tmpfs "$M"\n'
        + captured("full", f'"$P" {train} --out "$M/run"')
        + 'cp -a "$M/run" "$T/after-full"\n'
        + 'mount -o remount,size=16m "$M"\n'
        + captured("resumed", '"$P" train --resume "$M/run" --quiet')
        + 'cp -a "$M/run" "$T/run"\n',
        tmp_path,
        mnist_dir,
    )
    full = outcome(tmp_path, "full")
    line = assert_one_error_line(full)
    assert "the disk is full" in line and "free some disk space" in line
    assert "purenet train --resume" in line
    assert Run.open(tmp_path / "after-full").status()["status"] == "interrupted"
    resumed = outcome(tmp_path, "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", whole)


@needs_namespace
def test_a_full_disk_on_resume_changes_nothing_and_the_run_resumes_later(
    mnist_dir, whole, tmp_path
):
    interrupted_run(tmp_path / "run", mnist_dir)
    before = files_of(tmp_path / "run")
    in_namespace(
        'mount -t tmpfs -o size=1m tmpfs "$M"\n'
        'cp -a "$T/run" "$M/run"\n'
        'dd if=/dev/zero of="$M/filler" bs=4k 2>/dev/null\n'  # until the disk is full
        + captured("full", '"$P" train --resume "$M/run" --quiet')
        + 'rm -r "$T/run"; cp -a "$M/run" "$T/after-full"\n'
        + 'rm "$M/filler"\n'
        + captured("resumed", '"$P" train --resume "$M/run" --quiet')
        + 'cp -a "$M/run" "$T/run"\n',
        tmp_path,
        mnist_dir,
    )
    line = assert_one_error_line(outcome(tmp_path, "full"))
    assert "the disk is full" in line and "free some disk space" in line
    assert files_of(tmp_path / "after-full") == before
    resumed = outcome(tmp_path, "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", whole)


# -- read-only and missing folders ------------------------------------------------------------


@needs_namespace
def test_a_read_only_run_folder_on_resume_and_read_only_outputs_are_refused(
    mnist_dir, whole, tmp_path
):
    interrupted_run(tmp_path / "run", mnist_dir)
    before = files_of(tmp_path / "run")
    in_namespace(
        'mount -t tmpfs -o size=1m tmpfs "$M"\n'
        'cp -a "$T/run" "$M/run"\n'
        'mount -o remount,ro "$M"\n'
        + captured("resume", '"$P" train --resume "$M/run" --quiet')
        + captured("figure", f'"$P" replay {shlex.quote(str(whole))} --figure "$M/f.png"')
        + captured("params", f'"$P" replay {shlex.quote(str(whole))} --save-params "$M/p.npz"')
        + 'cp -a "$M/run" "$T/after"\n',
        tmp_path,
        mnist_dir,
    )
    line = assert_one_error_line(outcome(tmp_path, "resume"))
    assert "read-only" in line and "writable" in line
    assert files_of(tmp_path / "after") == before
    for name, option in (("figure", "f.png"), ("params", "p.npz")):
        line = assert_one_error_line(outcome(tmp_path, name))
        assert option in line and "not writable" in line


def test_replay_outputs_into_a_missing_folder_are_refused_before_any_work(
    mnist_dir, whole, tmp_path
):
    for option, name in (("--figure", "f.png"), ("--save-params", "p.npz")):
        target = tmp_path / "missing" / name
        line = assert_one_error_line(run(["replay", whole, option, target], tmp_path))
        assert str(target) in line and "does not exist" in line
    assert not (tmp_path / "missing").exists()


# -- overwriting a run's files ----------------------------------------------------------------


def test_outputs_aimed_at_a_run_s_own_files_are_refused(mnist_dir, whole, tmp_path):
    target = tmp_path / "target"
    shutil.copytree(whole, target)
    before = files_of(target)
    for option, path in (
        ("--figure", target / "config.json"),
        ("--figure", target / "figure.png"),
        ("--save-params", target / "snapshots" / "epoch-000000.npz"),
        ("--save-params", target / "metrics.csv"),
        ("--figure", target / "snapshots" / "new.png"),
        ("--save-params", target / "status.json"),
    ):
        result = run(["replay", whole, option, path], tmp_path, data=mnist_dir)
        line = assert_one_error_line(result)
        assert option in line and f"file of run {target}" in line
    plot = run(["plot", whole, "--out", target / "snapshots"], tmp_path, data=mnist_dir)
    assert f"file of run {target}" in assert_one_error_line(plot)
    # Through a symbolic link too.
    (tmp_path / "link.json").symlink_to(target / "config.json")
    result = run(["replay", whole, "--figure", tmp_path / "link.json"], tmp_path, data=mnist_dir)
    assert_one_error_line(result)
    assert files_of(target) == before


def test_an_ordinary_existing_file_is_replaced(mnist_dir, whole, tmp_path):
    existing = tmp_path / "figure.png"
    existing.write_bytes(b"an older figure")
    result = run(["replay", whole, "--figure", existing], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    assert existing.read_bytes()[:4] == b"\x89PNG"


# -- memory -----------------------------------------------------------------------------------


def test_the_estimate_grows_with_the_params_and_the_blocks_of_a_batch():
    reference = Config()
    assert estimated_bytes(reference, 63_000) < 2**30
    huge = Config(hidden=(100_000,))
    assert estimated_bytes(huge, 63_000) > 30 * 2**30  # 62 blocks of a full batch
    assert estimated_bytes(Config(hidden=(100_000,), batch_size=128), 63_000) < 4 * 2**30


def test_settings_that_need_more_memory_than_the_machine_are_refused_before_any_write(
    mnist_dir, tmp_path
):
    folder = tmp_path / "huge"
    result = run(["train", "--hidden", 100_000, "--out", folder], tmp_path, data=mnist_dir)
    line = assert_one_error_line(result)
    assert "--hidden 100000" in line and "memory" in line and "smaller" in line
    assert not folder.exists()


def test_the_address_space_limit_counts_too(mnist_dir, tmp_path):
    def two_gigabytes():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    # About 2.7 GB by the estimate: refused under `ulimit -v` of 2 GB.
    result = subprocess.run(
        [str(PURENET), "train", "--hidden", "5000", "--out", str(tmp_path / "r")],
        cwd=tmp_path,
        env=environment(mnist_dir),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=two_gigabytes,
        check=False,
    )
    line = assert_one_error_line(result)
    assert "2.0 GB this machine allows" in line
    assert not (tmp_path / "r").exists()


def test_running_out_of_memory_in_training_ends_as_an_interrupted_run_that_resumes(
    mnist_dir, whole, tmp_path
):
    folder = tmp_path / "oom"
    result = killed_at("keyframe", "MemoryError", 3, [*ARGS, "--out", folder], tmp_path, mnist_dir)
    line = assert_one_error_line(result)
    assert "out of memory in epoch" in line and "smaller --hidden or --batch-size" in line
    assert f"purenet train --resume {folder}" in line
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "interrupted" and "out of memory" in status["error"]
    resumed = run(["train", "--resume", folder, "--quiet"], tmp_path, data=mnist_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(folder, whole)
