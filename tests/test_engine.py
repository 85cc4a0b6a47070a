"""The fast engine computes what the reference defines, on the shapes where it is fast.

Hypothesis draws the structure of each case so that it reaches the engine's fast paths:
the reference network's 784 x 10 first layer (products in tiles of 112 rows), a wide
784 x 512 layer (products cut by output columns over threads, blank input columns left
out),
deeper and narrower networks, many blocks, several threads, every activation, dropout,
and packed batches. The numbers themselves come from a seeded generator (normal weights,
digit-like inputs with blank margins), so that the comparison is not decided by exact
ties between logits. Everything runs in float64, where the engine and the reference may
differ only by the order of float additions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purenet import reference
from purenet._engine import blocks
from purenet._engine.packing import pack
from purenet.network import (
    evaluate,
    forward,
    metrics_of,
    value_and_grads,
    value_grads_and_metrics,
)
from purenet.params import Activation, Layer, Params

SHAPES = {
    # first layer (n_in, n_out): what the engine does with it
    "tiled": (784, 10),  # the reference network: tiles of 112 rows
    "wide": (784, 512),  # too wide to tile: products cut by columns, blank columns dropped
    "narrow": (20, 7),  # small enough for one product per block
}


def digit_like(rng: np.random.Generator, m: int, n_in: int) -> np.ndarray:
    """(m, n_in) inputs in [0, 1]: for 784 inputs, ink in a random box within the central
    20 x 20 pixels of a 28 x 28 page (blank margins, as MNIST's); otherwise sparse values."""
    if n_in != 784:
        return rng.random((m, n_in)) * (rng.random((m, n_in)) < 0.5)
    x = np.zeros((m, 28, 28))
    for image in x:
        top, left = rng.integers(4, 11, 2)
        bottom, right = rng.integers(17, 25, 2)
        ink = rng.random((bottom - top, right - left))
        image[top:bottom, left:right] = np.where(ink > 0.5, ink, 0)
    return x.reshape(m, 784)


@st.composite
def cases(draw):
    """(params, x, y, block_rows, workers): a network and batch that reach a fast path."""
    kind = draw(st.sampled_from(sorted(SHAPES)))
    n_in, first = SHAPES[kind]
    deeper = draw(st.lists(st.integers(2, 12), max_size=2))
    n_out = draw(st.integers(2, 10))
    sizes = (n_in, first, *deeper, n_out)
    activation = draw(st.sampled_from(list(Activation)))
    m = draw(st.integers(1, 700 if kind == "tiled" else 300))
    block_rows = draw(st.none() | st.sampled_from([1, 7, 64, 112, 224, 333]))
    workers = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layers = tuple(
        Layer(rng.normal(0, 1 / np.sqrt(a), (a, b)), rng.normal(0, 0.1, b))
        for a, b in itertools.pairwise(sizes)
    )
    x = digit_like(rng, m, n_in)
    y = rng.integers(0, n_out, m)
    return Params(layers, activation), x, y, block_rows, workers


def assert_same_gradient(got: Params, want: Params) -> None:
    for g, w in zip(got.layers, want.layers, strict=True):
        np.testing.assert_allclose(g.w, w.w, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(g.b, w.b, rtol=1e-9, atol=1e-13)


def assert_same_metrics(got: reference.Metrics, want: reference.Metrics) -> None:
    assert got.loss == pytest.approx(want.loss, rel=1e-11)
    assert got.accuracy == want.accuracy


@settings(max_examples=40)
@given(cases(), st.sampled_from([0.0, 0.3]))
def test_the_engine_gradient_is_the_reference_gradient(case, dropout):
    params, x, y, block_rows, workers = case
    key = (5, 1)
    masks = None
    if dropout:
        widths = tuple(layer.w.shape[1] for layer in params.layers[:-1])
        masks = reference.dropout_masks(len(x), widths, dropout, key, x.dtype)
    want_metrics, want_grads = reference.value_and_grads(params, x, y, masks=masks)
    got_metrics, got_grads = value_and_grads(
        params, x, y, dropout, key if dropout else None, block_rows, workers
    )
    assert_same_metrics(got_metrics, want_metrics)
    assert_same_gradient(got_grads, want_grads)


@settings(max_examples=30)
@given(cases())
def test_the_engine_forward_pass_and_metrics_are_the_reference_ones(case):
    params, x, y, block_rows, workers = case
    logits = reference.forward(params, x)
    np.testing.assert_allclose(
        forward(params, x, block_rows, workers), logits, rtol=1e-10, atol=1e-12
    )
    want = reference.Metrics(
        reference.cross_entropy(logits, y), float(np.mean(logits.argmax(axis=1) == y))
    )
    assert_same_metrics(evaluate(params, x, y, block_rows, workers), want)


@settings(max_examples=30)
@given(cases(), st.sampled_from([64, 112, 2016]))
def test_a_packed_batch_gives_the_reference_metrics_and_gradient(case, rows):
    """Packing reorders the samples and leaves out each block's blank columns; means and
    sums over the batch do not notice."""
    params, x, y, _, workers = case
    train_batch, test_batch = pack(x, y, rows), pack(x[::-1], y[::-1], rows)
    metrics, g, (test,) = value_grads_and_metrics(params, train_batch, [test_batch], None, workers)
    want_metrics, want_grads = reference.value_and_grads(params, x, y)
    assert_same_metrics(metrics, want_metrics)
    assert_same_metrics(test, want_metrics)
    assert_same_gradient(g, want_grads)
    assert metrics_of(params, [train_batch], None, workers) == (metrics,)


def test_the_cases_reach_the_fast_paths():
    """The shapes above take the paths they are meant to test."""
    tiled = blocks.plan(700, [(784, 10), (10, 10)], workers=4)
    assert tiled.tiles[0] == 112 and tiled.workers == 1  # one block of up to 1,008 rows
    assert blocks.plan(700, [(784, 10)], block_rows=224, workers=4).workers == 4
    wide = blocks.plan(300, [(784, 512), (512, 10)], workers=3)
    assert wide.wide[0] and len(wide.blocks) == 1 and wide.product_workers == 3
    assert len(blocks.plan(300, [(784, 512)], block_rows=64, workers=3).blocks) == 5
    rng = np.random.default_rng(0)
    block = digit_like(rng, 64, 784)
    assert (block == 0).all(axis=0).mean() > 0.2  # enough blank columns to drop them
