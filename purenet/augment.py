"""Random distortions of training images, in NumPy: a pure function of a key.

Two kinds, both applied per image with parameters drawn from
``np.random.default_rng(key)``:

- integer shifts of up to ``max_shift`` pixels in each direction (exact: the ink that
  stays in the frame keeps its values; what moves in is 0);
- a small affine map (rotation up to ``max_rotate`` degrees, scaling by up to
  ``max_scale``, translation up to ``max_shift`` pixels), resampled bilinearly.

Images are rows of 784 pixels in [0, 1] (28 x 28, row-major); outputs stay in [0, 1].
"""

from __future__ import annotations

import numpy as np

SIDE = 28


def _gather(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``padded[i, rows[i, ...], cols[i, ...]]`` for every image ``i``, through one flat
    ``np.take`` (much cheaper than three-array fancy indexing)."""
    n, height, width = padded.shape
    flat = (np.arange(n) * (height * width))[:, None, None] + rows * width + cols
    return np.take(padded.reshape(-1), flat)


def shift_images(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Move image ``i`` of ``x`` (B, 784) down by ``dy[i]`` and right by ``dx[i]`` pixels
    (negative: up / left), filling with 0. Returns a new (B, 784) array.

    In a row-major image, a shift by (dy, dx) is a shift of the flat row of pixels by
    ``dy * 28 + dx``: each output row is one contiguous window of the input row with zeros
    on both sides. Only the pixels that a horizontal shift carries across the edge of a
    line land in the neighbouring line, so those columns are then cleared.
    """
    n, pixels = x.shape
    dy, dx = np.asarray(dy), np.asarray(dx)
    if dy.dtype.kind not in "iu" or dx.dtype.kind not in "iu":
        raise TypeError(f"shifts must be whole numbers of pixels, got {dy.dtype} and {dx.dtype}")
    dy, dx = dy.astype(np.intp), dx.astype(np.intp)  # (no int8 overflow below)
    reach = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    margin = reach * (SIDE + 1)  # the longest flat shift
    padded = np.zeros((n, pixels + 2 * margin), x.dtype)
    padded[:, margin : margin + pixels] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, pixels, axis=1)
    out = windows[np.arange(n), margin - (dy * SIDE + dx)]  # a copy: (B, 784)
    source_column = np.arange(SIDE) - dx[:, None]  # (B, 28)
    wrapped = (source_column < 0) | (source_column >= SIDE)
    np.copyto(out.reshape(n, SIDE, SIDE), 0, where=wrapped[:, None, :])
    return out


def affine_images(
    x: np.ndarray, angle: np.ndarray, scale: np.ndarray, ty: np.ndarray, tx: np.ndarray
) -> np.ndarray:
    """Rotate image ``i`` by ``angle[i]`` radians about its centre, scale it by
    ``scale[i]`` and move it by (``ty[i]``, ``tx[i]``) pixels; bilinear resampling, 0
    outside the image. ``x`` is (B, 784); returns a new (B, 784) array in [0, 1]."""
    n, dtype = len(x), x.dtype
    centre = (SIDE - 1) / 2
    grid = np.arange(SIDE, dtype=dtype) - centre
    oy, ox = grid[None, :, None], grid[None, None, :]  # output coordinates about the centre
    cos = np.cos(angle).astype(dtype)[:, None, None]
    sin = np.sin(angle).astype(dtype)[:, None, None]
    inv = (1 / scale).astype(dtype)[:, None, None]
    py = oy - ty.astype(dtype)[:, None, None]
    px = ox - tx.astype(dtype)[:, None, None]
    # Where each output pixel comes from: the inverse map R(-angle) (p - t) / scale, in
    # the coordinates of the image padded by PAD zeros, clipped into that zero border.
    pad = 2
    limit = SIDE + 2 * pad - 1
    sy = np.clip((cos * py - sin * px) * inv + (centre + pad), 0, limit)
    sx = np.clip((sin * py + cos * px) * inv + (centre + pad), 0, limit)
    y0 = np.minimum(sy.astype(np.intp), limit - 1)  # floor, as sy >= 0
    x0 = np.minimum(sx.astype(np.intp), limit - 1)
    wy, wx = sy - y0.astype(dtype), sx - x0.astype(dtype)
    padded = np.pad(x.reshape(n, SIDE, SIDE), ((0, 0), (pad, pad), (pad, pad)))
    top = _gather(padded, y0, x0) * (1 - wx) + _gather(padded, y0, x0 + 1) * wx
    bottom = _gather(padded, y0 + 1, x0) * (1 - wx) + _gather(padded, y0 + 1, x0 + 1) * wx
    return np.clip(top * (1 - wy) + bottom * wy, 0, 1).reshape(n, -1)


def augment(
    x: np.ndarray,
    key: tuple[int, ...],
    max_shift: int = 0,
    max_rotate: float = 0.0,
    max_scale: float = 0.0,
) -> np.ndarray:
    """A randomly distorted copy of the batch ``x`` (B, 784), drawn from ``key``.

    With only ``max_shift`` set, images move by whole pixels (cheap, exact); with a
    rotation (degrees) or scale, each image gets a random affine map. With nothing set,
    ``x`` itself is returned.
    """
    if max_shift == 0 and max_rotate == 0 and max_scale == 0:
        return x
    rng = np.random.default_rng(key)
    n = len(x)
    if max_rotate == 0 and max_scale == 0:
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=(2, n))
        return shift_images(x, dy, dx)
    angle = np.deg2rad(rng.uniform(-max_rotate, max_rotate, n))
    scale = 1 + rng.uniform(-max_scale, max_scale, n)
    ty, tx = rng.uniform(-max_shift, max_shift, size=(2, n))
    return affine_images(x, angle, scale, ty, tx)
