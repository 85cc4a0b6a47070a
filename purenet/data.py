"""MNIST from a folder, and the train/test splits the experiments use.

The folder holds the four IDX files under their usual names, each either raw or
gzip-compressed (``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``, ...).
Loading checks everything a malformed file could get wrong, converts pixels to float32
in [0, 1] once, and returns read-only arrays in samples x features layout.
"""

from __future__ import annotations

import enum
import hashlib
from pathlib import Path

import attrs
import numpy as np

from purenet.arrays import array_field, frozen_result
from purenet.errors import DataError, IdxFormatError
from purenet.idx import parse_idx, read_bytes
from purenet.seeds import Stream

DATA_ENV = "PURENET_DATA"
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = 10

FILE_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class Split(str, enum.Enum):
    """How the 70,000 MNIST images are divided into train and test sets."""

    REFERENCE = "reference"  # all 70,000 shuffled by the seed, 90% train / 10% test
    STANDARD = "standard"  # the official 60,000 / 10,000


HOW_TO_PROVIDE = (
    f"pass --data DIR or set {DATA_ENV} to a folder holding the four MNIST IDX files "
    f"({', '.join(s + '[.gz]' for s in FILE_STEMS.values())})"
)


def find_file(folder: Path, stem: str) -> Path:
    """The path of ``stem`` or ``stem.gz`` in ``folder`` (the raw file wins)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / stem}[.gz] not found: {HOW_TO_PROVIDE}")


@attrs.frozen
class Mnist:
    """The four MNIST arrays as stored in the files.

    Attributes:
        train_images: uint8, shape (60000, 28, 28).
        train_labels: uint8, shape (60000,), values 0..9.
        test_images: uint8, shape (10000, 28, 28).
        test_labels: uint8, shape (10000,), values 0..9.
        sha256: SHA-256 of each file's decompressed IDX bytes, keyed as ``FILE_STEMS``
            (empty when the arrays did not come from files).
    """

    train_images: np.ndarray = array_field()
    train_labels: np.ndarray = array_field()
    test_images: np.ndarray = array_field()
    test_labels: np.ndarray = array_field()
    sha256: dict[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class Dataset:
    """A train/test split ready for the network.

    Attributes:
        x_train: float32 pixels in [0, 1], shape (m_train, 784), one image per row.
        y_train: int64 labels 0..9, shape (m_train,).
        x_test: float32 pixels in [0, 1], shape (m_test, 784).
        y_test: int64 labels 0..9, shape (m_test,).
        sha256: content hashes of the files it was made from (see :class:`Mnist`).
    """

    x_train: np.ndarray = array_field()
    y_train: np.ndarray = array_field()
    x_test: np.ndarray = array_field()
    y_test: np.ndarray = array_field()
    sha256: dict[str, str] = attrs.field(factory=dict, hash=False)


def _not_empty(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    if len(array) == 0:
        raise IdxFormatError(
            f"{path}: holds no {what} (its header says 0); replace it with the MNIST file"
        )
    return array


def check_images(images: np.ndarray, path: Path) -> np.ndarray:
    """Check that an IDX array holds one or more 28x28 images."""
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise IdxFormatError(
            f"{path}: expected images of {IMAGE_SIDE}x{IMAGE_SIDE} pixels, "
            f"got an array of shape {images.shape}"
        )
    return _not_empty(images, path, "images")


def check_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """Check that an IDX array holds one or more digit labels 0..9."""
    if labels.ndim != 1:
        raise IdxFormatError(f"{path}: expected a 1-D label file, got shape {labels.shape}")
    _not_empty(labels, path, "labels")
    if labels.size and int(labels.max()) >= N_CLASSES:
        bad = int(np.argmax(labels >= N_CLASSES))
        raise IdxFormatError(f"{path}: label {int(labels[bad])} at index {bad} is not a digit 0..9")
    return labels


def _read_hashed(folder: Path, key: str, hashes: dict[str, str]) -> tuple[np.ndarray, Path]:
    path = find_file(folder, FILE_STEMS[key])
    data = read_bytes(path)
    hashes[key] = hashlib.sha256(data).hexdigest()
    return parse_idx(data, name=str(path)), path


def _load_pair(
    folder: Path, images_key: str, labels_key: str, hashes: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    images, images_path = _read_hashed(folder, images_key, hashes)
    labels, labels_path = _read_hashed(folder, labels_key, hashes)
    check_images(images, images_path)
    check_labels(labels, labels_path)
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images, labels


def load_mnist(folder: Path) -> Mnist:
    """Read and validate the four MNIST files in ``folder``, hashing their content.

    Raises:
        DataError: naming the file, if one is missing or malformed.
    """
    folder = Path(folder)
    hashes: dict[str, str] = {}
    train_images, train_labels = _load_pair(folder, "train_images", "train_labels", hashes)
    test_images, test_labels = _load_pair(folder, "test_images", "test_labels", hashes)
    return Mnist(train_images, train_labels, test_images, test_labels, hashes)


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, 28, 28) -> float32 rows (n, 784) in [0, 1], read-only.

    The result is a fresh array marked read-only in place, so a :class:`Dataset` takes
    it without a second copy (198 MB for the reference training set).
    """
    flat = images.reshape(len(images), -1)
    out = np.empty(flat.shape, dtype=np.float32)
    np.divide(flat, np.float32(255), out=out, dtype=np.float32)
    return frozen_result(out)


def _check_parts(mnist: Mnist, split: Split) -> None:
    """Refuse a split with no training or no test images (possible only with files that
    hold fewer than 2 images, which loading refuses; arrays can come from elsewhere)."""
    if split is Split.STANDARD:
        n_train, n_test = len(mnist.train_labels), len(mnist.test_labels)
    else:
        n_all = len(mnist.train_labels) + len(mnist.test_labels)
        n_train = (n_all * 9) // 10
        n_test = n_all - n_train
    if n_train == 0 or n_test == 0:
        raise DataError(
            f"the {split.value} split of these files has {n_train} training and {n_test} "
            "test images; it needs at least one of each"
        )


def make_split(mnist: Mnist, split: Split | str, seed: int) -> Dataset:
    """Divide MNIST into a :class:`Dataset` as ``split`` says.

    ``reference`` pools all 70,000 images, shuffles them with a permutation that is a pure
    function of ``seed``, and keeps the first 90% for training (63,000 / 7,000).
    ``standard`` keeps the official 60,000 / 10,000 and ignores the seed.

    Raises:
        DataError: naming the split, if its train or test part would be empty.
    """
    split = Split(split)
    _check_parts(mnist, split)
    if split is Split.STANDARD:
        return Dataset(
            scale_pixels(mnist.train_images),
            mnist.train_labels.astype(np.int64),
            scale_pixels(mnist.test_images),
            mnist.test_labels.astype(np.int64),
            mnist.sha256,
        )
    images = np.concatenate([mnist.train_images, mnist.test_images])
    labels = np.concatenate([mnist.train_labels, mnist.test_labels]).astype(np.int64)
    order = np.random.default_rng([seed, Stream.SPLIT]).permutation(len(images))
    n_train = (len(images) * 9) // 10
    train, test = order[:n_train], order[n_train:]
    return Dataset(
        scale_pixels(images[train]),
        labels[train],
        scale_pixels(images[test]),
        labels[test],
        mnist.sha256,
    )


def load_dataset(folder: Path, split: Split | str, seed: int) -> Dataset:
    """``load_mnist`` then ``make_split``."""
    return make_split(load_mnist(folder), split, seed)
