"""Crafted or corrupt run folders: every command that reads one answers with one error
line naming the file (exit 1), never a traceback, a hang or memory the run does not need;
``purenet runs`` lists the other folders whatever one of them holds; and a diverged run's
NaN params are not used by default."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import PURENET, assert_one_error_line, environment, run, trained_run
from PIL import Image, ImageDraw
from test_runs import Payload

from purenet.runs import SNAPSHOT_DIR, Run, RunError, keyframe_name

# -- fixtures: runs written by the installed command ------------------------------------------


@pytest.fixture(scope="module")
def sound(tmp_path_factory, mnist_dir) -> Path:
    """A finished 3-epoch reference run with a keyframe at every epoch."""
    return trained_run(
        tmp_path_factory.mktemp("files") / "sound", mnist_dir, "--epochs", 3, "--keyframe-every", 1
    )


@pytest.fixture(scope="module")
def diverged(tmp_path_factory, mnist_dir) -> Path:
    """A run whose params are NaN from epoch 1 (lr 1e30): epoch 0 is its last sound one."""
    folder = tmp_path_factory.mktemp("files") / "diverged"
    result = run(
        ["train", "--epochs", 3, "--lr", 1e30, "--quiet", "--out", folder],
        folder.parent,
        data=mnist_dir,
    )
    assert result.returncode == 1 and "diverged" in result.stderr, result.stderr
    assert (folder / "metrics.csv").read_text().splitlines()[-1].split(",")[:2] == ["1", "nan"]
    return folder


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> Path:
    """A picture of a handwritten-looking 1."""
    path = tmp_path_factory.mktemp("image") / "one.png"
    picture = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(picture).line([(30, 8), (28, 52)], fill=0, width=6)
    picture.save(path)
    return path


def copy_of(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def run_bounded(args, cwd: Path, data: Path | None = None) -> subprocess.CompletedProcess:
    """The installed command, killed (failing the test) if it waits on a pipe forever."""
    return subprocess.run(
        [str(PURENET), *map(str, args)],
        cwd=cwd,
        env=environment(data),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- crafted snapshots ----------------------------------------------------------------------------


def npy_header(shape, descr: str = "<f4") -> bytes:
    """The bytes of an .npy file's magic and header declaring ``shape`` and ``descr``."""
    import io

    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)  # the magic string, then the header
    return buffer.getvalue()


def rewrite_member(path: Path, name: str, content: bytes) -> None:
    """Replace the member ``name`` of the npz file ``path`` by raw ``content``."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[f"{name}.npy"] = content
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def damage_snapshot(path: Path, damage: str) -> None:
    arrays = arrays_of(path)
    if damage == "npy under an npz name":
        with open(path, "wb") as fh:
            np.save(fh, arrays["w0"])
    elif damage == "raw bytes member":
        rewrite_member(path, "w0", b"these are not the bytes of an array")
    elif damage in ("complex epoch", "float epoch"):
        kind = np.complex128 if damage == "complex epoch" else np.float64
        np.savez(path, **{**arrays, "epoch": np.array(arrays["epoch"], dtype=kind)})
    elif damage == "huge declared shape":
        rewrite_member(path, "w0", npy_header((200_000, 200_000)) + bytes(4096))
    elif damage == "wrong member dtype":
        np.savez(path, **{**arrays, "b1": arrays["b1"].astype(np.int32)})
    elif damage == "float64 snapshot":
        np.savez(
            path, **{k: v.astype(np.float64) if k != "epoch" else v for k, v in arrays.items()}
        )
    elif damage == "big-endian member":
        np.savez(path, **{**arrays, "w1": arrays["w1"].astype(">f4")})
    elif damage == "named pipe":
        path.unlink()
        os.mkfifo(path)
    elif damage == "folder":
        path.unlink()
        path.mkdir()
    else:
        raise AssertionError(damage)


DAMAGES = [
    "npy under an npz name",
    "raw bytes member",
    "complex epoch",
    "float epoch",
    "huge declared shape",
    "wrong member dtype",
    "float64 snapshot",
    "big-endian member",
    "named pipe",
    "folder",
]


def damaged_run(sound: Path, folder: Path, target: str, damage: str) -> Path:
    """A copy of ``sound`` at ``folder`` with one file damaged: ``target`` is "snapshot"
    (the keyframe of epoch 2), "config", "status" or "metrics"; returns the damaged file."""
    shutil.copytree(sound, folder)
    if target == "snapshot":
        path = folder / SNAPSHOT_DIR / keyframe_name(2)
        damage_snapshot(path, damage)
    else:
        path = folder / {"config": "config.json", "status": "status.json"}.get(
            target, "metrics.csv"
        )
        {"config": CONFIG_DAMAGES, "status": STATUS_DAMAGES, "metrics": METRICS_DAMAGES}[target][
            damage
        ](path)
    return path


def read_through_the_library(folder: Path, target: str) -> None:
    """What the commands read of ``target``: raises RunError if it is refused."""
    opened = Run.open(folder)
    if target == "snapshot":
        opened.load_keyframe(2)
    elif target == "status":
        opened.status()
    elif target == "metrics":
        opened.rows()


@pytest.mark.parametrize("damage", [d for d in DAMAGES if d != "named pipe"])  # see below
def test_a_crafted_snapshot_is_refused_naming_it(sound, tmp_path, damage):
    path = damaged_run(sound, tmp_path / "run", "snapshot", damage)
    with pytest.raises(RunError, match=re.escape(str(path))) as refused:
        read_through_the_library(tmp_path / "run", "snapshot")
    if damage == "huge declared shape":  # refused from its header, not for its size
        assert "declares shape (200000, 200000)" in str(refused.value)


def test_a_float64_snapshot_says_what_it_holds_and_what_the_run_needs(sound, tmp_path):
    path = damaged_run(sound, tmp_path / "run", "snapshot", "float64 snapshot")
    with pytest.raises(RunError, match=f"{re.escape(str(path))}.*float64.*float32"):
        read_through_the_library(tmp_path / "run", "snapshot")


def test_a_small_file_declaring_a_huge_array_is_refused_before_allocating_it(sound, tmp_path):
    folder = copy_of(sound, tmp_path)
    snapshot = folder / SNAPSHOT_DIR / keyframe_name(2)
    # 1.6 MB on disk; read as declared, 20000 x 20000 float32 would take 1.6 GB.
    rewrite_member(snapshot, "w0", npy_header((20_000, 20_000)) + bytes(1_600_000))
    opened = Run.open(folder)
    tracemalloc.start()
    try:
        with pytest.raises(RunError, match=re.escape(str(snapshot))):
            opened.load_keyframe(2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # far below the declared 1.6 GB: the data was never read


# -- malformed metadata ---------------------------------------------------------------------------


def edit_json(path: Path, edit) -> None:
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


def _set(path: tuple[str, ...], value):
    def edit(meta: dict) -> None:
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _write(value):
    return lambda p: p.write_text(json.dumps(value))


CONFIG_DAMAGES = {
    "deeply nested": lambda p: p.write_text('{"config": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "huge integer": lambda p: p.write_text(
        p.read_text().replace('"keyframe_every": 1', '"keyframe_every": ' + "9" * 5000)
    ),
    "data.sha256 a number": lambda p: edit_json(p, _set(("data", "sha256"), 5)),
    "data.sha256 holding a list": lambda p: edit_json(
        p, _set(("data", "sha256", "train_images"), [1])
    ),
    "data.sha256 not hex": lambda p: edit_json(p, _set(("data", "sha256", "train_images"), "x")),
    "data.folder a list": lambda p: edit_json(p, _set(("data", "folder"), ["x"])),
    "data null": lambda p: edit_json(p, _set(("data",), None)),
    "config a list": lambda p: edit_json(p, _set(("config",), [])),
    "keyframe_every true": lambda p: edit_json(p, _set(("keyframe_every",), True)),
    "keyframe_every 0": lambda p: edit_json(p, _set(("keyframe_every",), 0)),
    "extended_from a number": lambda p: edit_json(p, _set(("extended_from",), 5)),
    "epochs true": lambda p: edit_json(p, _set(("config", "epochs"), True)),
    "lr a 400-digit integer": lambda p: edit_json(p, _set(("config", "lr"), 10**400)),
    "not UTF-8": lambda p: p.write_bytes(b"\xff\xfe{}"),
    "a named pipe": lambda p: (p.unlink(), os.mkfifo(p)),
    "larger than a run config can be": lambda p: p.write_text(" " * (2 << 20) + "{}"),
}

_HOST = socket.gethostname()
STATUS_DAMAGES = {
    "no status": _write({"epoch": 3}),
    "status null": _write({"status": None, "epoch": 3}),
    "status a number": _write({"status": 7}),
    "status a list": _write({"status": ["finished"]}),
    "an unknown status": _write({"status": "paused"}),
    "epoch true": _write({"status": "interrupted", "epoch": True}),
    "result_epoch true": _write({"status": "finished", "epoch": 3, "result_epoch": True}),
    "result_epoch a string": _write({"status": "finished", "epoch": 3, "result_epoch": "2"}),
    "pid 10**30": _write({"status": "running", "epoch": 1, "pid": 10**30, "host": _HOST}),
    "pid true": _write({"status": "running", "epoch": 1, "pid": True, "host": _HOST}),
    "pid -1": _write({"status": "running", "epoch": 1, "pid": -1, "host": _HOST}),
    "a list": _write([]),
    "deeply nested": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "a named pipe": lambda p: (p.unlink(), os.mkfifo(p)),
}

METRICS_DAMAGES = {
    "a field of 200 kB": lambda p: p.write_text(p.read_text() + "x" * 200_000 + "\n"),
    "larger than the run can write": lambda p: p.write_text(p.read_text() * 200),
    "an epoch of 5000 digits": lambda p: p.write_text(
        p.read_text() + "9" * 5000 + ",1,1,1,1,nan,nan,1\n"
    ),
    "not UTF-8": lambda p: p.write_bytes(p.read_bytes() + b"\xff\n"),
    "a named pipe": lambda p: (p.unlink(), os.mkfifo(p)),
}

NO_PIPES = {
    target: [d for d in damages if "pipe" not in d]
    for target, damages in (
        ("snapshot", DAMAGES),
        ("config", CONFIG_DAMAGES),
        ("status", STATUS_DAMAGES),
        ("metrics", METRICS_DAMAGES),
    )
}


@pytest.mark.parametrize(
    ("target", "damage"),
    [(t, d) for t in ("config", "status", "metrics") for d in NO_PIPES[t]],
)
def test_malformed_metadata_is_refused_naming_the_file(sound, tmp_path, target, damage):
    path = damaged_run(sound, tmp_path / "run", target, damage)
    with pytest.raises(RunError, match=re.escape(str(path))) as refused:
        read_through_the_library(tmp_path / "run", target)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 400


def test_an_empty_data_record_does_not_turn_the_data_check_off(sound, mnist_dir, tmp_path):
    folder = copy_of(sound, tmp_path)
    edit_json(folder / "config.json", _set(("data", "sha256"), {}))
    line = assert_one_error_line(run(["evaluate", folder], tmp_path, data=mnist_dir))
    assert str(folder / "config.json") in line and "no hashes" in line


# -- through the command: one line, no hang, and the listing goes on ---------------------------


@pytest.mark.parametrize(
    ("target", "damage", "command"),
    [
        ("snapshot", "huge declared shape", "predict"),
        ("snapshot", "complex epoch", "evaluate"),
        ("snapshot", "named pipe", "predict"),
        ("snapshot", "float64 snapshot", "resume"),
        ("config", "deeply nested", "evaluate"),
        ("config", "a named pipe", "predict"),
        ("status", "no status", "resume"),
        ("status", "pid 10**30", "resume"),
        ("status", "a named pipe", "resume"),
        ("metrics", "a field of 200 kB", "replay"),
        ("metrics", "a named pipe", "predict"),
    ],
)
def test_the_commands_refuse_a_damaged_file_in_one_line_without_hanging(
    sound, mnist_dir, digit, tmp_path, target, damage, command
):
    folder = tmp_path / "run"
    path = damaged_run(sound, folder, target, damage)
    if target != "status":
        (folder / "status.json").write_text(json.dumps({"status": "interrupted", "epoch": 3}))
    if target == "snapshot" and command == "resume":  # make the damaged one the last
        (folder / SNAPSHOT_DIR / keyframe_name(3)).unlink()
    before = (folder / "metrics.csv").read_bytes() if target != "metrics" else None
    args = {
        "predict": ["predict", folder, digit, "--epoch", 2],
        "evaluate": ["evaluate", folder, "--epoch", 2],
        "replay": ["replay", folder],
        "resume": ["train", "--resume", folder],
    }[command]
    line = assert_one_error_line(run_bounded(args, tmp_path, data=mnist_dir))
    assert str(path) in line, line
    if before is not None:
        assert (folder / "metrics.csv").read_bytes() == before


def test_one_listing_shows_every_damaged_folder_as_unreadable_and_the_sound_one(sound, tmp_path):
    parent = tmp_path / "runs"
    shutil.copytree(sound, parent / "a-sound-run")
    expected = {}
    for target in ("config", "status", "metrics"):
        damages = {"config": CONFIG_DAMAGES, "status": STATUS_DAMAGES, "metrics": METRICS_DAMAGES}
        for number, damage in enumerate(damages[target]):
            name = f"{target}-{number:02d}"
            expected[name] = damaged_run(sound, parent / name, target, damage)
    listing = run_bounded(["runs", parent], tmp_path)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "finished" in lines.pop("a-sound-run")
    assert set(lines) == set(expected)
    for name, path in expected.items():
        assert "unreadable" in lines[name] and str(path) in lines[name], lines[name]


def test_the_listing_goes_on_past_a_folder_it_may_not_look_into(sound, tmp_path):
    copy_of(sound, tmp_path, "good")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        if os.access(locked, os.X_OK):
            pytest.skip("running as a user whom permissions do not stop")
        listing = run_bounded(["runs", tmp_path], tmp_path)
    finally:
        locked.chmod(0o755)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    lines = listing.stdout.splitlines()
    assert any(line.startswith("locked ") and "unreadable" in line for line in lines), lines
    assert any(line.startswith("good ") and "finished" in line for line in lines), lines


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["huge declared shape", "float64 snapshot", "named pipe"])
def test_every_command_that_reads_snapshots_refuses_a_crafted_one(
    sound, mnist_dir, digit, tmp_path, damage
):
    folder = copy_of(sound, tmp_path)
    snapshot = folder / SNAPSHOT_DIR / keyframe_name(3)
    damage_snapshot(snapshot, damage)
    (folder / "status.json").write_text(json.dumps({"status": "interrupted", "epoch": 3}))
    before = (folder / "metrics.csv").read_bytes()
    for command in (
        ["replay", folder],
        ["evaluate", folder],
        ["plot", folder, "--out", tmp_path / "figures"],
        ["predict", folder, digit],
        ["train", "--resume", folder],
    ):
        line = assert_one_error_line(run_bounded(command, tmp_path, data=mnist_dir))
        assert str(snapshot) in line, (command, line)
    assert (folder / "metrics.csv").read_bytes() == before  # resume changed nothing


def test_object_arrays_in_a_snapshot_are_never_unpickled(sound, digit, tmp_path):
    folder = copy_of(sound, tmp_path)
    snapshot = folder / SNAPSHOT_DIR / keyframe_name(2)
    marker = tmp_path / "code-ran"
    arrays = arrays_of(snapshot)
    arrays["w0"] = np.array([Payload(marker)], dtype=object)
    np.savez(snapshot, **arrays)
    line = assert_one_error_line(run_bounded(["predict", folder, digit, "--epoch", 2], tmp_path))
    assert str(snapshot) in line and "object arrays" in line
    assert not marker.exists()


# -- a diverged run -------------------------------------------------------------------------------


def strict_json(text: str):
    """JSON as the standard defines it: NaN and Infinity are not JSON."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_evaluate_defaults_to_the_last_sound_epoch_of_a_diverged_run(diverged, mnist_dir, tmp_path):
    result = run(["evaluate", diverged], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"run {diverged.name}, epoch 0: test loss 2.5")
    note = result.stderr.strip()
    assert note.startswith("purenet: note: ") and "\n" not in note
    assert "diverged at epoch 1" in note and "epoch 0" in note


@pytest.mark.slow
def test_predict_defaults_to_the_last_sound_epoch_and_never_prints_nan(
    diverged, mnist_dir, digit, tmp_path
):
    result = run(["predict", diverged, digit, "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = strict_json(result.stdout)
    assert out["epoch"] == 0 and out["predictions"][0]["digit"] in range(10)
    assert "diverged at epoch 1" in result.stderr and len(result.stderr.splitlines()) == 1

    result = run(["predict", diverged, digit, "--json", "--epoch", 1], tmp_path, data=mnist_dir)
    assert result.returncode == 1
    out = strict_json(result.stdout)  # valid JSON: the failure is said, not printed as NaN
    (entry,) = out["predictions"]
    assert entry.get("digit") is None and "not a number" in entry["error"]
    assert assert_one_error_line(result)

    result = run(["predict", diverged, digit, "--epoch", 1], tmp_path, data=mnist_dir)
    assert "nan" not in result.stdout.lower()
    assert "not a number" in assert_one_error_line(result)


@pytest.mark.slow
def test_plot_defaults_to_the_last_sound_epoch_of_a_diverged_run(diverged, mnist_dir, tmp_path):
    result = run(["plot", diverged, "--out", tmp_path / "figures"], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    assert "diverged at epoch 1" in result.stderr and len(result.stderr.splitlines()) == 1
    assert (tmp_path / "figures" / "weights.png").exists()


@pytest.mark.slow
def test_plot_of_the_diverged_epoch_itself_draws_it_and_says_so(diverged, mnist_dir, tmp_path):
    figures = tmp_path / "figures"
    result = run(["plot", diverged, "--epoch", 1, "--out", figures], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    note = result.stderr.strip()
    assert note.startswith("purenet: note: ") and "\n" not in note
    assert "diverged at epoch 1" in note and "epoch 1" in note
    assert (figures / "confusion.png").exists()


def test_replay_still_checks_the_diverged_row_by_default(diverged, mnist_dir, tmp_path):
    result = run(["replay", diverged], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"epoch 1 of run {diverged.name}")
