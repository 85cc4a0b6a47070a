"""Reading a picture file into an array, with Pillow.

Pillow comes with matplotlib, so this adds no dependency. Only the common picture formats
are opened (PNG, JPEG, BMP, GIF, WebP, TIFF, as far as the installed Pillow reads them):
anything else is refused before a decoder runs. So is what is not a regular file (a FIFO
would block the read forever), and a picture whose header declares more than
:data:`MAX_PIXELS` pixels, before it is decoded: a small file can declare a huge picture
(a 348 KB PNG decodes to 9000 x 9000), and preparing a digit takes about 50 bytes per
pixel. The result is an array that :func:`purenet.prepare.prepare_digit` accepts.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from purenet.errors import PurenetError

WANTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
# 4096 x 4096: a 12-megapixel phone photo fits; preparing it then takes under 1 GB.
MAX_PIXELS = 4096 * 4096


class ImageReadError(PurenetError):
    """A file is missing, unreadable, not a regular file, too large, or not a picture in
    one of :func:`formats`."""


def formats() -> tuple[str, ...]:
    """The picture formats read: those of :data:`WANTED_FORMATS` the installed Pillow
    can decode (WebP needs Pillow built with libwebp)."""
    Image.init()
    return tuple(
        name
        for name in WANTED_FORMATS
        if name in Image.OPEN and (name != "WEBP" or features.check("webp"))
    )


def format_names() -> str:
    """:func:`formats` as a user reads them: ``PNG, JPEG, BMP, GIF, WebP or TIFF``."""
    names = [{"WEBP": "WebP"}.get(name, name) for name in formats()]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def _as_array(image: Image.Image) -> np.ndarray:
    """Pixels as (h, w) grey, (h, w, 2) grey + alpha, (h, w, 3) RGB or (h, w, 4) RGBA;
    uint8, or uint16 for 16-bit greyscale."""
    if image.mode.startswith("I"):  # 16- or 32-bit greyscale
        return np.clip(np.asarray(image, dtype=np.int64), 0, 65535).astype(np.uint16)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, F, ...
    return np.asarray(image)


def _open_regular_file(path: Path) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file.

    Opened without blocking, then checked: opening a FIFO for reading would otherwise
    wait for a writer forever.

    Raises:
        ImageReadError: for a folder, FIFO, device or socket.
        OSError: if it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ImageReadError(f"{path}: is a folder, not an image")
        if not stat.S_ISREG(mode):
            raise ImageReadError(
                f"{path}: not a regular file (a pipe, device or socket); give a picture file"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_size(image: Image.Image, path: Path) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: {width} x {height} pixels is more than the {MAX_PIXELS:,} purenet "
            "reads; scale the picture down (a digit needs far fewer)"
        )


def read_image(path: Path) -> np.ndarray:
    """The pixels of the picture file at ``path`` (its first frame, for an animation),
    turned upright as its EXIF orientation says (phone photos).

    Returns:
        uint8 (or uint16) array of shape (h, w), (h, w, 2), (h, w, 3) or (h, w, 4).

    Raises:
        ImageReadError: one line naming ``path`` when it does not exist, cannot be read,
            is not a regular file, is not a picture in one of :func:`formats`, declares
            more than :data:`MAX_PIXELS` pixels, or is damaged.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open_regular_file(path) as file, Image.open(file, formats=formats()) as image:
                _check_size(image, path)  # from the header, before any pixel is decoded
                return _as_array(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a {format_names()} image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"{path}: too many pixels to be a picture of a digit") from None
    except MemoryError:
        raise ImageReadError(f"{path}: too large to read in the memory available") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ImageReadError(f"{path}: damaged or unreadable image ({reason})") from None
