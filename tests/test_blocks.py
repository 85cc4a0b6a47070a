"""How a batch is cut into blocks and tiles: the pieces cover the batch, the tiled
products equal the plain ones, and the number of threads never changes a result."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_network

from purenet._engine import blocks, threads
from purenet.errors import ConfigError
from purenet.network import evaluate, forward, value_and_grads, value_grads_and_metrics
from purenet.params import init_params, map_params


@given(
    m=st.integers(1, 5000),
    n_in=st.integers(1, 1000),
    n_out=st.integers(1, 50),
    block_rows=st.none() | st.integers(1, 3000),
    workers=st.none() | st.integers(1, 8),
)
def test_blocks_cover_the_batch_in_order(m, n_in, n_out, block_rows, workers):
    plan = blocks.plan(m, [(n_in, n_out), (n_out, 3)], block_rows, workers)
    assert plan.blocks[0].start == 0 and plan.blocks[-1].stop == m
    for before, after in zip(plan.blocks, plan.blocks[1:], strict=False):
        assert before.stop == after.start and before.start < before.stop
    assert 1 <= plan.workers <= len(plan.blocks)
    tile = plan.tiles[0]
    if tile is not None:
        assert tile * n_in * n_out <= blocks.SMALL_PRODUCT
        if block_rows is None:  # default blocks are whole tiles
            assert plan.blocks[0].stop == m or plan.blocks[0].stop % tile == 0


def test_the_reference_network_is_tiled_and_a_wide_batch_is_cut_for_both_cores():
    reference = blocks.plan(63_000, [(784, 10), (10, 10)], workers=None)
    assert reference.tiles == (112, None)
    assert reference.workers == min(threads.available_cores(), len(reference.blocks))
    assert {b.stop - b.start for b in reference.blocks[:-1]} == {1008}
    wide = blocks.plan(128, [(784, 512), (512, 10)], workers=2)
    assert wide.tiles[0] is None and wide.wide == (True, False)
    assert len(wide.blocks) == 1 and wide.workers == 1 and wide.product_workers == 2
    assert blocks.column_chunks(512) == [slice(0, 256), slice(256, 512)]
    assert blocks.column_chunks(10) == [slice(0, 10)]


def test_a_wide_product_is_the_same_bits_on_any_number_of_threads():
    rng = np.random.default_rng(0)
    a = rng.random((70, 300), dtype=np.float32)
    b = rng.random((300, 1100), dtype=np.float32)
    one = blocks.wide_product(a, b, 1)
    np.testing.assert_allclose(one, a @ b, rtol=1e-5)
    for workers in (2, 3, 8):
        assert blocks.wide_product(a, b, workers).tobytes() == one.tobytes()
    assert blocks.wide_product(a.T, a, 2).shape == (300, 300)  # transposed operands


def test_purenet_threads_caps_the_threads(monkeypatch):
    monkeypatch.setenv(threads.THREADS_VARIABLE, "1")
    assert blocks.plan(63_000, [(784, 10), (10, 10)]).workers == 1
    monkeypatch.setenv(threads.THREADS_VARIABLE, "3")
    assert blocks.plan(63_000, [(784, 10), (10, 10)]).workers == 3
    monkeypatch.setenv(threads.THREADS_VARIABLE, "0")
    with pytest.raises(ConfigError, match="PURENET_THREADS"):
        blocks.plan(63_000, [(784, 10), (10, 10)])


def test_block_rows_must_be_positive():
    with pytest.raises(ValueError, match="block_rows"):
        blocks.plan(10, [(3, 2)], block_rows=0)


@settings(deadline=None)
@given(
    rows=st.integers(1, 300),
    n_in=st.integers(1, 40),
    n_out=st.integers(1, 12),
    tile=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_tiled_products_equal_the_plain_products(rows, n_in, n_out, tile, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, n_in))
    w = rng.normal(size=(n_in, n_out))
    dz = rng.normal(size=(rows, n_out))
    product = blocks.tiled_product(a, w, np.ascontiguousarray(w.T), tile)
    assert product.shape == (rows, n_out)
    np.testing.assert_allclose(product, a @ w, rtol=1e-10, atol=1e-10)
    grad = blocks.tiled_weight_grad(a, dz, tile)
    assert grad.shape == (n_in, n_out)
    np.testing.assert_allclose(grad, a.T @ dz, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_map_blocks_returns_results_in_block_order(workers):
    plan = blocks.plan(1000, [(3, 2)], block_rows=70, workers=workers)
    assert blocks.map_blocks(lambda rows: rows.start, plan) == [b.start for b in plan.blocks]


def _reference_shaped_problem(m: int = 2500):
    """A 784-10-10 float32 network and a batch: its first layer is tiled (112 rows)."""
    rng = np.random.default_rng(3)
    params = init_params((784, 10, 10), seed=1)
    x = rng.random((m, 784), dtype=np.float32)
    y = rng.integers(0, 10, m)
    return params, x, y


@pytest.mark.parametrize("block_rows", [None, 224, 250])
def test_thread_count_never_changes_a_bit(block_rows):
    params, x, y = _reference_shaped_problem()
    one = value_and_grads(params, x, y, block_rows=block_rows, workers=1)
    plan = blocks.plan(len(y), [(784, 10), (10, 10)], block_rows)
    assert plan.tiles[0] == 112 and len(plan.blocks) >= 3
    for workers in (2, 3):
        assert value_and_grads(params, x, y, block_rows=block_rows, workers=workers) == one
        assert evaluate(params, x, y, block_rows, workers) == one[0]
        assert np.array_equal(
            forward(params, x, block_rows, workers), forward(params, x, block_rows, 1)
        )
    dropped = [
        value_and_grads(params, x, y, 0.3, (5,), block_rows=block_rows, workers=w) for w in (1, 2)
    ]
    assert dropped[0] == dropped[1] and dropped[0] != one


def test_a_wide_network_gives_its_threads_blocks_or_chunks_with_the_same_bits():
    """A full batch of a wide network runs its blocks on the threads (hidden 128 took
    no gain from a second thread when the threads shared its single column chunk); with
    fewer blocks than threads they share the chunks instead. Same bits either way."""
    rng = np.random.default_rng(4)
    params = init_params((784, 600, 10), seed=2)  # two column chunks
    x = rng.random((300, 784), dtype=np.float32)
    x[:, :200] = 0  # blank columns, dropped block by block
    y = rng.integers(0, 10, 300)
    shapes = [(784, 600), (600, 10)]
    on_blocks = blocks.plan(300, shapes, block_rows=64, workers=3)
    assert on_blocks.wide[0] and on_blocks.workers == 3 and on_blocks.product_workers == 1
    on_chunks = blocks.plan(300, shapes, block_rows=128, workers=4)  # 3 blocks, 4 threads
    assert on_chunks.workers == 1 and on_chunks.product_workers == 4
    for block_rows in (64, 128):
        one = value_and_grads(params, x, y, block_rows=block_rows, workers=1)
        for workers in (2, 3, 4):
            assert value_and_grads(params, x, y, block_rows=block_rows, workers=workers) == one
            assert evaluate(params, x, y, block_rows, workers) == one[0]


def test_tiled_blocks_compute_the_same_gradient_as_float64_in_one_piece():
    params, x, y = _reference_shaped_problem()
    metrics, g = value_and_grads(params, x, y, block_rows=224, workers=2)
    params64 = map_params(lambda a: a.astype(np.float64), params)
    metrics64, g64 = value_and_grads(params64, x.astype(np.float64), y, block_rows=len(y))
    assert metrics.loss == pytest.approx(metrics64.loss, rel=1e-5)
    for got, want in zip(g.layers, g64.layers, strict=True):
        np.testing.assert_allclose(got.w, want.w, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(got.b, want.b, rtol=1e-3, atol=1e-6)


@settings(deadline=None, max_examples=25)
@given(block_rows=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_any_block_size_gives_the_same_gradient_up_to_rounding(block_rows, seed):
    rng = np.random.default_rng(seed)
    params = random_network(rng, (6, 5, 3))
    x, y = rng.normal(size=(50, 6)), rng.integers(0, 3, 50)
    whole = value_and_grads(params, x, y, block_rows=50)
    cut = value_and_grads(params, x, y, block_rows=block_rows, workers=2)
    assert cut[0].accuracy == whole[0].accuracy
    assert cut[0].loss == pytest.approx(whole[0].loss, rel=1e-12)
    for got, want in zip(cut[1].layers, whole[1].layers, strict=True):
        np.testing.assert_allclose(got.w, want.w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.b, want.b, rtol=1e-10, atol=1e-12)


def test_a_forked_child_computes_with_its_own_threads():
    """The parent's pool has no threads in a forked child: the child must not wait on it."""
    import multiprocessing

    params, x, y = _reference_shaped_problem(1500)
    expected = value_and_grads(params, x, y, block_rows=224, workers=2)  # parent's pool
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        child = pool.apply_async(_child_gradient, (params, x, y)).get(timeout=60)
    assert child == expected


def _child_gradient(params, x, y):
    return value_and_grads(params, x, y, block_rows=224, workers=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_one_pass_gives_the_gradient_and_the_held_out_metrics_bit_for_bit(workers):
    params, x, y = _reference_shaped_problem()
    rng = np.random.default_rng(9)
    test = (rng.random((700, 784), dtype=np.float32), rng.integers(0, 10, 700))
    valid = (rng.random((300, 784), dtype=np.float32), rng.integers(0, 10, 300))
    metrics, g, others = value_grads_and_metrics(
        params, (x, y), [test, valid], block_rows=224, workers=workers
    )
    assert (metrics, g) == value_and_grads(params, x, y, block_rows=224, workers=1)
    assert others == (
        evaluate(params, *test, block_rows=224, workers=1),
        evaluate(params, *valid, block_rows=224, workers=1),
    )
    assert value_grads_and_metrics(params, (x, y))[2] == ()
