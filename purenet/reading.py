"""Reading files that may be damaged or crafted: never hang, never allocate more than
the caller expects, never unpickle, and fail with one line naming the file.

- Only regular files are read. A file is opened without blocking and checked with
  ``fstat`` before any read, so a FIFO, a device or a folder is refused at once instead
  of hanging (no race between the check and the open: the check is on the open file).
- Every read has a size limit given by the caller (what a file of its kind can hold),
  so a huge file is refused before its content is read.
- An ``.npz`` member is accepted only if its ``.npy`` header declares the shape and dtype
  expected of it: the header alone is read first, so memory stays bounded by what the
  caller expects whatever the file claims. Object arrays are never loaded.

Every failure raises :class:`purenet.errors.FileError` naming the file.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy

from purenet.errors import FileError

# An npz member costs a little more than its array: the zip entry's local and central
# headers (with its name and zip64 extras) and the .npy header, at most a few hundred
# bytes each; this bound leaves ample room.
MEMBER_OVERHEAD = 4096
# Members are read only up to their expected size, so the file's size matters only to
# bound the zip directory that is read first; the slack lets a file of a wider dtype
# (float64, complex) be read far enough to say what is wrong with it.
SIZE_SLACK = 8
NPY_HEADER_LIMIT = 10_000  # numpy's own bound on a header it will parse

# The errors that parsing damaged zip or .npy bytes may raise (besides FileError).
_DAMAGED = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    NotImplementedError,  # an unsupported compression method
    RuntimeError,  # an encrypted member
    zlib.error,
    struct.error,
    KeyError,
    OverflowError,
    UnicodeDecodeError,
    SyntaxError,
)


def open_regular(path: os.PathLike | str) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file.

    Raises:
        FileError: if it does not exist, cannot be opened, or is not a regular file
            (a FIFO, device or folder), without blocking on it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileError(f"{path}: file not found") from None
    except OSError as exc:
        raise FileError(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileError(f"{path}: not a regular file ({_kind(mode)}); refusing to read it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _size_checked(fh: BinaryIO, path, limit: int, what: str) -> int:
    size = os.fstat(fh.fileno()).st_size
    if size > limit:
        raise FileError(f"{path}: {size} bytes, more than {what} can hold ({limit}); not read")
    return size


def read_bytes(path: os.PathLike | str, limit: int, what: str = "such a file") -> bytes:
    """The content of the regular file ``path``, refused if larger than ``limit`` bytes
    (``what`` names what the file should be, for the message)."""
    with open_regular(path) as fh:
        _size_checked(fh, path, limit, what)
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise FileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:  # it grew since fstat
        raise FileError(f"{path}: more than {what} can hold ({limit} bytes); not read")
    return data


def read_text(path: os.PathLike | str, limit: int, what: str = "such a file") -> str:
    """The UTF-8 text of ``path`` (see :func:`read_bytes`)."""
    try:
        return read_bytes(path, limit, what).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json(path: os.PathLike | str, limit: int = 1 << 20) -> object:
    """The JSON value in ``path`` (at most ``limit`` bytes). Deep nesting, integers of
    thousands of digits and other malformed text raise :class:`FileError`."""
    text = read_text(path, limit, "a purenet JSON file")
    try:
        return json.loads(text)
    except RecursionError:
        raise FileError(f"{path}: not readable JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and an integer too long to convert
        raise FileError(f"{path}: not readable JSON ({exc})") from None


def read_npz(
    path: os.PathLike | str, expected: Mapping[str, tuple[tuple[int, ...], np.dtype]]
) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path`` whose names are in ``expected``.

    Args:
        path: the file.
        expected: for each array name that may be present, its shape and dtype. Members
            under other names are left unread; missing names are the caller's concern.

    Returns:
        Read-only arrays by name, each of exactly the expected shape and dtype.

    Raises:
        FileError: if the file is not a regular file, far larger than the expected
            arrays can make, not a zip archive, or a member is damaged, holds object arrays or
            declares another shape or dtype than expected (checked from its header,
            before its data is read).
    """
    wanted = {f"{name}.npy": name for name in expected}
    limit = sum(
        SIZE_SLACK * _nbytes(shape, np.dtype(dtype)) + MEMBER_OVERHEAD
        for shape, dtype in expected.values()
    )
    with open_regular(path) as fh:
        _size_checked(fh, path, limit + MEMBER_OVERHEAD, "a snapshot of this run")
        if fh.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX:
            raise FileError(f"{path}: a single .npy array, not an .npz archive of a snapshot")
        fh.seek(0)
        try:
            with zipfile.ZipFile(fh) as archive:
                arrays = {}
                for info in archive.infolist():
                    name = wanted.get(info.filename)
                    if name is not None:
                        shape, dtype = expected[name]
                        with archive.open(info) as member:
                            arrays[name] = _member_array(member, name, shape, np.dtype(dtype))
                return arrays
        except FileError as exc:
            raise FileError(f"{path}: not a readable snapshot: {exc}") from None
        except _DAMAGED as exc:
            raise FileError(f"{path}: not a readable snapshot: corrupt ({exc})") from None


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for n in shape:
        count *= n
    return count * dtype.itemsize


def _member_array(member: BinaryIO, name: str, shape: tuple[int, ...], dtype: np.dtype):
    """The array of one ``.npy`` member, its header checked before its data is read."""
    version = npy.read_magic(member)
    if version == (1, 0):
        header = npy.read_array_header_1_0(member, max_header_size=NPY_HEADER_LIMIT)
    elif version == (2, 0):
        header = npy.read_array_header_2_0(member, max_header_size=NPY_HEADER_LIMIT)
    else:
        raise FileError(f"{name}: .npy format version {version} is not one purenet reads")
    declared, fortran_order, declared_dtype = header
    if declared_dtype.hasobject:
        raise FileError(f"{name} holds object arrays, which purenet never loads")
    if tuple(declared) != tuple(shape):
        raise FileError(f"{name} declares shape {tuple(declared)}, expected {tuple(shape)}")
    if declared_dtype != dtype:
        raise FileError(f"{name} holds {declared_dtype}, expected {dtype}")
    nbytes = _nbytes(shape, dtype)
    data = member.read(nbytes + 1)  # reading past the end makes zipfile check the CRC
    if len(data) != nbytes:
        raise FileError(f"{name} holds {len(data)} bytes of data, expected {nbytes}")
    array = np.frombuffer(data, dtype=dtype)  # read-only: it views the bytes
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)
