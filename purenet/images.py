"""Reading a picture file (PNG or JPEG) into an array, with Pillow.

Pillow comes with matplotlib, so this adds no dependency. Only PNG and JPEG are opened:
anything else is refused before a decoder runs. The result is an array that
:func:`purenet.prepare.prepare_digit` accepts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from purenet.errors import PurenetError

FORMATS = ("PNG", "JPEG")


class ImageReadError(PurenetError):
    """A file is missing, unreadable, or not a PNG or JPEG picture."""


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


def read_image(path: Path) -> np.ndarray:
    """The pixels of the PNG or JPEG file at ``path``, turned upright as its EXIF
    orientation says (phone photos).

    Returns:
        uint8 (or uint16) array of shape (h, w), (h, w, 2), (h, w, 3) or (h, w, 4).

    Raises:
        ImageReadError: one line naming ``path`` when it does not exist, cannot be read,
            is not a PNG or JPEG picture, is damaged, or is implausibly large.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                return _as_array(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a PNG or JPEG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(f"{path}: too many pixels to be a picture of a digit") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ImageReadError(f"{path}: damaged or unreadable image ({reason})") from None
