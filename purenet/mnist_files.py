"""The four MNIST files: what each must hold, and checking a file or a folder against it.

A file is right when its decompressed IDX bytes have the SHA-256 that the MNIST mirrors'
files decompress to. As a cheap first check, a file whose stored bytes are exactly the
mirrors' ``.gz`` (known SHA-256) is right without decompressing it: that is what the cache
holds, so checking the cache costs one pass of SHA-256 over about 11 MB. Anything else is
decompressed, never past the file's known size, and hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import attrs

from purenet.data import DATA_ENV, FILE_STEMS, find_file
from purenet.errors import DataError, IdxFormatError
from purenet.idx import GZIP_MAGIC, read_bytes, read_dims


@attrs.frozen
class MnistFile:
    """One of the four MNIST files and what its content must be.

    Attributes:
        key: its key in ``purenet.data.FILE_STEMS`` (``"train_images"``, ...).
        stem: the file name without ``.gz``.
        size: the length of the decompressed IDX bytes.
        sha256: SHA-256 of the decompressed IDX bytes (the authority).
        gz_sha256: SHA-256 of the mirrors' ``.gz`` file (a cheap first check).
    """

    key: str
    stem: str
    size: int
    sha256: str
    gz_sha256: str

    @property
    def gz_name(self) -> str:
        return f"{self.stem}.gz"

    @property
    def max_download(self) -> int:
        """The most bytes a mirror may send: gzip never needs much more than its content."""
        return self.size + self.size // 16 + 64 * 1024


def _mnist_file(key: str, n: int, item_bytes: int, sha256: str, gz_sha256: str) -> MnistFile:
    header = 16 if item_bytes > 1 else 8
    return MnistFile(key, FILE_STEMS[key], header + n * item_bytes, sha256, gz_sha256)


FILES: dict[str, MnistFile] = {
    f.key: f
    for f in (
        _mnist_file(
            "train_images",
            60000,
            784,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        _mnist_file(
            "train_labels",
            60000,
            1,
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        _mnist_file(
            "test_images",
            10000,
            784,
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        _mnist_file(
            "test_labels",
            10000,
            1,
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    )
}


# -- checking a file -------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's stored bytes, read in chunks.

    Raises:
        OSError: if the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path, spec: MnistFile) -> str:
    """SHA-256 (hex) of a file's decompressed content, decompressing no further than the
    size ``spec`` allows.

    Raises:
        IdxFormatError: if the file cannot be read, is a broken gzip stream, or
            decompresses past ``spec.size``.
    """
    return hashlib.sha256(read_bytes(path, max_bytes=spec.size)).hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def verify_file(path: Path, key: str) -> tuple[bool, str]:
    """Check a file (raw or gzip) against MNIST's published content for ``key``.

    Args:
        path: the file.
        key: which file it should be, a key of :data:`FILES` (``"train_images"``, ...).

    Returns:
        ``(ok, sha256)``: whether the decompressed IDX bytes are the published ones, and
        their SHA-256 (hex). A file whose stored bytes are the mirrors' ``.gz`` is accepted
        from that hash alone, and the published content hash is returned.

    Raises:
        IdxFormatError: if the file cannot be read, is a broken gzip stream, or
            decompresses past the file's known size (then no content hash exists).
    """
    spec = FILES[key]
    path = Path(path)
    try:
        maybe_mirror_gz = path.stat().st_size <= spec.max_download and _is_gzip(path)
        if maybe_mirror_gz and file_sha256(path) == spec.gz_sha256:
            return True, spec.sha256
    except OSError as exc:
        raise IdxFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    actual = content_sha256(path, spec)
    return actual == spec.sha256, actual


def is_good(path: Path, key: str) -> bool:
    """Whether ``path`` holds MNIST's ``key`` file; an unreadable file does not."""
    try:
        return verify_file(path, key)[0]
    except IdxFormatError:
        return False


# -- checking a folder -----------------------------------------------------------------------


def _wrong_content(path: Path, spec: MnistFile, actual: str | None) -> DataError:
    return DataError(
        f"{path}: not the MNIST {spec.stem} file: expected content SHA-256 "
        f"{spec.sha256}, got {actual}; replace it with the original file, or use "
        f"neither --data nor {DATA_ENV} to get verified files from the download cache"
    )


def check_folder(folder: Path) -> None:
    """Verify the four files in a user's folder (the ones ``load_mnist`` would read).

    Raises:
        DataError: naming the file, if one is missing, unreadable, or has other content
            than MNIST's, with the expected and actual SHA-256.
    """
    for key, spec in FILES.items():
        path = find_file(folder, spec.stem)
        ok, actual = verify_file(path, key)
        if not ok:
            raise _wrong_content(path, spec, actual)


def check_content_hashes(folder: Path, sha256: Mapping[str, str]) -> None:
    """Refuse content hashes that are not MNIST's, as ``load_mnist`` records them in
    ``Mnist.sha256`` / ``Dataset.sha256`` (keyed like ``FILE_STEMS``).

    Checking what was loaded costs nothing more, where :func:`check_folder` decompresses
    every file a second time.

    Raises:
        DataError: naming the first wrong file, with the expected and actual SHA-256.
    """
    for key, spec in FILES.items():
        if sha256.get(key) != spec.sha256:
            raise _wrong_content(find_file(folder, spec.stem), spec, sha256.get(key))


# -- describing a folder ---------------------------------------------------------------------


@attrs.frozen
class FileInfo:
    """What a folder holds for one MNIST file (``path`` is None when it is missing)."""

    spec: MnistFile
    path: Path | None
    stored_bytes: int | None
    dims: tuple[int, ...] | None
    problem: str | None


def describe_folder(folder: Path) -> list[FileInfo]:
    """For each MNIST file: the path ``load_mnist`` would read, its size and header dims
    (no checking of the content)."""
    infos = []
    for spec in FILES.values():
        try:
            path = find_file(folder, spec.stem)
        except DataError:
            infos.append(FileInfo(spec, None, None, None, "missing"))
            continue
        try:
            dims, problem = read_dims(path), None
        except IdxFormatError as exc:
            dims, problem = None, str(exc).removeprefix(f"{path}: ")
        infos.append(FileInfo(spec, path, path.stat().st_size, dims, problem))
    return infos
