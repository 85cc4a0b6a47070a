"""A strict reader for the IDX format that MNIST is distributed in.

An IDX file is a 4-byte magic number ``00 00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then exactly ``prod(dims)`` bytes of data. MNIST only uses unsigned
bytes (dtype ``0x08``) with 1 dimension (labels, magic ``0x00000801``) or 3 dimensions
(images, magic ``0x00000803``), so those are the only forms accepted. Files may be raw or
gzip-compressed; compression is detected from the content, not the name.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from purenet.arrays import readonly_array
from purenet.errors import IdxFormatError

ACCEPTED_MAGICS = {0x00000801: 1, 0x00000803: 3}
GZIP_MAGIC = b"\x1f\x8b"

# Larger than any MNIST file (train images: 47,040,016 bytes). Decompression stops past
# it, so a hostile or broken gzip stream cannot fill memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file into a read-only uint8 array.

    Args:
        data: the whole file content.
        name: how to name the file in error messages.

    Returns:
        A read-only ``uint8`` array of shape ``dims`` (``(n,)`` or ``(n, rows, cols)``).

    Raises:
        IdxFormatError: when the header is short, the magic is not one of
            ``0x00000801`` / ``0x00000803``, or the length is not exactly
            header + product of dims.
    """
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes is shorter than an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    if magic not in ACCEPTED_MAGICS:
        raise IdxFormatError(
            f"{name}: magic number 0x{magic:08x} is not an MNIST IDX file "
            "(expected 0x00000801 for labels or 0x00000803 for images)"
        )
    ndim = ACCEPTED_MAGICS[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(
            f"{name}: {len(data)} bytes is shorter than its {header}-byte IDX header"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)  # Python ints: no overflow for hostile dims
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{name}: file {kind}: {len(data)} bytes, but its header "
            f"(dims {'x'.join(map(str, dims))}) needs exactly {expected}"
        )
    # a view of ``data`` (no copy when it is immutable bytes), marked read-only
    return readonly_array(np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims))


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a file, decompressing it if it is gzip, and return at most ``max_bytes``.

    Raises:
        IdxFormatError: if the gzip stream is corrupt or decompresses past ``max_bytes``.
        DataError: if the file cannot be read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head != GZIP_MAGIC:
                data = fh.read(max_bytes + 1)
            else:
                try:
                    with gzip.GzipFile(fileobj=fh) as gz:
                        data = gz.read(max_bytes + 1)
                except (OSError, EOFError, zlib.error) as exc:
                    raise IdxFormatError(f"{path}: corrupt gzip stream ({exc})") from None
    except IdxFormatError:
        raise
    except OSError as exc:
        raise IdxFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise IdxFormatError(f"{path}: larger than {max_bytes} bytes, not an MNIST file")
    return data


def read_idx(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read and parse an IDX file (raw or gzip) into a read-only uint8 array."""
    return parse_idx(read_bytes(path, max_bytes), name=str(path))


def _read_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file's content, decompressing it if it is gzip."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not gz:
            return raw.read(n)
        with gzip.GzipFile(fileobj=raw) as fh:
            return fh.read(n)


def read_dims(path: Path) -> tuple[int, ...]:
    """The dimensions in an IDX file's header (raw or gzip), reading only the header.

    Raises:
        IdxFormatError: if the header is unreadable or not an MNIST IDX header.
    """
    try:
        head = _read_head(path, 16)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxFormatError(f"{path}: unreadable header ({exc})") from None
    magic = struct.unpack(">I", head[:4])[0] if len(head) >= 4 else None
    ndim = ACCEPTED_MAGICS.get(magic)
    if ndim is None or len(head) < 4 + 4 * ndim:
        raise IdxFormatError(f"{path}: not an MNIST IDX header")
    return struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
