"""The strict IDX reader (purenet.idx) and the MNIST-specific checks on top of it."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run
from hypothesis import given
from hypothesis import strategies as st

from purenet.data import FILE_STEMS, Mnist, check_images, check_labels, load_mnist, make_split
from purenet.errors import DataError, IdxFormatError
from purenet.idx import DEFAULT_MAX_BYTES, parse_idx, read_bytes, read_idx

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
# The decompressed size of the real train-images file; the default cap must admit it.
MNIST_TRAIN_IMAGES_BYTES = 16 + 60000 * 28 * 28


def idx_bytes(magic: int, dims, payload: bytes = b"") -> bytes:
    """An IDX file: big-endian uint32 magic, big-endian uint32 dims, then the payload."""
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


def images_bytes(images: np.ndarray) -> bytes:
    return idx_bytes(IMAGES_MAGIC, images.shape, images.astype(np.uint8).tobytes())


def labels_bytes(labels: np.ndarray) -> bytes:
    return idx_bytes(LABELS_MAGIC, labels.shape, labels.astype(np.uint8).tobytes())


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def some_images(n: int, rows: int = 28, cols: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, rows, cols), dtype=np.uint8)


def some_labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, n, dtype=np.uint8)


def write_mnist(folder: Path, gz: bool, contents: dict[str, bytes] | None = None) -> dict:
    """Tiny valid MNIST files (5 train, 3 test) in ``folder``; ``contents`` overrides files."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": some_images(5, seed=1),
        "train_labels": some_labels(5, seed=2),
        "test_images": some_images(3, seed=3),
        "test_labels": some_labels(3, seed=4),
    }
    for key, array in arrays.items():
        data = images_bytes(array) if array.ndim == 3 else labels_bytes(array)
        data = (contents or {}).get(key, data)
        name = FILE_STEMS[key] + (".gz" if gz else "")
        write(folder / name, data, gz)
    return arrays


# -- malformed bytes -------------------------------------------------------------------------

TOO_SHORT_FOR_MAGIC = [b"", b"\x00", b"\x00\x00\x08", b"\x1f\x8b\x08"]
SHORTER_THAN_HEADER = [
    struct.pack(">I", LABELS_MAGIC),  # no dims at all
    struct.pack(">I", LABELS_MAGIC) + b"\x00\x00\x05",  # 3 of the 4 dim bytes
    struct.pack(">II", IMAGES_MAGIC, 5),  # 1 of 3 dims
    struct.pack(">III", IMAGES_MAGIC, 5, 28) + b"\x00\x00",  # 2.5 of 3 dims
]
WRONG_MAGIC = [
    0x00000802,  # unsigned bytes, 2-D: not an MNIST form
    0x00000D03,  # float32 images
    0x08030000,  # little-endian images magic
    0x01000803,  # a non-zero first byte
    0x00000901,  # signed-byte labels
    0x00000800,  # 0-D
    0xFFFFFFFF,
]


def wrong_magic_file(magic: int) -> bytes:
    # Enough dims and payload that only the magic is wrong for a 1-D or 3-D reader.
    return struct.pack(">I", magic) + struct.pack(">III", 1, 1, 1) + b"\x00"


TRUNCATED = [
    images_bytes(some_images(2))[:-1],
    images_bytes(some_images(2))[:-784],
    idx_bytes(IMAGES_MAGIC, (2, 28, 28)),  # header only
    labels_bytes(some_labels(7))[:-3],
    idx_bytes(LABELS_MAGIC, (1,)),
]
TRAILING = [
    images_bytes(some_images(2)) + b"\x00",
    labels_bytes(some_labels(7)) + b"\x07\x07",
    idx_bytes(LABELS_MAGIC, (0,), b"\x01"),
    labels_bytes(some_labels(3)) + labels_bytes(some_labels(3)),  # two files concatenated
]

MALFORMED = [
    *(pytest.param(b, id=f"short-magic-{len(b)}") for b in TOO_SHORT_FOR_MAGIC),
    *(pytest.param(b, id=f"short-header-{i}") for i, b in enumerate(SHORTER_THAN_HEADER)),
    *(pytest.param(wrong_magic_file(m), id=f"magic-{m:08x}") for m in WRONG_MAGIC),
    *(pytest.param(b, id=f"truncated-{i}") for i, b in enumerate(TRUNCATED)),
    *(pytest.param(b, id=f"trailing-{i}") for i, b in enumerate(TRAILING)),
]


@pytest.mark.parametrize("data", TOO_SHORT_FOR_MAGIC)
def test_parse_rejects_fewer_than_four_bytes(data):
    with pytest.raises(IdxFormatError, match=f"{len(data)} bytes is shorter than an IDX header"):
        parse_idx(data, name="short.idx")


@pytest.mark.parametrize("data", SHORTER_THAN_HEADER)
def test_parse_rejects_a_file_shorter_than_its_header(data):
    header = 8 if data[3] == 1 else 16
    with pytest.raises(IdxFormatError, match=f"shorter than its {header}-byte IDX header"):
        parse_idx(data)


@pytest.mark.parametrize("magic", WRONG_MAGIC, ids=lambda m: f"{m:08x}")
def test_parse_rejects_a_magic_that_is_not_mnist(magic):
    with pytest.raises(IdxFormatError, match=f"magic number 0x{magic:08x}"):
        parse_idx(wrong_magic_file(magic))


@pytest.mark.parametrize("data", TRUNCATED)
def test_parse_rejects_a_truncated_payload(data):
    with pytest.raises(IdxFormatError, match=rf"truncated: {len(data)} bytes"):
        parse_idx(data)


@pytest.mark.parametrize("data", TRAILING)
def test_parse_rejects_trailing_bytes(data):
    with pytest.raises(IdxFormatError, match=rf"has trailing bytes: {len(data)} bytes"):
        parse_idx(data)


def test_parse_error_names_the_given_name():
    with pytest.raises(IdxFormatError, match=r"^some/file\.idx: "):
        parse_idx(TRUNCATED[0], name="some/file.idx")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("data", MALFORMED)
def test_read_idx_error_names_the_file(tmp_path, data, gz):
    path = write(tmp_path / "bad-idx1-ubyte", data, gz)
    with pytest.raises(IdxFormatError) as info:
        read_idx(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("dims", [(2**22, 2**21, 2**21), (2**31, 2**31, 4)], ids=["2^64", "2^64-b"])
def test_parse_rejects_dims_whose_product_overflows_int64(dims):
    with pytest.raises(IdxFormatError):
        parse_idx(idx_bytes(IMAGES_MAGIC, dims))


# -- gzip ------------------------------------------------------------------------------------

VALID = images_bytes(some_images(3))


def gzip_header() -> bytes:
    """The 10-byte header of a gzip member: magic, deflate, no flags, mtime, xfl, OS."""
    return b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"


CORRUPT_GZIP = {
    "header-then-garbage": gzip_header() + bytes(range(256)) * 4,
    "header-only": gzip_header(),
    "magic-only": b"\x1f\x8b",
    "cut-in-half": gzip.compress(VALID)[: len(gzip.compress(VALID)) // 2],
    "no-trailer": gzip.compress(VALID)[:-8],
    "bad-crc": gzip.compress(VALID)[:-8] + b"\x00\x00\x00\x00" + gzip.compress(VALID)[-4:],
    "garbage-after-member": gzip.compress(VALID) + b"junk",
}


@pytest.mark.parametrize("data", list(CORRUPT_GZIP.values()), ids=list(CORRUPT_GZIP))
def test_corrupt_gzip_raises_idx_format_error_naming_the_file(tmp_path, data):
    path = write(tmp_path / "train-images-idx3-ubyte.gz", data)
    with pytest.raises(IdxFormatError, match="corrupt gzip stream") as info:
        read_idx(path)
    assert str(info.value).startswith(f"{path}: ")


def test_gzip_decompressing_past_max_bytes_is_rejected(tmp_path):
    path = write(tmp_path / "big.gz", bytes(5000), gz=True)
    assert path.stat().st_size < 100  # a small file that inflates: the case the cap is for
    with pytest.raises(IdxFormatError, match="larger than 4999 bytes") as info:
        read_bytes(path, max_bytes=4999)
    assert str(info.value).startswith(f"{path}: ")
    assert read_bytes(path, max_bytes=5000) == bytes(5000)


def test_valid_gzip_idx_past_max_bytes_is_rejected_by_read_idx(tmp_path):
    path = write(tmp_path / "images.gz", VALID, gz=True)
    with pytest.raises(IdxFormatError, match=f"larger than {len(VALID) - 1} bytes"):
        read_idx(path, max_bytes=len(VALID) - 1)
    assert read_idx(path, max_bytes=len(VALID)).shape == (3, 28, 28)


def test_raw_file_past_max_bytes_is_rejected(tmp_path):
    path = write(tmp_path / "images", VALID)
    with pytest.raises(IdxFormatError, match="larger than 100 bytes"):
        read_idx(path, max_bytes=100)


def test_default_cap_admits_the_largest_mnist_file():
    assert MNIST_TRAIN_IMAGES_BYTES <= DEFAULT_MAX_BYTES < 2**30


def test_reading_a_missing_file_raises_a_data_error_naming_it(tmp_path):
    path = tmp_path / "nowhere-idx1-ubyte"
    with pytest.raises(DataError, match="cannot read file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# -- well-formed files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "magic"),
    [
        (some_images(4), IMAGES_MAGIC),
        (some_images(2, rows=3, cols=5), IMAGES_MAGIC),
        (some_images(0), IMAGES_MAGIC),
        (some_labels(9), LABELS_MAGIC),
        (np.array([255, 0, 128], dtype=np.uint8), LABELS_MAGIC),
        (np.zeros(0, dtype=np.uint8), LABELS_MAGIC),
    ],
    ids=["images", "odd-shape", "no-images", "labels", "any-byte", "no-labels"],
)
def test_raw_and_gzip_parse_to_the_same_read_only_uint8_array(tmp_path, array, magic):
    data = idx_bytes(magic, array.shape, array.tobytes())
    raw = read_idx(write(tmp_path / "raw", data))
    packed = read_idx(write(tmp_path / "packed.gz", data, gz=True))
    for parsed in (raw, packed, parse_idx(data)):
        assert parsed.dtype == np.uint8
        assert parsed.shape == array.shape
        np.testing.assert_array_equal(parsed, array)
        assert not parsed.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            parsed[...] = 0


def test_compression_is_detected_from_content_not_name(tmp_path):
    gz_named_plain = write(tmp_path / "plain-idx3-ubyte", VALID, gz=True)
    plain_named_gz = write(tmp_path / "packed-idx3-ubyte.gz", VALID)
    np.testing.assert_array_equal(read_idx(gz_named_plain), read_idx(plain_named_gz))
    assert read_idx(gz_named_plain).tobytes() == VALID[16:]


def test_parse_reads_big_endian_dims():
    data = idx_bytes(IMAGES_MAGIC, (1, 2, 3), bytes(range(6)))
    np.testing.assert_array_equal(parse_idx(data), [[[0, 1, 2], [3, 4, 5]]])


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_mnist_reads_a_folder_of_tiny_valid_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz)
    mnist = load_mnist(tmp_path)
    for key, expected in arrays.items():
        got = getattr(mnist, key)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)
        assert not got.flags.writeable
    assert mnist.train_images.shape == (5, 28, 28)
    assert mnist.test_labels.shape == (3,)


def test_load_mnist_prefers_the_raw_file_when_both_exist(tmp_path):
    write_mnist(tmp_path, gz=True)
    raw_labels = np.array([9, 9, 9, 9, 9], dtype=np.uint8)
    write(tmp_path / FILE_STEMS["train_labels"], labels_bytes(raw_labels))
    np.testing.assert_array_equal(load_mnist(tmp_path).train_labels, raw_labels)


# -- MNIST-specific checks -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    ("key", "data", "message"),
    [
        ("train_images", images_bytes(some_images(5, rows=28, cols=27)), "28x28 pixels"),
        ("test_images", images_bytes(some_images(3, rows=14, cols=14)), "28x28 pixels"),
        ("train_images", labels_bytes(some_labels(5)), "28x28 pixels"),  # 1-D as images
        ("test_labels", images_bytes(some_images(3)), "1-D label file"),  # 3-D as labels
        ("train_labels", labels_bytes(np.array([1, 2, 10, 3, 4])), "label 10 at index 2"),
        ("test_labels", labels_bytes(np.array([0, 255, 1])), "label 255 at index 1"),
        ("train_labels", labels_bytes(some_labels(4)), "4 labels for 5 images"),
        ("test_labels", labels_bytes(some_labels(6)), "6 labels for 3 images"),
        ("train_images", images_bytes(some_images(6)), "5 labels for 6 images"),
        ("test_images", VALID[:-1], "truncated"),
    ],
    ids=[
        "train-28x27",
        "test-14x14",
        "labels-as-images",
        "images-as-labels",
        "train-label-10",
        "test-label-255",
        "fewer-labels",
        "more-labels",
        "more-images",
        "truncated",
    ],
)
def test_load_mnist_rejects_a_malformed_file_naming_it(tmp_path, gz, key, data, message):
    write_mnist(tmp_path, gz, {key: data})
    with pytest.raises(IdxFormatError, match=message) as info:
        load_mnist(tmp_path)
    bad = tmp_path / (FILE_STEMS[key] + (".gz" if gz else ""))
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("shape", [(5, 28, 27), (5, 27, 28), (5, 784), (784,), (1, 1, 28, 28)])
def test_check_images_rejects_anything_but_28x28(shape):
    with pytest.raises(IdxFormatError, match=r"x\.idx: expected images of 28x28") as info:
        check_images(np.zeros(shape, dtype=np.uint8), Path("x.idx"))
    assert str(shape) in str(info.value)


def test_check_images_and_labels_accept_valid_arrays():
    images, labels = some_images(2), np.arange(10, dtype=np.uint8)
    assert check_images(images, Path("i")) is images
    assert check_labels(labels, Path("l")) is labels


@pytest.mark.parametrize("bad", [10, 11, 128, 255])
def test_check_labels_rejects_a_label_above_nine(bad):
    labels = np.array([0, 9, bad, 3], dtype=np.uint8)
    with pytest.raises(IdxFormatError, match=f"l.idx: label {bad} at index 2 is not a digit"):
        check_labels(labels, Path("l.idx"))


# -- property: parse or IdxFormatError, never anything else ----------------------------------


def _parses_or_rejects(data: bytes) -> None:
    try:
        array = parse_idx(data, name="fuzz")
    except IdxFormatError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    # Accepted: then it must be exactly what the header says.
    ndim = {LABELS_MAGIC: 1, IMAGES_MAGIC: 3}[struct.unpack(">I", data[:4])[0]]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    assert array.shape == dims
    assert array.dtype == np.uint8 and not array.flags.writeable
    assert array.tobytes() == data[4 + 4 * ndim :]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_idx_format_error(data):
    _parses_or_rejects(data)


dims_strategy = st.one_of(
    st.tuples(st.integers(0, 2**32 - 1)),
    st.tuples(*[st.integers(0, 2**32 - 1)] * 3),
    st.tuples(*[st.integers(0, 6)] * 3),
)


@st.composite
def mutated_headers(draw) -> bytes:
    """A valid small IDX file, then a few of: another magic, other dims, bytes flipped,
    truncated, extended."""
    magic = draw(st.sampled_from([LABELS_MAGIC, IMAGES_MAGIC]))
    dims = (draw(st.integers(0, 8)),) if magic == LABELS_MAGIC else (2, 3, 4)
    data = bytearray(idx_bytes(magic, dims, bytes(math.prod(dims))))
    if draw(st.booleans()):
        new_magic = draw(
            st.one_of(st.sampled_from([LABELS_MAGIC, IMAGES_MAGIC]), st.integers(0, 2**32 - 1))
        )
        data[:4] = struct.pack(">I", new_magic)
    if draw(st.booleans()):
        new_dims = draw(dims_strategy)
        data[4 : 4 + 4 * len(new_dims)] = struct.pack(f">{len(new_dims)}I", *new_dims)
    for _ in range(draw(st.integers(0, 3))):
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        data = data[:cut]
    data += draw(st.binary(max_size=8))
    return bytes(data)


@given(mutated_headers())
def test_mutated_headers_parse_or_raise_idx_format_error(data):
    _parses_or_rejects(data)


# -- empty data, through the command ---------------------------------------------------------


EMPTY_CASES = {
    # a file whose header counts 0 items, refused before its content is checked
    "train-images-0": ({"train_images": images_bytes(some_images(0))}, "train-images"),
    "test-labels-0": ({"test_labels": labels_bytes(some_labels(0))}, "t10k-labels"),
    "all-0": (
        {
            "train_images": images_bytes(some_images(0)),
            "train_labels": labels_bytes(some_labels(0)),
            "test_images": images_bytes(some_images(0)),
            "test_labels": labels_bytes(some_labels(0)),
        },
        "train-images",
    ),
}


@pytest.mark.parametrize(
    ("case", "split", "verify"),
    [
        ("train-images-0", "reference", True),
        ("test-labels-0", "standard", False),
        ("all-0", "reference", False),
    ],
)
def test_train_on_empty_files_is_one_line_naming_the_file(tmp_path, case, split, verify):
    contents, named = EMPTY_CASES[case]
    write_mnist(tmp_path / "data", gz=False, contents=contents)
    options = ["--split", split, *([] if verify else ["--no-verify"])]
    result = run(
        ["train", *options, "--epochs", "1", "--quiet", "--out", tmp_path / "run"],
        tmp_path,
        data=tmp_path / "data",
    )
    line = assert_one_error_line_ignoring_warnings(result)
    assert f"{named}-idx" in line and "holds no" in line
    assert not (tmp_path / "run").exists()


def test_the_smallest_splits_train_unverified(tmp_path):
    # one image and one label in each file: one training and one test image either way
    write_mnist(
        tmp_path / "data",
        gz=False,
        contents={
            "train_images": images_bytes(some_images(1)),
            "train_labels": labels_bytes(some_labels(1)),
            "test_images": images_bytes(some_images(1)),
            "test_labels": labels_bytes(some_labels(1)),
        },
    )
    result = run(
        ["train", "--no-verify", "--epochs", "2", "--quiet", "--out", "r"],
        tmp_path,
        data=tmp_path / "data",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_split_with_no_training_or_no_test_images_is_refused_naming_it():
    one = Mnist(some_images(1), some_labels(1), some_images(0), some_labels(0))
    for split in ("standard", "reference"):
        with pytest.raises(DataError, match=f"the {split} split of these files has"):
            make_split(one, split, 0)


def assert_one_error_line_ignoring_warnings(result) -> str:
    """As ``assert_one_error_line``, the --no-verify warning aside."""
    kept = [line for line in result.stderr.splitlines() if "WARNING" not in line]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(kept) == 1 and kept[0].startswith("purenet: error: "), result.stderr
    return kept[0]
