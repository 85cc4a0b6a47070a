"""Reading files that may be crafted or damaged (purenet.reading, and the run records read
through it): whatever the bytes, the answer is the expected arrays or values, or a
FileError / RunError naming the file, never another exception."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from purenet.config import Config
from purenet.errors import FileError
from purenet.history import csv_header
from purenet.reading import open_regular, read_json, read_npz
from purenet.runs import Run, RunError, last_sound_epoch

EXPECTED = {
    "w0": ((3, 2), np.dtype(np.float32)),
    "b0": ((2,), np.dtype(np.float32)),
    "epoch": ((), np.dtype(np.int64)),
}


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


SOUND = npz_bytes(
    w0=np.arange(6, dtype=np.float32).reshape(3, 2),
    b0=np.ones(2, np.float32),
    epoch=np.int64(4),
)


def written(content: bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=".npz")
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return Path(name)


def read_or_refuse(content: bytes):
    path = written(content)
    try:
        return read_npz(path, EXPECTED)
    except FileError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return None
    finally:
        path.unlink()


def test_a_sound_file_reads_back_exactly():
    arrays = read_or_refuse(SOUND)
    assert arrays is not None and set(arrays) == set(EXPECTED)
    assert arrays["w0"].tolist() == [[0, 1], [2, 3], [4, 5]] and int(arrays["epoch"]) == 4
    assert not arrays["w0"].flags.writeable


def test_a_fortran_ordered_member_reads_as_the_same_array():
    w0 = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(3, 2))
    arrays = read_or_refuse(npz_bytes(w0=w0, b0=np.ones(2, np.float32), epoch=np.int64(1)))
    assert arrays is not None and np.array_equal(arrays["w0"], w0)


@given(st.binary(max_size=4096))
@example(b"")
@example(b"PK\x05\x06" + bytes(18))  # an empty zip archive
@example(SOUND[:100])
def test_arbitrary_bytes_give_the_expected_arrays_or_a_file_error(content):
    arrays = read_or_refuse(content)
    if arrays is not None:
        for name, array in arrays.items():
            assert (array.shape, array.dtype) == EXPECTED[name]


@given(st.lists(st.tuples(st.integers(0, len(SOUND) - 1), st.integers(0, 255)), max_size=8))
def test_a_damaged_snapshot_gives_the_expected_arrays_or_a_file_error(changes):
    content = bytearray(SOUND)
    for position, value in changes:
        content[position] = value
    arrays = read_or_refuse(bytes(content))
    if arrays is not None:
        for name, array in arrays.items():
            assert (array.shape, array.dtype) == EXPECTED[name]


@given(st.integers(0, len(SOUND)))
def test_a_cut_snapshot_is_refused(length):
    arrays = read_or_refuse(SOUND[:length])
    assert arrays is None or length == len(SOUND)


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(FileError, match="named pipe"):
        open_regular(pipe)
    with pytest.raises(FileError, match="a folder"):
        open_regular(tmp_path)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from([10**30, -(10**30), 2**63, "", "running", "finished", "interrupted"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(b"[" * 100_000)
@example(b"1" * 5000)
def test_arbitrary_bytes_as_json_give_a_value_or_a_file_error(content):
    path = written(content)
    try:
        read_json(path)
    except FileError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    finally:
        path.unlink()


def a_run(folder: Path) -> Path:
    """A run folder with a sound config.json, status.json and metrics.csv (no training)."""
    sha = {"train_images": "0" * 64, "train_labels": "1" * 64}
    Run.create(folder, Config(hidden=(3,), epochs=2), sha)
    return folder


PLACES = [
    ("config",),
    ("keyframe_every",),
    ("data",),
    ("data", "sha256"),
    ("data", "sha256", "train_images"),
    ("data", "folder"),
    ("config", "hidden"),
    ("config", "epochs"),
    ("config", "lr"),
    ("config", "batch_size"),
    ("config", "optimizer"),
    ("config", "patience"),
    ("schema_version",),
    ("extended_from",),
]


@given(st.sampled_from(PLACES), JSON)
def test_any_json_anywhere_in_config_json_opens_or_is_refused_naming_it(place, value):
    with tempfile.TemporaryDirectory() as parent:
        folder = a_run(Path(parent) / "run")
        path = folder / "config.json"
        meta = json.loads(path.read_text())
        target = meta
        for key in place[:-1]:
            target = target[key]
        target[place[-1]] = value
        path.write_text(json.dumps(meta))
        try:
            opened = Run.open(folder)
        except RunError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:  # what was accepted has the types the rest of purenet relies on
            assert type(opened.keyframe_every) is int and opened.keyframe_every >= 1
            assert all(type(v) is str for v in opened.data_sha256.values())
            assert opened.data_folder is None or type(opened.data_folder) is str


@given(st.dictionaries(st.sampled_from(["status", "epoch", "pid", "host"]), JSON) | JSON)
def test_any_json_as_status_json_is_a_status_or_is_refused_naming_it(record):
    with tempfile.TemporaryDirectory() as parent:
        folder = a_run(Path(parent) / "run")
        path = folder / "status.json"
        path.write_text(json.dumps(record))
        try:
            status = Run.open(folder).status()
        except RunError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            assert status["status"] in ("running", "finished", "interrupted", "diverged")


@given(st.text(max_size=400))
def test_any_text_after_the_header_of_metrics_csv_is_rows_or_is_refused_naming_it(text):
    with tempfile.TemporaryDirectory() as parent:
        folder = a_run(Path(parent) / "run")
        path = folder / "metrics.csv"
        path.write_text(csv_header() + text, encoding="utf-8")
        try:
            rows = Run.open(folder).rows(tolerate_cut_last_line=True)
        except RunError as exc:
            assert str(path) in str(exc)
        else:
            assert [r.epoch for r in rows] == list(range(len(rows)))


@given(st.lists(st.floats(allow_nan=True), max_size=12))
def test_the_last_sound_epoch_is_the_one_before_the_first_divergence(losses):
    from purenet.history import Row

    rows = [Row(i, loss, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0) for i, loss in enumerate(losses)]
    sound = last_sound_epoch(rows)
    bad = [i for i, loss in enumerate(losses) if not loss <= 1e3]
    first_bad = bad[0] if bad else len(losses)
    assert sound == (first_bad - 1 if first_bad > 0 else None)
