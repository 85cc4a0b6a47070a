"""How a batch is cut into pieces so that the network's products run fast on a CPU.

This module holds no network math; :mod:`purenet._engine.network` decides what to
compute and this module decides in which pieces. There are two levels.

**Blocks** of about :data:`BLOCK_ROWS` rows. Everything per sample (activations,
softmax, the backward pass) is computed one block at a time, so the intermediates stay
small, and the block of ``x`` read by the forward product is still in cache when the
backward product reads it again. A full-batch gradient is a sum over samples, so the
blocks' results are added, always in block order: blocks may run on several threads and
the result is the same, bit for bit, whatever the number of threads.

**Tiles** of a few rows, for the products of a layer with many inputs and few outputs
(784 -> 10 in the reference network). OpenBLAS, the BLAS that NumPy's wheels ship,
multiplies small matrices with kernels that read their operands where they lie instead
of first copying them into packed panels. For these skinny products the copy is most of
the work: a product of a 112-row tile with a 784 x 10 matrix measured 30-45% faster per
row here than one product over 1,024 rows.

Every product runs on one BLAS thread; parallelism comes from purenet's threads (see
:mod:`purenet._engine.threads`): they run the blocks, as long as there are at least as
many blocks as threads. A mini-batch of 128 is a single block; when one of its layers is
too wide to tile (784 x 512), the threads share the column chunks of that layer's
products instead (:func:`wide_product`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs
import numpy as np

from purenet._engine.threads import blas_threads, default_workers, run_tasks, wide_blas_threads

# Multiply-adds (rows x n_in x n_out) of one tile's product: small enough for OpenBLAS's
# small-matrix path in every operand order we use (measured: 112 rows of 784 x 10 take
# it, 127 rows not in the transposed order).
SMALL_PRODUCT = 880_000
MIN_TILE_ROWS = 16  # below this, tiles cost more in calls than they save in copies
BLOCK_ROWS = 1024  # rows per block (rounded to whole tiles); 3 MB of reference x
# A wide product's output columns are cut into chunks of about this many, whatever the
# number of threads (the chunks, not the threads, decide the bits).
WIDE_CHUNK_COLUMNS = 256

T = TypeVar("T")


def wide(n_in: int, n_out: int) -> bool:
    """Whether products with an (n_in, n_out) weight matrix are too large to tile (784 x
    512 is; 784 x 10 is not): they are then cut by output columns over the threads
    (:func:`wide_product`)."""
    return SMALL_PRODUCT // (n_in * n_out) < MIN_TILE_ROWS


def tile_rows(n_in: int, n_out: int) -> int | None:
    """Rows per tile for products with an (n_in, n_out) weight matrix, or None when the
    layer is better multiplied a whole block at a time."""
    rows = SMALL_PRODUCT // (n_in * n_out)
    return rows if MIN_TILE_ROWS <= rows < BLOCK_ROWS else None


@attrs.frozen
class Plan:
    """How a batch of ``m`` rows through layers of ``shapes`` is cut.

    Attributes:
        blocks: consecutive row ranges covering ``0..m``.
        tiles: per layer, rows per tile, or None for one product per block.
        wide: per layer, whether its products are cut by output columns over
            ``product_workers`` threads (:func:`wide_product`).
        workers: purenet threads that run blocks (BLAS itself runs on one thread; see
            :mod:`purenet._engine.threads`); 1 when the threads share a wide layer's
            products instead.
        product_workers: threads for each wide product; 1 when the threads run blocks.
        blas_threads: BLAS threads for each wide product (1 unless
            ``$PURENET_BLAS_THREADS`` opts in, see
            :func:`purenet._engine.threads.wide_blas_threads`).
    """

    blocks: tuple[slice, ...]
    tiles: tuple[int | None, ...]
    wide: tuple[bool, ...]
    workers: int
    product_workers: int
    blas_threads: int = 1


def default_block_rows(shapes: Sequence[tuple[int, int]], target: int = BLOCK_ROWS) -> int:
    """Rows per block for layers whose weights have ``shapes``: about ``target``, in
    whole tiles of the first layer (1,008 for the reference network)."""
    first = tile_rows(*shapes[0]) or 1
    return max(1, round(target / first)) * first


def plan(
    m: int,
    shapes: Sequence[tuple[int, int]],
    block_rows: int | None = None,
    workers: int | None = None,
) -> Plan:
    """The plan for ``m`` rows through layers whose weights have ``shapes`` (n_in, n_out).

    ``block_rows`` overrides the block size (default: :func:`default_block_rows`),
    ``workers`` the number of threads (default:
    :func:`purenet._engine.threads.default_workers`). They run the blocks, or, when a layer
    is wide and there are fewer blocks than threads, the column chunks of its products (a
    mini-batch of 128 is one block, and the products are where its time goes). ``workers``
    never changes a result;
    ``block_rows`` decides the order of float additions.
    """
    tiles = tuple(tile_rows(n_in, n_out) for n_in, n_out in shapes)
    is_wide = tuple(wide(n_in, n_out) for n_in, n_out in shapes)
    if block_rows is None:
        block_rows = default_block_rows(shapes)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, not {block_rows}")
    blocks = tuple(slice(start, min(start + block_rows, m)) for start in range(0, m, block_rows))
    threads = max(1, default_workers() if workers is None else workers)
    blas = wide_blas_threads() if any(is_wide) else 1
    # One level of threads only. A wide layer's products are cut into column chunks for
    # the threads when there are too few blocks to share (a mini-batch is one block), or
    # when BLAS has threads of its own; otherwise the blocks go to the threads and each
    # block's chunks are multiplied in turn. The chunks are the same either way, so the
    # bits are too.
    if any(is_wide) and (len(blocks) < threads or blas > 1):
        return Plan(blocks, tiles, is_wide, 1, threads, blas)
    return Plan(blocks, tiles, is_wide, max(1, min(threads, len(blocks))), 1, blas)


def block_rows_of(x: np.ndarray, rows: slice, plan: Plan) -> np.ndarray:
    """The rows of ``x`` that one block works on.

    When the first layer is tiled they are copied: the small-matrix kernels read their
    operands without prefetching far ahead, and stall on a block that is still in main
    memory, while a copy streams it at full speed. The reference epoch measured 22 ms
    with the copy against 28 ms without, here.
    """
    block = x[rows]
    return block.copy() if plan.tiles[0] is not None else block


def tiled_product(
    a: np.ndarray, w: np.ndarray, w_t: np.ndarray | None, tile: int | None
) -> np.ndarray:
    """``a @ w`` for ``a`` (rows, n_in) and ``w`` (n_in, n_out), shape (rows, n_out),
    computed ``tile`` rows at a time (all at once if None). ``w_t`` is ``w.T`` in C
    order, the operand order in which the tiles' products are fastest."""
    if tile is None:
        return a @ w
    rows, n_in = a.shape
    whole = rows - rows % tile
    out = np.empty((rows, len(w_t)), np.result_type(a, w_t))
    if whole:
        stacked = a[:whole].reshape(whole // tile, tile, n_in)  # n_in may be 0
        out[:whole].reshape(whole // tile, tile, len(w_t))[...] = (w_t @ stacked.mT).mT
    if whole < rows:
        out[whole:] = a[whole:] @ w
    return out


def column_chunks(n: int) -> list[slice]:
    """The output columns of a wide product, in chunks of about
    :data:`WIDE_CHUNK_COLUMNS`: fixed by ``n`` alone (512 columns: two chunks)."""
    count = max(1, round(n / WIDE_CHUNK_COLUMNS))
    return [slice(i * n // count, (i + 1) * n // count) for i in range(count)]


def wide_product(a: np.ndarray, b: np.ndarray, workers: int, blas: int = 1) -> np.ndarray:
    """``a @ b`` for ``a`` (rows, k) and ``b`` (k, n), shape (rows, n): each chunk of the
    output's columns (:func:`column_chunks`) is one product, on ``workers`` threads.

    Each output element is a sum over ``k`` whichever chunk it falls in, so the chunks
    split the work without changing what is added to what; and since the chunks do not
    depend on ``workers``, neither do the bits. With ``blas`` > 1 (an opt-in) it is one
    product on that many BLAS threads instead, whose bits depend on ``blas``.
    """
    if blas > 1:  # the opt-in: one product, on BLAS's own threads
        with blas_threads(blas):
            return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))

    def chunk(columns: slice) -> None:
        np.matmul(a, b[:, columns], out=out[:, columns])

    run_tasks([functools.partial(chunk, c) for c in column_chunks(b.shape[1])], workers)
    return out


def tiled_weight_grad(a: np.ndarray, dz: np.ndarray, tile: int | None) -> np.ndarray:
    """``a.T @ dz`` for ``a`` (rows, n_in) and ``dz`` (rows, n_out): the weight gradient,
    shape (n_in, n_out), summed tile by tile (all at once if None). Tiled, the result is
    a transposed view of a fresh (n_out, n_in) array."""
    rows, n_in = a.shape
    whole = rows - rows % tile if tile else 0
    if whole == 0:
        return a.T @ dz
    tiles = whole // tile
    per_tile = dz[:whole].reshape(tiles, tile, -1).mT @ a[:whole].reshape(tiles, tile, n_in)
    total = per_tile.sum(axis=0)
    if whole < rows:
        total += dz[whole:].T @ a[whole:]
    return total.T


def map_blocks(work: Callable[[slice], T], plan: Plan) -> list[T]:
    """``[work(block) for block in plan.blocks]``, on ``plan.workers`` threads."""
    return run_tasks([functools.partial(work, block) for block in plan.blocks], plan.workers)
