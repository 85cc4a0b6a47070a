"""Random distortions of training images, in NumPy: a pure function of a key.

Two kinds, both applied per image with parameters drawn from
``np.random.default_rng(key)``:

- integer shifts of up to ``max_shift`` pixels in each direction (exact: the ink that
  stays in the frame keeps its values; what moves in is 0);
- a small affine map (rotation up to ``max_rotate`` degrees, scaling by up to
  ``max_scale``, translation up to ``max_shift`` pixels), resampled bilinearly;
- elastic distortions (Simard, Steinkraus and Platt, 2003): a random displacement field
  per image, uniform in [-1, 1] at each pixel, smoothed by a Gaussian of width
  ``elastic_sigma`` pixels and scaled by ``elastic_alpha``, drawn from a key of its own.
  The field is added to the affine map's sampling grid, so an image is resampled once
  for both.

Images are rows of 784 pixels in [0, 1] (28 x 28, row-major); outputs stay in [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np

from purenet._engine.threads import single_threaded_blas

SIDE = 28
TRUNCATE = 4.0  # the Gaussian's weights end this many sigmas from its centre


def _corners(padded: np.ndarray, y0: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four pixels around each sampling point of image ``i``: ``padded[i, y, x]`` for
    (y, x) = (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1), where ``y0[i, ...]``
    and ``x0[i, ...]`` index the top-left one (at most the second-last row and column).

    Each pixel's 2 x 2 neighbourhood is first laid out as one 16-byte item, so that a
    single flat ``np.take`` fetches all four (much cheaper than four gathers, or than
    three-array fancy indexing).
    """
    n, height, width = padded.shape
    quads = np.empty((n, height - 1, width - 1, 4), padded.dtype)
    quads[..., 0] = padded[:, :-1, :-1]
    quads[..., 1] = padded[:, :-1, 1:]
    quads[..., 2] = padded[:, 1:, :-1]
    quads[..., 3] = padded[:, 1:, 1:]
    items = quads.reshape(-1, 4).view(np.dtype((np.void, 4 * padded.itemsize))).reshape(-1)
    flat = (np.arange(n, dtype=np.int32) * ((height - 1) * (width - 1)))[:, None, None]
    flat = flat + y0 * (width - 1) + x0
    got = np.take(items, flat).view(padded.dtype).reshape(*flat.shape, 4)
    return got[..., 0], got[..., 1], got[..., 2], got[..., 3]


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
    x: np.ndarray,
    angle: np.ndarray,
    scale: np.ndarray,
    ty: np.ndarray,
    tx: np.ndarray,
    field: np.ndarray | None = None,
) -> np.ndarray:
    """Rotate image ``i`` by ``angle[i]`` radians about its centre, scale it by
    ``scale[i]`` and move it by (``ty[i]``, ``tx[i]``) pixels; bilinear resampling, 0
    outside the image. ``x`` is (B, 784); returns a new (B, 784) array in [0, 1].

    ``field`` (B, 2, 28, 28), if given, displaces the point that each output pixel is
    sampled from by (``field[i, 0]``, ``field[i, 1]``) pixels (down, right), after the
    affine map: output pixel p of image i shows the input at ``A_i^-1(p) + field[i, :, p]``.
    """
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
    sy = (cos * py - sin * px) * inv + (centre + pad)
    sx = (sin * py + cos * px) * inv + (centre + pad)
    if field is not None:
        sy = sy + field[:, 0].astype(dtype, copy=False)
        sx = sx + field[:, 1].astype(dtype, copy=False)
    sy, sx = np.clip(sy, 0, limit), np.clip(sx, 0, limit)
    y0 = np.minimum(sy.astype(np.int32), limit - 1)  # floor, as sy >= 0
    x0 = np.minimum(sx.astype(np.int32), limit - 1)
    wy, wx = sy - y0.astype(dtype), sx - x0.astype(dtype)
    padded = np.pad(x.reshape(n, SIDE, SIDE), ((0, 0), (pad, pad), (pad, pad)))
    top_left, top_right, bottom_left, bottom_right = _corners(padded, y0, x0)
    top = top_left * (1 - wx) + top_right * wx
    bottom = bottom_left * (1 - wx) + bottom_right * wx
    return np.clip(top * (1 - wy) + bottom * wy, 0, 1).reshape(n, -1)


@functools.cache
def gaussian_matrix(sigma: float, side: int = SIDE) -> np.ndarray:
    """The (side, side) float32 matrix that smooths a line of ``side`` values by a
    Gaussian of width ``sigma`` (its weights cut at ``TRUNCATE`` sigmas and summing to
    1); what lies beyond the ends counts as 0. Read-only (it is cached)."""
    radius = max(1, int(TRUNCATE * sigma + 0.5))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    distance = np.arange(side)[:, None] - np.arange(side)[None, :]
    near = np.abs(distance) <= radius
    matrix = np.where(near, weights[np.clip(distance + radius, 0, 2 * radius)], 0.0)
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def elastic_field(key: tuple[int, ...], n: int, alpha: float, sigma: float) -> np.ndarray:
    """The displacement fields (n, 2, 28, 28) float32 of n images, drawn from ``key``:
    (down, right) in pixels at each pixel, uniform in [-1, 1], smoothed by a Gaussian
    of width ``sigma`` along rows and columns and scaled by ``alpha``.

    The noise is drawn in the layout (row, image, down/right, column), so that both
    smoothings are one matrix product each over the whole batch, without copies:
    ``G @ noise`` along the rows, then ``@ G.T`` along the columns (G =
    :func:`gaussian_matrix`). The result is a view of that layout. The products run on
    one BLAS thread, so the bits do not depend on the thread count.
    """
    rng = np.random.default_rng(key)
    noise = rng.random((SIDE, n * 2 * SIDE), dtype=np.float32)
    noise *= 2
    noise -= 1
    g = gaussian_matrix(float(sigma))
    with single_threaded_blas():
        field = (g @ noise).reshape(-1, SIDE) @ g.T
    field *= np.float32(alpha)
    return np.moveaxis(field.reshape(SIDE, n, 2, SIDE), 0, 2)


def augment(
    x: np.ndarray,
    key: tuple[int, ...],
    max_shift: int = 0,
    max_rotate: float = 0.0,
    max_scale: float = 0.0,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
    elastic_key: tuple[int, ...] | None = None,
) -> np.ndarray:
    """A randomly distorted copy of the batch ``x`` (B, 784), drawn from ``key`` (and,
    for elastic distortions, from ``elastic_key``).

    With only ``max_shift`` set, images move by whole pixels (cheap, exact); with a
    rotation (degrees) or scale, each image gets a random affine map. ``elastic_alpha``
    above 0 adds an elastic displacement field (:func:`elastic_field`) to that map (to
    the whole-pixel shifts, if they are all there is), resampled once. The affine
    parameters are drawn from ``key`` exactly as without elastic distortions. With
    nothing set, ``x`` itself is returned.
    """
    elastic = elastic_alpha > 0
    if max_shift == 0 and max_rotate == 0 and max_scale == 0 and not elastic:
        return x
    rng = np.random.default_rng(key)
    n = len(x)
    field = None
    if elastic:
        if elastic_key is None:
            raise ValueError("elastic distortions need a key of their own (elastic_key)")
        field = elastic_field(elastic_key, n, elastic_alpha, elastic_sigma)
    if max_rotate == 0 and max_scale == 0:
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=(2, n))
        if field is None:
            return shift_images(x, dy, dx)
        return affine_images(x, np.zeros(n), np.ones(n), dy.astype(float), dx.astype(float), field)
    angle = np.deg2rad(rng.uniform(-max_rotate, max_rotate, n))
    scale = 1 + rng.uniform(-max_scale, max_scale, n)
    ty, tx = rng.uniform(-max_shift, max_shift, size=(2, n))
    return affine_images(x, angle, scale, ty, tx, field)
