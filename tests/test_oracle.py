"""The project's core against the reference formulas written literally.

The oracle keeps the reference's own layout (features x samples: X is (784, m), W1 is
(10, 784)) and float64, and spells out each formula of the reference document. The core
uses samples x features and its own code; the two must agree step after step.
"""

from __future__ import annotations

import numpy as np

from purenet.network import value_and_grads
from purenet.optim import Sgd, TrainState, step
from purenet.params import Layer, Params


def oracle_forward(W1, b1, W2, b2, X):
    Z1 = W1.dot(X) + b1
    A1 = np.maximum(Z1, 0)
    Z2 = W2.dot(A1) + b2
    A2 = np.exp(Z2 - Z2.max(axis=0)) / np.exp(Z2 - Z2.max(axis=0)).sum(axis=0)
    return Z1, A1, Z2, A2


def oracle_backprop(Z1, A1, A2, W2, X, Y):
    m = X.shape[1]
    dZ2 = A2 - Y
    dW2 = dZ2.dot(A1.T) / m
    db2 = dZ2.mean(axis=1, keepdims=True)
    dZ1 = W2.T.dot(dZ2) * (Z1 > 0)
    dW1 = dZ1.dot(X.T) / m
    db1 = dZ1.mean(axis=1, keepdims=True)
    return dW1, db1, dW2, db2


def one_hot(y, k):
    Y = np.zeros((k, y.size))
    Y[y, np.arange(y.size)] = 1
    return Y


def test_core_and_literal_reference_agree_for_several_steps():
    rng = np.random.default_rng(3)
    n_in, n_hidden, n_out, m, lr = 30, 10, 10, 200, 0.1
    X = rng.random((n_in, m))  # features x samples, as in the reference
    y = rng.integers(0, n_out, m)
    Y = one_hot(y, n_out)
    W1 = rng.uniform(-0.5, 0.5, (n_hidden, n_in))
    b1 = rng.uniform(-0.5, 0.5, (n_hidden, 1))
    W2 = rng.uniform(-0.5, 0.5, (n_out, n_hidden))
    b2 = rng.uniform(-0.5, 0.5, (n_out, 1))

    def as_params():
        return Params((Layer(W1.T, b1[:, 0]), Layer(W2.T, b2[:, 0])))

    state = TrainState(as_params(), Sgd().init(as_params()), 0)
    x = np.ascontiguousarray(X.T)  # the core's samples x features
    for _ in range(25):
        Z1, A1, _, A2 = oracle_forward(W1, b1, W2, b2, X)
        oracle_loss = -np.mean(np.log(A2[y, np.arange(m)]))
        oracle_accuracy = np.mean(A2.argmax(axis=0) == y)
        dW1, db1, dW2, db2 = oracle_backprop(Z1, A1, A2, W2, X, Y)

        metrics, g = value_and_grads(state.params, x, y)
        np.testing.assert_allclose(metrics.loss, oracle_loss, rtol=1e-12)
        assert metrics.accuracy == oracle_accuracy
        np.testing.assert_allclose(g.layers[0].w, dW1.T, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(g.layers[0].b, db1[:, 0], rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(g.layers[1].w, dW2.T, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(g.layers[1].b, db2[:, 0], rtol=1e-9, atol=1e-14)

        W1, b1, W2, b2 = W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
        state, _ = step(state, x, y, Sgd(), lr)
        np.testing.assert_allclose(state.params.layers[0].w, W1.T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state.params.layers[1].b, b2[:, 0], rtol=1e-9, atol=1e-12)


def test_a_wide_layer_that_skips_blank_columns_still_matches_the_reference():
    """784 -> 80 is wide, so each block leaves out the input columns that are blank in all
    of its rows (here most of them); the gradient must not notice."""
    rng = np.random.default_rng(5)
    n_in, n_hidden, n_out, m = 784, 80, 10, 300
    X = rng.random((n_in, m)) * (rng.random((n_in, m)) < 0.05)
    X[rng.random(n_in) < 0.5] = 0.0  # half the pixels blank in every sample
    y = rng.integers(0, n_out, m)
    W1, b1 = rng.normal(0, 0.05, (n_hidden, n_in)), rng.normal(0, 0.1, (n_hidden, 1))
    W2, b2 = rng.normal(0, 0.3, (n_out, n_hidden)), rng.normal(0, 0.1, (n_out, 1))
    Z1, A1, _, A2 = oracle_forward(W1, b1, W2, b2, X)
    expected = oracle_backprop(Z1, A1, A2, W2, X, one_hot(y, n_out))
    params = Params((Layer(W1.T, b1[:, 0]), Layer(W2.T, b2[:, 0])))
    metrics, g = value_and_grads(params, np.ascontiguousarray(X.T), y)
    assert np.isclose(metrics.loss, -np.mean(np.log(A2[y, np.arange(m)])), rtol=1e-12)
    got = (g.layers[0].w.T, g.layers[0].b[:, None], g.layers[1].w.T, g.layers[1].b[:, None])
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert not g.layers[0].w[(X == 0).all(axis=1)].any()  # blank inputs, no gradient
