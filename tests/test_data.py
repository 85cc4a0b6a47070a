"""Loading the real MNIST and splitting it (purenet.data), and finding the data folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from purenet.data import (
    DATA_ENV,
    FILE_STEMS,
    Split,
    load_mnist,
    make_split,
)
from purenet.data_folder import DataFolder, Source, locate
from purenet.errors import DataError, IdxFormatError

# Known facts from the shared MNIST README.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)


@pytest.fixture(scope="module")
def standard(mnist):
    return make_split(mnist, "standard", 0)


def image_keys(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One sortable (projection, label) key per image: equal multisets of keys mean the same
    images with the same labels, in some order."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    projection = flat @ np.random.default_rng(123).standard_normal(flat.shape[1])
    keys = np.stack([projection, labels.astype(np.float64)], axis=1)
    return keys[np.lexsort(keys.T[::-1])]


# -- load_mnist on the real files ------------------------------------------------------------


def test_load_mnist_shapes_and_dtypes(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    for array in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert array.dtype == np.uint8


def test_label_counts_per_digit(mnist):
    assert np.bincount(mnist.train_labels, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == TEST_COUNTS


def test_first_labels(mnist):
    assert mnist.train_labels[:10].tolist() == FIRST_TRAIN_LABELS
    assert mnist.test_labels[:10].tolist() == FIRST_TEST_LABELS


def test_pixels_use_the_whole_byte_range(mnist):
    assert int(mnist.train_images.min()) == 0 and int(mnist.train_images.max()) == 255


def test_loaded_arrays_are_read_only(mnist):
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        array = getattr(mnist, name)
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array.flat[0] = 1


# -- splits ----------------------------------------------------------------------------------


def test_scaled_training_pixels_have_the_known_mean_and_std(standard):
    x = standard.x_train
    assert x.mean(dtype=np.float64) == pytest.approx(PIXEL_MEAN, abs=1e-4)
    assert x.std(dtype=np.float64) == pytest.approx(PIXEL_STD, abs=1e-4)


@pytest.mark.parametrize("split", ["standard", "reference"])
def test_split_pixels_are_float32_in_unit_interval_and_labels_int64(
    split, standard, reference_data
):
    data = standard if split == "standard" else reference_data
    for x in (data.x_train, data.x_test):
        assert x.dtype == np.float32
        assert x.shape[1] == 784
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    for y in (data.y_train, data.y_test):
        assert y.dtype == np.int64
        assert set(np.unique(y).tolist()) == set(range(10))


@pytest.mark.parametrize("split", ["standard", "reference"])
def test_split_arrays_are_read_only(split, standard, reference_data):
    data = standard if split == "standard" else reference_data
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = getattr(data, name)
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array.flat[0] = 0


def test_standard_split_is_the_official_files_in_order(mnist, standard):
    assert standard.x_train.shape == (60000, 784)
    assert standard.x_test.shape == (10000, 784)
    np.testing.assert_array_equal(standard.y_train, mnist.train_labels)
    np.testing.assert_array_equal(standard.y_test, mnist.test_labels)
    np.testing.assert_array_equal(
        np.rint(standard.x_train * 255).astype(np.uint8), mnist.train_images.reshape(60000, 784)
    )
    np.testing.assert_array_equal(
        np.rint(standard.x_test * 255).astype(np.uint8), mnist.test_images.reshape(10000, 784)
    )


def test_standard_split_ignores_the_seed(mnist, standard):
    assert make_split(mnist, Split.STANDARD, 7) == standard


def test_reference_split_is_63000_by_7000(reference_data):
    assert reference_data.x_train.shape == (63000, 784)
    assert reference_data.y_train.shape == (63000,)
    assert reference_data.x_test.shape == (7000, 784)
    assert reference_data.y_test.shape == (7000,)


def test_reference_split_keeps_every_label(reference_data):
    together = np.concatenate([reference_data.y_train, reference_data.y_test])
    official = np.add(TRAIN_COUNTS, TEST_COUNTS).tolist()
    assert np.bincount(together, minlength=10).tolist() == official
    assert sum(official) == 70000


def test_reference_split_is_a_permutation_of_all_70000_images(mnist, reference_data):
    pooled_images = np.concatenate([mnist.train_images, mnist.test_images])
    pooled_labels = np.concatenate([mnist.train_labels, mnist.test_labels])
    split_images = np.rint(
        np.concatenate([reference_data.x_train, reference_data.x_test]) * 255
    ).astype(np.uint8)
    split_labels = np.concatenate([reference_data.y_train, reference_data.y_test])
    np.testing.assert_array_equal(
        image_keys(split_images, split_labels), image_keys(pooled_images, pooled_labels)
    )


def test_reference_split_shuffles(mnist, reference_data):
    # Unshuffled, the split would be the pooled labels in file order; shuffled, a label
    # matches the file-order label at its position only by chance (about 10%).
    file_order = np.concatenate([mnist.train_labels, mnist.test_labels])
    assert np.mean(reference_data.y_train == file_order[:63000]) < 0.2
    assert np.mean(reference_data.y_test == file_order[63000:]) < 0.2


def test_reference_split_is_a_function_of_the_seed(mnist, reference_data):
    again = make_split(mnist, "reference", 0)
    assert again == reference_data
    np.testing.assert_array_equal(again.x_test, reference_data.x_test)
    other = make_split(mnist, Split.REFERENCE, 1)
    assert not np.array_equal(other.y_train, reference_data.y_train)
    assert not np.array_equal(other.x_test, reference_data.x_test)
    assert other.x_train.shape == (63000, 784)


def test_unknown_split_is_rejected(mnist):
    with pytest.raises(ValueError, match="foo"):
        make_split(mnist, "foo", 0)


# -- locating the data folder -----------------------------------------------------------------


def test_explicit_folder_wins_over_the_environment_and_the_run(tmp_path, monkeypatch):
    option, env = tmp_path / "option", tmp_path / "env"
    option.mkdir()
    env.mkdir()
    monkeypatch.setenv(DATA_ENV, str(env))
    assert locate(option, recorded=tmp_path) == DataFolder(option, Source.OPTION)


def test_environment_is_used_without_an_option(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert locate() == DataFolder(tmp_path, Source.ENV)
    assert locate(None, recorded=tmp_path / "recorded") == DataFolder(tmp_path, Source.ENV)


def test_option_with_a_tilde_is_expanded(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert locate(Path("~/mnist")).path == tmp_path / "mnist"


@pytest.mark.parametrize("env", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_no_folder_at_all_means_the_run_s_folder_else_the_cache(tmp_path, monkeypatch, env):
    if env is None:
        monkeypatch.delenv(DATA_ENV, raising=False)
    else:
        monkeypatch.setenv(DATA_ENV, env)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = DataFolder(tmp_path / "xdg" / "purenet" / "mnist", Source.CACHE)
    assert locate() == cache
    assert locate(recorded=tmp_path) == DataFolder(tmp_path, Source.RUN)
    assert locate(recorded=str(tmp_path / "gone")) == cache  # a folder since removed
    assert not cache.path.exists()  # locating never creates it


@pytest.mark.parametrize("via", ["option", "env"])
def test_missing_folder_is_a_data_error_naming_it(tmp_path, monkeypatch, via):
    missing = tmp_path / "not-here"
    if via == "option":
        monkeypatch.setenv(DATA_ENV, str(tmp_path))  # an existing env folder must not rescue it
        call = lambda: locate(missing)  # noqa: E731
    else:
        monkeypatch.setenv(DATA_ENV, str(missing))
        call = lambda: locate(None, recorded=tmp_path)  # noqa: E731
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert f"{missing} does not exist" in message
    assert "--data" in message and DATA_ENV in message


def test_a_file_is_not_a_data_folder(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(DataError, match="does not exist"):
        locate(file)


# -- missing files ---------------------------------------------------------------------------


def _idx(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_tiny_mnist(folder, gz: bool) -> None:
    images, labels = np.zeros((2, 28, 28), np.uint8), np.array([3, 4], np.uint8)
    for key, stem in FILE_STEMS.items():
        data = _idx(0x803, images) if key.endswith("images") else _idx(0x801, labels)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("missing", list(FILE_STEMS))
def test_missing_file_is_a_data_error_naming_it(tmp_path, gz, missing):
    write_tiny_mnist(tmp_path, gz)
    assert load_mnist(tmp_path).train_labels.tolist() == [3, 4]
    stem = FILE_STEMS[missing]
    (tmp_path / (stem + (".gz" if gz else ""))).unlink()
    with pytest.raises(DataError, match="not found") as info:
        load_mnist(tmp_path)
    assert not isinstance(info.value, IdxFormatError)
    assert f"{tmp_path / stem}[.gz] not found" in str(info.value)
    assert DATA_ENV in str(info.value)


def test_empty_folder_names_the_first_missing_file(tmp_path):
    with pytest.raises(DataError, match=FILE_STEMS["train_images"]):
        load_mnist(tmp_path)
