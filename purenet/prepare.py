"""Turning a picture of one handwritten digit into an MNIST input, as MNIST was made.

:func:`prepare_digit` is pure: an image array in, a (784,) float32 row out. The steps
are those that made MNIST: greyscale; light ink on a dark background (inverted if the
picture is dark on light); values in [0, 1] with the background at 0; cropped to the
ink; scaled to fit a 20x20 box keeping the aspect ratio; placed in a 28x28 field so that
its centre of mass is at the centre (pixel (14, 14), where MNIST's centres of mass lie
within half a pixel). A digit already prepared this way comes out unchanged, bit for
bit: that is MNIST's test digits but those whose strokes span 19 pixels (scaled to 20)
or that hold specks more than 4 pixels away from the strokes (dropped), 3 in 7,000.
"""

from __future__ import annotations

import math

import numpy as np

from purenet.errors import PurenetError

SIDE = 28  # the field
BOX = 20  # the digit is scaled to fit this square
MARGIN = (SIDE - BOX) // 2
INK_THRESHOLD = 0.1  # strokes: pixels above this fraction of the strongest one
CENTRE = 14.0  # where the centre of mass goes, in pixel indices
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 weights, as Pillow's "L" mode
MIN_CONTRAST = 0.04  # ink must differ from the background by ~10 grey levels of 255


class EmptyImageError(PurenetError):
    """The picture holds no ink: nothing to classify."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """Greyscale in [0, 1], shape (h, w), from an image of shape (h, w), (h, w, 2)
    (grey + alpha), (h, w, 3) (RGB) or (h, w, 4) (RGBA).

    Integer images are divided by their dtype's maximum (255 for uint8, 65535 for
    uint16); float images are taken to be in [0, 1] already. Transparent pixels are laid
    over the colour opposite to the ink's (white under dark ink, black under light ink),
    so a digit drawn on a transparent background keeps its contrast.
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        values = image / np.iinfo(image.dtype).max
    else:
        values = np.clip(image.astype(np.float64), 0.0, 1.0)
    if values.ndim == 2:
        return values
    if values.ndim != 3 or values.shape[2] not in (2, 3, 4):
        raise PurenetError(f"expected an image of shape (h, w[, 2|3|4]), got {image.shape}")
    if values.shape[2] == 3:
        return _luma(values)
    colour, alpha = values[..., :-1], values[..., -1]
    grey = colour[..., 0] if colour.shape[2] == 1 else _luma(colour)
    if alpha.min() >= 1.0:
        return grey
    # The ink is what is opaque: lay it over the colour that contrasts with it.
    ink_is_dark = alpha.sum() == 0 or float(np.average(grey, weights=alpha)) < 0.5
    return grey * alpha + (1.0 if ink_is_dark else 0.0) * (1.0 - alpha)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Grey of RGB pixels (h, w, 3); a grey picture stored as RGB keeps its exact values."""
    same = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0] if same else rgb @ LUMA


def border(grey: np.ndarray) -> np.ndarray:
    """The outermost pixels of ``grey`` (h, w), as a flat array."""
    return np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])


def light_on_dark(grey: np.ndarray) -> np.ndarray:
    """``grey`` (h, w), inverted if its border (the paper) is mostly light."""
    return 1.0 - grey if np.median(border(grey)) > 0.5 else grey


def remove_background(ink: np.ndarray) -> np.ndarray:
    """Light-on-dark ``ink`` (h, w) with the background at 0 and full-strength ink at 1.

    The background level is the border's median plus three robust standard deviations
    (1.4826 median absolute deviations) of it, so paper grain and sensor noise vanish;
    values are rescaled linearly from [level, 1] to [0, 1]. A clean digit on a black
    background (level 0) keeps every pixel as it is.

    Raises:
        EmptyImageError: when nothing stands out of the background.
    """
    edge = border(ink)
    level = np.median(edge)
    floor = level + 3 * 1.4826 * np.median(np.abs(edge - level))
    if float(ink.max()) - floor < MIN_CONTRAST:
        raise EmptyImageError("no ink found: the picture is blank or has no contrast")
    return np.clip((ink - floor) / (1.0 - floor), 0.0, 1.0)


def ink_box(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)``, bottom and right exclusive, of the pixels of
    ``ink`` (h, w) above ``threshold`` times its strongest pixel: where the strokes are,
    ignoring the faint halo that resizing filters and JPEG leave around them."""
    strong = ink > threshold * ink.max()
    rows = np.flatnonzero(strong.any(axis=1))
    cols = np.flatnonzero(strong.any(axis=0))
    if rows.size == 0:
        raise EmptyImageError("no ink found: the picture is blank")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def resample_matrix(
    n_in: int, scale: float, start: float = 0.0, n_out: int | None = None
) -> np.ndarray:
    """Weights of shape (n_out, n_in) that resize a line of ``n_in`` pixels by ``scale``,
    treating pixels as little squares: output pixel ``i`` covers the input interval
    ``[start + i / scale, start + (i + 1) / scale)`` and takes the mean of what it
    covers; beyond the line is background (0). ``n_out`` defaults to
    ``ceil(n_in * scale)``.

    Shrinking thus averages every input pixel in (no aliasing) and undoes a k-fold pixel
    repetition exactly at 1/k; growing blends only where an output pixel straddles two
    input pixels; a scale of 1 with a whole ``start`` is a plain shift.
    """
    if n_out is None:
        n_out = max(1, math.ceil(n_in * scale - 1e-9))
    edges = start + np.arange(n_out + 1) / scale
    low = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
    high = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(high - low, 0.0, None) * scale


def fit_strokes(ink: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Crop ``ink`` (h, w) to its strokes (see :func:`ink_box`) with a margin of 4 pixels
    after scaling, and scale it so the longer side of the strokes' box is 20 pixels.

    The output grid is anchored on the box's edges, so the box covers exactly 20 output
    pixels (not 21 half-covered ones). The margin brings the strokes' faint edges along;
    specks farther out are dropped.

    Returns:
        ``(scaled, box)``: the scaled crop (at most 28 x 28) and the strokes' box in it,
        ``(top, bottom, left, right)``.
    """
    top, bottom, left, right = ink_box(ink)
    scale = BOX / max(bottom - top, right - left)
    spans = [
        (start, math.ceil((stop - start) * scale - 1e-9) + 2 * MARGIN)
        for start, stop in ((top, bottom), (left, right))
    ]
    rows, cols = (
        resample_matrix(n, scale, start - MARGIN / scale, n_out)
        for n, (start, n_out) in zip(ink.shape, spans, strict=True)
    )
    box = (MARGIN, MARGIN + (bottom - top) * scale, MARGIN, MARGIN + (right - left) * scale)
    return rows @ ink @ cols.T, box


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean pixel position of ``ink`` (h, w)."""
    total = ink.sum()
    rows = (ink.sum(axis=1) * np.arange(ink.shape[0])).sum() / total
    cols = (ink.sum(axis=0) * np.arange(ink.shape[1])).sum() / total
    return float(rows), float(cols)


def _offset(mass: float, box_start: float, box_end: float) -> int:
    """Where row (or column) 0 of the picture goes so that ``mass`` lands on
    :data:`CENTRE`, to the nearest pixel, moved only as needed to keep the box of the
    strokes [box_start, box_end) inside the field."""
    offset = int(np.round(CENTRE - mass))
    low, high = math.ceil(-box_start), math.floor(SIDE - box_end)
    return int(np.clip(offset, low, high)) if low <= high else offset


def place_by_mass(ink: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The 28x28 field with ``ink`` (h, w) pasted so that its centre of mass falls on
    (14, 14) (to the nearest pixel, without cutting into ``box``, the strokes'
    ``(top, bottom, left, right)`` in ``ink``); what falls outside is cut off."""
    mass_row, mass_col = centre_of_mass(ink)
    top = _offset(mass_row, box[0], box[1])
    left = _offset(mass_col, box[2], box[3])
    field = np.zeros((SIDE, SIDE))
    h, w = ink.shape
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(SIDE, top + h), min(SIDE, left + w)
    if r0 < r1 and c0 < c1:
        field[r0:r1, c0:c1] = ink[r0 - top : r1 - top, c0 - left : c1 - left]
    return field


def prepare_digit(image: np.ndarray) -> np.ndarray:
    """An MNIST input row from a picture of one handwritten digit.

    Args:
        image: shape (h, w), (h, w, 2), (h, w, 3) or (h, w, 4); any size; integer
            (e.g. uint8) or float in [0, 1]; dark ink on light paper or light on dark.

    Returns:
        Shape (784,), float32 in [0, 1]: the 28x28 field row by row, as the network
        reads MNIST.

    Raises:
        EmptyImageError: when the picture holds no ink.
    """
    grey = to_grey(image)
    if grey.size == 0:
        raise EmptyImageError("the picture has no pixels")
    scaled, box = fit_strokes(remove_background(light_on_dark(grey)))
    field = place_by_mass(np.clip(scaled, 0.0, 1.0), box)
    return field.reshape(SIDE * SIDE).astype(np.float32)
