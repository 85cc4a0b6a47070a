"""A batch stored for fast full-batch passes: similar samples side by side, block by block,
each block without the input columns that are zero in all of its rows.

MNIST digits are ink on a blank page: 81% of the pixels are 0. A column of ``x`` that is
zero in every row of a block adds exact zeros to the block's first-layer product
``x @ W1`` and to its weight gradient ``xᵀ dZ``, so the first layer can skip it: a
:class:`PackedBatch` keeps, per block, only the columns where some row is non-zero (and
their indices), and the network multiplies them with the matching rows of ``W1``. For
finite weights the math is unchanged; only the order of float additions differs from the
dense batch, so results can differ in the last bits. (An infinite or NaN weight on a
blank column would make the dense products NaN, 0 x inf being NaN; the packed ones
leave it out.)

How many columns a block can drop depends on which samples share it. Random blocks of
1,008 MNIST images leave 22% of the columns blank; :func:`pack` groups digits whose ink
has a similar bounding box (left, right, top and bottom edge), which leaves 54% blank in
blocks of 1,008 rows and 50% in the fold's blocks of 2,016 (391 of 784 columns kept).
The gradient of a full batch is a sum over its samples, so their order is free.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import attrs
import numpy as np

from purenet._engine.blocks import default_block_rows
from purenet.arrays import sealed

# Rows per packed block (rounded to whole tiles: 2,016 for the reference network). Packed
# blocks do less work per row than dense ones, so the per-block costs (Python, and the
# threads taking turns at the interpreter) weigh more: the reference epoch measured
# 16.2 ms with blocks of 2,016 rows against 19.3 ms with 1,008, median of 16 rounds each.
PACKED_BLOCK_ROWS = 2048


@attrs.frozen(eq=False)
class PackedBatch:
    """A batch of ``m`` samples with ``n_in`` inputs, stored block by block.

    Attributes:
        x: per block, its rows restricted to its non-blank columns, shape (rows_b, k_b),
            read-only.
        columns: per block, the indices of those columns in ``0..n_in``, shape (k_b,),
            increasing.
        y: per block, the labels of its rows, shape (rows_b,).
        order: shape (m,), the row of the original batch that each packed sample came
            from, block after block.
        n_in: inputs per sample.
    """

    x: tuple[np.ndarray, ...]
    columns: tuple[np.ndarray, ...]
    y: tuple[np.ndarray, ...]
    order: np.ndarray
    n_in: int

    @property
    def m(self) -> int:
        return len(self.order)

    @property
    def dtype(self) -> np.dtype:
        return self.x[0].dtype

    def unpacked(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch in packed order as dense arrays: x (m, n_in) and y (m,), equal to
        ``(x[order], y[order])`` of the batch that was packed."""
        dense = np.zeros((self.m, self.n_in), self.dtype)
        start = 0
        for xb, cols in zip(self.x, self.columns, strict=True):
            dense[start : start + len(xb), cols] = xb
            start += len(xb)
        return dense, np.concatenate(self.y)


# A dense block drops its blank columns only when at least this fraction of them is blank:
# gathering the rest of the block and the matching rows of W1, and putting the weight
# gradient back, cost about 130 us for a batch of 128 MNIST images against 784 x 512
# weights, and skipping a third of the columns saved about 290 us of products.
MIN_BLANK_FRACTION = 0.2


def drop_blank_columns(block: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``block`` (rows, n_in) without the columns that are zero in every row, and the
    indices of the columns kept, shape (k,); or ``(block, None)`` when fewer than
    :data:`MIN_BLANK_FRACTION` of the columns are blank."""
    columns = np.flatnonzero((block != 0).any(axis=0))
    if block.shape[1] - len(columns) < MIN_BLANK_FRACTION * block.shape[1]:
        return block, None
    return block[:, columns], columns


def image_shape(n_in: int) -> tuple[int, int]:
    """(height, width) of an input of ``n_in`` pixels: square when ``n_in`` is a perfect
    square (28 x 28 for MNIST), else one row."""
    side = math.isqrt(n_in)
    return (side, side) if side * side == n_in else (1, n_in)


def ink_boxes(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The bounding box of each sample's non-zero pixels: (m, 4) of (left, right, top,
    bottom) for ``x`` (m, height * width). A blank sample gets (0, width-1, 0, height-1)."""
    height, width = shape
    ink = (x != 0).reshape(len(x), height, width)
    in_column, in_row = ink.any(axis=1), ink.any(axis=2)  # (m, width), (m, height)

    def first(hit: np.ndarray) -> np.ndarray:
        return np.argmax(hit, axis=1)

    def last(hit: np.ndarray) -> np.ndarray:
        return hit.shape[1] - 1 - np.argmax(hit[:, ::-1], axis=1)

    return np.stack([first(in_column), last(in_column), first(in_row), last(in_row)], axis=1)


def block_order(keys: np.ndarray, block_rows: int) -> np.ndarray:
    """An order of the m samples such that consecutive runs of ``block_rows`` have
    similar ``keys`` (m, d): a k-d tree that sorts by the key with the largest spread
    and cuts at a block boundary near the middle, recursively. Deterministic: ties keep
    the samples' original order."""
    keys = np.asarray(keys, dtype=np.float64)
    done: list[np.ndarray] = []
    pending = [np.arange(len(keys))]
    while pending:
        ids = pending.pop()
        if len(ids) <= block_rows:
            done.append(ids)
            continue
        part = keys[ids]
        widest = int(np.argmax(part.std(axis=0)))
        ids = ids[np.argsort(part[:, widest], kind="stable")]
        cut = (math.ceil(len(ids) / block_rows) // 2) * block_rows
        pending += [ids[cut:], ids[:cut]]  # popped left half first
    return np.concatenate(done) if done else np.arange(0)


def pack(
    x: np.ndarray, y: np.ndarray, block_rows: int, shape: tuple[int, int] | None = None
) -> PackedBatch:
    """``x`` (m, n_in) and labels ``y`` (m,) packed in blocks of ``block_rows`` rows (the
    last block takes the rest). ``shape`` is the (height, width) of an input as an image,
    by default :func:`image_shape`; it only decides which samples share a block."""
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, not {block_rows}")
    if x.ndim != 2 or len(y) != len(x):
        raise ValueError(f"pack needs x (m, n_in) and y (m,), got {x.shape} and {y.shape}")
    m, n_in = x.shape
    shape = shape or image_shape(n_in)
    order = block_order(ink_boxes(x, shape), block_rows)
    xs, columns, ys = [], [], []
    for start in range(0, m, block_rows):
        rows = order[start : start + block_rows]
        block = x[rows]
        cols = np.flatnonzero((block != 0).any(axis=0))
        xs.append(sealed(block[:, cols]))
        columns.append(sealed(cols))
        ys.append(sealed(y[rows]))
    return PackedBatch(tuple(xs), tuple(columns), tuple(ys), sealed(order), n_in)


def pack_for_layers(x: np.ndarray, y: np.ndarray, sizes: Sequence[int]) -> PackedBatch:
    """``x`` (m, sizes[0]) and labels ``y`` (m,) packed for the engine's passes through
    layers of widths ``sizes`` (input to output): :func:`pack` in blocks of about
    :data:`PACKED_BLOCK_ROWS` rows, whole tiles of the first layer (2,016 for the
    reference network). The block size decides the order of float additions."""
    shapes = list(itertools.pairwise(sizes))
    return pack(x, y, default_block_rows(shapes, PACKED_BLOCK_ROWS))
