"""Packed batches: they hold exactly the batch (reordered), drop only columns that are
zero in the whole block, and give the dense batch's gradient and metrics up to rounding,
bit for bit whatever the number of threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_network

from purenet._engine.packing import (
    MIN_BLANK_FRACTION,
    block_order,
    drop_blank_columns,
    ink_boxes,
    pack,
)
from purenet.network import metrics_of, value_and_grads, value_grads_and_metrics
from purenet.params import init_params


def sparse_batch(rng: np.random.Generator, m: int, n_in: int, density: float):
    """x (m, n_in) with about ``density`` of its entries non-zero, labels in 0..2."""
    x = rng.normal(size=(m, n_in)) * (rng.random((m, n_in)) < density)
    return x, rng.integers(0, 3, m)


@settings(deadline=None)
@given(
    m=st.integers(1, 200),
    n_in=st.integers(1, 40),
    block_rows=st.integers(1, 70),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_packing_keeps_every_sample_and_drops_only_blank_columns(
    m, n_in, block_rows, density, seed
):
    x, y = sparse_batch(np.random.default_rng(seed), m, n_in, density)
    packed = pack(x, y, block_rows)
    assert packed.m == m and packed.n_in == n_in
    assert sorted(packed.order) == list(range(m))
    dense_x, dense_y = packed.unpacked()
    assert np.array_equal(dense_x, x[packed.order]) and np.array_equal(dense_y, y[packed.order])
    sizes = [len(block) for block in packed.x]
    assert all(size == block_rows for size in sizes[:-1]) and 1 <= sizes[-1] <= block_rows
    start = 0
    for xb, columns, yb in zip(packed.x, packed.columns, packed.y, strict=True):
        rows = x[packed.order[start : start + len(xb)]]
        assert np.array_equal(columns, np.flatnonzero((rows != 0).any(axis=0)))
        assert xb.shape == (len(rows), len(columns)) and len(yb) == len(rows)
        assert not xb.flags.writeable and not columns.flags.writeable
        start += len(xb)


def test_ink_boxes_are_the_edges_of_the_non_zero_pixels():
    images = np.zeros((3, 5, 7))
    images[0, 1:3, 2:6] = 1.0
    images[1, 4, 0] = -0.5  # a negative value is ink too
    boxes = ink_boxes(images.reshape(3, 35), (5, 7))
    assert boxes.tolist() == [[2, 5, 1, 2], [0, 0, 4, 4], [0, 6, 0, 4]]  # the last is blank


def test_block_order_puts_similar_keys_in_the_same_block():
    rng = np.random.default_rng(0)
    keys = rng.permutation(np.repeat(np.arange(4), 25))[:, None]  # four kinds of sample
    order = block_order(keys, 25)
    assert sorted(order) == list(range(100))
    for start in range(0, 100, 25):
        assert len(set(keys[order[start : start + 25], 0])) == 1


def test_digits_that_share_a_block_leave_most_columns_blank():
    """Ink in one of four corners of a 28 x 28 page, 100 images each, shuffled: blocks of
    50 hold one corner each, so they keep a quarter of the columns."""
    rng = np.random.default_rng(1)
    images = np.zeros((400, 28, 28), np.float32)
    for image, corner in zip(images, rng.permutation(np.arange(400) % 4), strict=True):
        top, left = 14 * (corner // 2), 14 * (corner % 2)
        image[top : top + 14, left : left + 14] = rng.random((14, 14)) + 0.1
    packed = pack(images.reshape(400, 784), rng.integers(0, 10, 400), 50)
    assert [len(columns) for columns in packed.columns] == [196] * 8


def _close(got, want, rtol=1e-9, atol=1e-12):
    for a, b in zip(got.layers, want.layers, strict=True):
        np.testing.assert_allclose(a.w, b.w, rtol=rtol, atol=atol)
        np.testing.assert_allclose(a.b, b.b, rtol=rtol, atol=atol)


@settings(deadline=None, max_examples=40)
@given(
    sizes=st.sampled_from([(9, 3), (9, 5, 3), (16, 6, 4, 3)]),
    m=st.integers(1, 120),
    block_rows=st.integers(1, 50),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_packed_batch_gives_the_dense_gradient_and_metrics_up_to_rounding(
    sizes, m, block_rows, density, seed
):
    rng = np.random.default_rng(seed)
    params = random_network(rng, sizes)
    x, y = sparse_batch(rng, m, sizes[0], density)
    packed = pack(x, y, block_rows)
    metrics, g, (held_out,) = value_grads_and_metrics(params, packed, [packed], workers=2)
    dense_metrics, dense_g = value_and_grads(params, x, y)
    assert metrics.accuracy == dense_metrics.accuracy
    assert metrics.loss == pytest.approx(dense_metrics.loss, rel=1e-12)
    _close(g, dense_g)
    assert held_out == metrics  # the metric-only pass sees the same logits
    assert metrics_of(params, [packed], workers=1) == (metrics,)


@pytest.mark.parametrize("sizes", [(16, 4, 3), (784, 10, 10), (784, 10)])  # tiled: 784 x 10
def test_a_packed_block_of_blank_inputs_has_no_columns_and_still_trains(sizes):
    x, y = np.zeros((300, sizes[0])), np.arange(300) % 3
    params = random_network(np.random.default_rng(2), sizes)
    packed = pack(x, y, 224)
    assert all(len(columns) == 0 for columns in packed.columns)
    metrics, g, _ = value_grads_and_metrics(params, packed)
    dense_metrics, dense_g = value_and_grads(params, x, y)
    assert metrics.loss == pytest.approx(dense_metrics.loss, rel=1e-12)
    assert not g.layers[0].w.any()  # no input, no first-layer weight gradient
    _close(g, dense_g)


def test_a_batch_packed_for_other_inputs_or_with_other_labels_is_refused():
    params = random_network(np.random.default_rng(2), (16, 4, 3))
    with pytest.raises(ValueError, match="packed with 12 inputs"):
        value_grads_and_metrics(params, pack(np.ones((20, 12)), np.zeros(20, int), 8))
    with pytest.raises(ValueError, match="y"):
        pack(np.ones((20, 16)), np.zeros(21, int), 8)


@pytest.mark.parametrize("sizes", [(784, 10, 10), (784, 10)])  # tiled first layer
def test_the_thread_count_never_changes_a_bit_of_a_packed_pass(sizes):
    rng = np.random.default_rng(3)
    params = init_params(sizes, seed=1)
    x, y = sparse_batch(rng, 5000, 784, 0.2)
    x = x.astype(np.float32)
    train, test = pack(x[:4000], y[:4000], 448), pack(x[4000:], y[4000:], 448)
    one = value_grads_and_metrics(params, train, [test], workers=1)
    for workers in (2, 3):
        assert value_grads_and_metrics(params, train, [test], workers=workers) == one
        assert metrics_of(params, [train, test], workers=workers) == (one[0], *one[2])
    dense_metrics, dense_g = value_and_grads(params, x[:4000], y[:4000])
    assert one[0].loss == pytest.approx(dense_metrics.loss, rel=1e-5)
    _close(one[1], dense_g, rtol=1e-4, atol=1e-6)


def test_block_rows_must_be_positive():
    with pytest.raises(ValueError, match="block_rows"):
        pack(np.zeros((3, 4)), np.zeros(3, int), 0)


@settings(deadline=None)
@given(
    rows=st.integers(1, 60),
    n_in=st.integers(1, 40),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_block_drops_its_blank_columns_only_when_enough_are_blank(rows, n_in, density, seed):
    block, _ = sparse_batch(np.random.default_rng(seed), rows, n_in, density)
    kept, columns = drop_blank_columns(block)
    non_blank = np.flatnonzero((block != 0).any(axis=0))
    if n_in - len(non_blank) >= MIN_BLANK_FRACTION * n_in:
        assert np.array_equal(columns, non_blank)
        assert np.array_equal(kept, block[:, non_blank])
    else:
        assert columns is None and kept is block
