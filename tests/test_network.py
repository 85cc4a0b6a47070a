"""Properties of the pure network functions: softmax, loss, forward, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import bounded, problems, random_network

from purenet.arrays import same_array
from purenet.network import (
    cross_entropy,
    evaluate,
    forward,
    grads,
    log_softmax,
    loss,
    softmax,
    value_and_grads,
)
from purenet.params import Layer, Params, map_params

logits = st.integers(1, 6).flatmap(
    lambda m: st.integers(2, 8).flatmap(lambda k: bounded(np.float64, (m, k), 50.0))
)


@given(logits)
def test_softmax_rows_sum_to_one_and_are_probabilities(z):
    p = softmax(z)
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


@given(logits, st.floats(-1e3, 1e3))
def test_softmax_ignores_a_constant_shift_per_row(z, c):
    np.testing.assert_allclose(softmax(z + c), softmax(z), atol=1e-12)


@given(st.integers(1, 5), st.integers(2, 12), st.floats(-100, 100))
def test_uniform_logits_give_loss_ln_k(m, k, c):
    z = np.full((m, k), c)
    y = np.arange(m) % k
    assert cross_entropy(z, y) == pytest.approx(math.log(k), rel=1e-12)


def test_uniform_prediction_over_ten_classes_costs_ln_10():
    assert cross_entropy(np.zeros((4, 10)), np.array([0, 3, 9, 5])) == pytest.approx(
        math.log(10), rel=1e-12
    )


@given(problems())
def test_loss_is_non_negative_and_finite(problem):
    params, x, y = problem
    value = loss(params, x, y)
    assert value >= 0 and math.isfinite(value)


def _plain_python_cross_entropy(rows: list[list[float]], labels: list[int]) -> float:
    """An independent oracle: log-sum-exp with the max shifted out, in plain floats."""
    total = 0.0
    for row, label in zip(rows, labels, strict=True):
        top = max(row)
        total += top + math.log(sum(math.exp(v - top) for v in row)) - row[label]
    return total / len(rows)


@pytest.mark.parametrize("big", [1e4, -1e4, 3e4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_exact_for_huge_logits(big, dtype):
    # row 0: the true class is far ahead or far behind; row 1: another class is.
    rows = [[big, 0.0, 0.0], [0.0, big, 0.0]]
    labels = [0, 0]
    got = cross_entropy(np.array(rows, dtype=dtype), np.array(labels))
    assert math.isfinite(got)
    assert got == pytest.approx(_plain_python_cross_entropy(rows, labels), rel=1e-6)
    assert np.all(np.isfinite(log_softmax(np.array(rows, dtype=dtype))))


@given(problems())
def test_forward_matches_explicit_layers(problem):
    params, x, _ = problem
    a = x
    for layer in params.layers[:-1]:
        a = np.maximum(a @ layer.w + layer.b, 0)
    expected = a @ params.layers[-1].w + params.layers[-1].b
    np.testing.assert_allclose(forward(params, x), expected, rtol=1e-12, atol=1e-12)


def _max_relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(a) + np.abs(b), 1e-8)
    return float(np.max(np.abs(a - b) / scale))


def _kink_distance(params: Params, x: np.ndarray) -> float:
    """How close any hidden pre-activation is to the ReLU kink at 0."""
    a, closest = x, np.inf
    for layer in params.layers[:-1]:
        z = a @ layer.w + layer.b
        closest = min(closest, float(np.min(np.abs(z))))
        a = np.maximum(z, 0)
    return closest


def _numeric_grads(
    params: Params, x: np.ndarray, y: np.ndarray, eps: float = 1e-6, loss_fn=loss
) -> Params:
    """Centred finite differences of ``loss_fn`` for every parameter entry."""
    out = []
    for li, layer in enumerate(params.layers):
        numeric = {}
        for name in ("w", "b"):
            array = getattr(layer, name)
            numeric[name] = np.zeros_like(array)
            for index in np.ndindex(array.shape):
                shifted = []
                for sign in (1, -1):
                    changed = array.copy()
                    changed[index] += sign * eps
                    layers = list(params.layers)
                    layers[li] = Layer(**{"w": layer.w, "b": layer.b, name: changed})
                    shifted.append(loss_fn(Params(tuple(layers), params.activation), x, y))
                numeric[name][index] = (shifted[0] - shifted[1]) / (2 * eps)
        out.append(Layer(numeric["w"], numeric["b"]))
    return Params(tuple(out))


def _assert_close_grads(analytic: Params, numeric: Params) -> None:
    for a, n in zip(analytic.layers, numeric.layers, strict=True):
        for got, want in ((a.w, n.w), (a.b, n.b)):
            assert _max_relative_error(got, want) < 1e-6 or np.max(np.abs(got - want)) < 1e-9


@given(problems(max_depth=3))
def test_grads_match_centred_finite_differences(problem):
    params, x, y = problem
    # Away from ReLU kinks only: a step of eps must not flip any hidden unit.
    if _kink_distance(params, x) < 1e-3:
        return
    _assert_close_grads(grads(params, x, y), _numeric_grads(params, x, y))


@given(problems())
def test_inputs_are_not_mutated(problem):
    params, x, y = problem
    x_before, y_before = x.copy(), y.copy()
    copies = map_params(np.copy, params)
    x.setflags(write=True)
    value_and_grads(params, x, y)
    forward(params, x)
    loss(params, x, y)
    assert same_array(x, x_before) and same_array(y, y_before)
    assert params == copies


@given(problems())
def test_same_inputs_give_bit_identical_outputs(problem):
    params, x, y = problem
    m1, g1 = value_and_grads(params, x, y)
    m2, g2 = value_and_grads(params, x.copy(), y.copy())
    assert m1 == m2 and g1 == g2
    assert same_array(forward(params, x), forward(params, x.copy()))


@given(problems())
def test_gradient_arrays_are_read_only_and_shaped_like_params(problem):
    params, x, y = problem
    g = grads(params, x, y)
    for layer, grad in zip(params.layers, g.layers, strict=True):
        assert grad.w.shape == layer.w.shape and grad.b.shape == layer.b.shape
        assert grad.w.dtype == layer.w.dtype
        assert not grad.w.flags.writeable and not grad.b.flags.writeable


@given(problems())
def test_evaluate_agrees_with_value_and_grads(problem):
    params, x, y = problem
    metrics, _ = value_and_grads(params, x, y)
    assert evaluate(params, x, y) == metrics
    assert metrics.loss == pytest.approx(loss(params, x, y), rel=1e-12)
    expected_accuracy = np.mean(np.argmax(forward(params, x), axis=1) == y)
    assert metrics.accuracy == pytest.approx(expected_accuracy)


def test_float32_params_compute_in_float32():
    rng = np.random.default_rng(0)
    params = Params((Layer(rng.normal(size=(5, 3)).astype(np.float32), np.zeros(3, np.float32)),))
    x = rng.random((4, 5), dtype=np.float32)
    assert forward(params, x).dtype == np.float32
    g = grads(params, x, np.array([0, 1, 2, 0]))
    assert g.layers[0].w.dtype == np.float32


def test_grads_match_finite_differences_on_a_deep_random_network():
    rng = np.random.default_rng(7)
    sizes = (5, 4, 3, 3)
    params = random_network(rng, sizes)
    x = rng.normal(size=(6, sizes[0]))
    y = rng.integers(0, sizes[-1], size=6)
    assert _kink_distance(params, x) > 1e-4
    _assert_close_grads(grads(params, x, y), _numeric_grads(params, x, y))


@given(
    st.lists(st.sampled_from([0.0, 1.0, 2.0, np.inf, -np.inf, np.nan]), min_size=4, max_size=4),
    st.lists(st.integers(0, 3), min_size=1, max_size=12),
)
def test_accuracy_is_argmax_accuracy_even_with_ties_and_non_finite_logits(biases, labels):
    """Every sample's logits are the biases (zero weights): ties between classes and
    infinite or NaN logits are common here, and argmax (the first maximum) decides."""
    params = Params((Layer(np.zeros((3, 4)), np.array(biases)),))
    x, y = np.ones((len(labels), 3)), np.array(labels)
    with np.errstate(invalid="ignore"):
        metrics = evaluate(params, x, y)
        expected = np.mean(np.argmax(forward(params, x), axis=1) == y)
    assert metrics.accuracy == expected
