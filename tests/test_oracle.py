"""The reference network is right, and the training step follows it.

:mod:`purenet.reference` is the definition of what purenet computes; here its gradient is
checked against finite differences of its own loss (every activation, any depth, with
dropout masks held fixed), and plain gradient descent through purenet's training step is
checked against gradient descent written with the reference, step after step. (The fast
engine against the reference, on the shapes where it is fast: ``tests/test_engine.py``.)
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from purenet import reference
from purenet.optim import Sgd
from purenet.params import Activation, Layer, Params
from purenet.train import TrainState, step


def _network(rng: np.random.Generator, sizes, activation) -> Params:
    return Params(
        tuple(
            Layer(rng.normal(0, 1 / np.sqrt(a), (a, b)), rng.normal(0, 0.1, b))
            for a, b in itertools.pairwise(sizes)
        ),
        activation,
    )


def _numeric_gradient(params: Params, x, y, masks, h: float = 1e-6) -> list[np.ndarray]:
    """Central differences of the reference loss, parameter array by parameter array."""
    flat = [a for layer in params.layers for a in (layer.w, layer.b)]
    grads = []
    for i, array in enumerate(flat):
        g = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            losses = []
            for sign in (1, -1):
                moved = [a.copy() for a in flat]
                moved[i][index] += sign * h
                layers = tuple(Layer(w, b) for w, b in zip(moved[::2], moved[1::2], strict=True))
                trace = reference.forward_trace(Params(layers, params.activation), x, masks=masks)
                losses.append(reference.cross_entropy(trace.logits, y))
            g[index] = (losses[0] - losses[1]) / (2 * h)
        grads.append(g)
    return grads


@pytest.mark.parametrize("activation", list(Activation))
@pytest.mark.parametrize("sizes", [(5, 3), (5, 4, 3), (6, 5, 4, 3)])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_the_reference_gradient_is_the_derivative_of_its_loss(activation, sizes, dropout):
    rng = np.random.default_rng(len(sizes))
    params = _network(rng, sizes, activation)
    x, y = rng.normal(size=(9, sizes[0])), rng.integers(0, sizes[-1], 9)
    widths = sizes[1:-1]
    masks = reference.dropout_masks(len(x), widths, dropout, (3,), x.dtype) if dropout else None
    _, analytic = reference.value_and_grads(params, x, y, masks=masks)
    numeric = _numeric_gradient(params, x, y, masks)
    got = [a for layer in analytic.layers for a in (layer.w, layer.b)]
    for a, n in zip(got, numeric, strict=True):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)


def test_the_reference_metrics_are_the_textbook_ones():
    rng = np.random.default_rng(1)
    params = _network(rng, (8, 6, 4), Activation.RELU)
    x, y = rng.normal(size=(30, 8)), rng.integers(0, 4, 30)
    logits = reference.forward(params, x)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics, _ = reference.value_and_grads(params, x, y)
    assert metrics.loss == pytest.approx(-np.mean(np.log(probabilities[np.arange(30), y])))
    assert metrics.accuracy == np.mean(probabilities.argmax(axis=1) == y)


def test_training_steps_follow_gradient_descent_on_the_reference():
    """The reference tutorial's network (784 -> 10 ReLU -> 10 softmax, here on 30
    inputs), 25 steps of gradient descent with learning rate 0.1."""
    rng = np.random.default_rng(3)
    lr, m = 0.1, 200
    x, y = rng.random((m, 30)), rng.integers(0, 10, m)
    params = Params(
        (
            Layer(rng.uniform(-0.5, 0.5, (30, 10)), rng.uniform(-0.5, 0.5, 10)),
            Layer(rng.uniform(-0.5, 0.5, (10, 10)), rng.uniform(-0.5, 0.5, 10)),
        )
    )
    state = TrainState(params, Sgd(lr).init(params), 0)
    for _ in range(25):
        want, g = reference.value_and_grads(params, x, y)
        state, got = step(state, x, y, Sgd(lr))
        assert got.loss == pytest.approx(want.loss, rel=1e-12)
        assert got.accuracy == want.accuracy
        params = Params(
            tuple(
                Layer(p.w - lr * d.w, p.b - lr * d.b)
                for p, d in zip(params.layers, g.layers, strict=False)
            )
        )
        for ours, theirs in zip(state.params.layers, params.layers, strict=True):
            np.testing.assert_allclose(ours.w, theirs.w, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(ours.b, theirs.b, rtol=1e-9, atol=1e-12)
