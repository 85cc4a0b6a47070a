"""Optimizers, weight decay and learning-rate schedules: pure update rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import problems

from purenet.network import value_and_grads
from purenet.optim import (
    Adam,
    LearningRate,
    Momentum,
    Sgd,
    add_weight_decay,
    apply_updates,
)
from purenet.params import Layer, Params, map_params, same_array

OPTIMIZERS = [Sgd(), Momentum(0.9), Momentum(0.9, nesterov=True), Adam()]
IDS = ["sgd", "momentum", "nesterov", "adam"]


def _gradient(problem):
    params, x, y = problem
    return params, value_and_grads(params, x, y)[1]


def _run(optimizer, params, grads, lr, steps=3):
    state = optimizer.init(params)
    for _ in range(steps):
        updates, state = optimizer.update(grads, state, lr)
        params = apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=IDS)
@given(problem=problems())
def test_updates_are_pure_and_deterministic(optimizer, problem):
    params, grads = _gradient(problem)
    params_copy, grads_copy = map_params(np.copy, params), map_params(np.copy, grads)
    first = _run(optimizer, params, grads, 0.1)
    second = _run(optimizer, params, grads, 0.1)
    assert first == second
    assert params == params_copy and grads == grads_copy  # inputs untouched
    for layer in first[0].layers:
        assert not layer.w.flags.writeable


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=IDS)
@given(problem=problems())
def test_a_zero_learning_rate_leaves_params_unchanged(optimizer, problem):
    params, grads = _gradient(problem)
    after, _ = _run(optimizer, params, grads, 0.0)
    for old, new in zip(params.layers, after.layers, strict=True):
        assert np.array_equal(old.w, new.w) and np.array_equal(old.b, new.b)


@given(problem=problems(), lr=st.floats(1e-3, 1.0))
def test_momentum_with_beta_zero_is_sgd(problem, lr):
    params, grads = _gradient(problem)
    for nesterov in (False, True):
        momentum = _run(Momentum(0.0, nesterov), params, grads, lr)[0]
        sgd = _run(Sgd(), params, grads, lr)[0]
        # Equal values; the sign of a zero may differ (-0.0 + 0.0 is +0.0 in IEEE 754).
        for a, b in zip(momentum.layers, sgd.layers, strict=True):
            assert np.array_equal(a.w, b.w) and np.array_equal(a.b, b.b)


def test_momentum_accumulates_velocity():
    params, grads = _gradient_fixed()
    updates, state = Momentum(0.5).update(grads, Momentum(0.5).init(params), 1.0)
    updates, state = Momentum(0.5).update(grads, state, 1.0)
    g = grads.layers[0].w
    np.testing.assert_allclose(updates.layers[0].w, -(g + 0.5 * g), rtol=1e-12)
    nesterov, _ = Momentum(0.5, True).update(grads, Momentum(0.5, True).init(params), 1.0)
    np.testing.assert_allclose(nesterov.layers[0].w, -(g + 0.5 * g), rtol=1e-12)


def _gradient_fixed():
    rng = np.random.default_rng(0)
    params = Params((Layer(rng.normal(size=(4, 3)), rng.normal(size=3)),))
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    return params, value_and_grads(params, x, y)[1]


@given(problem=problems(), lr=st.floats(1e-4, 1e-1))
def test_adams_first_update_is_about_minus_lr_times_the_sign_of_the_gradient(problem, lr):
    params, grads = _gradient(problem)
    updates, state = Adam().update(grads, Adam().init(params), lr)
    assert state.count == 1
    for u, g in zip(updates.layers, grads.layers, strict=True):
        for ua, ga in ((u.w, g.w), (u.b, g.b)):
            big = np.abs(ga) > 1e-4  # where eps is negligible, the step is -lr sign(g)
            np.testing.assert_allclose(ua[big], -lr * np.sign(ga[big]), rtol=1e-3)
            assert np.all(np.abs(ua) <= lr * (1 + 1e-6))


@given(problem=problems(), decay=st.floats(0, 1))
def test_l2_adds_exactly_lambda_w_to_the_weight_gradient(problem, decay):
    params, grads = _gradient(problem)
    decayed = add_weight_decay(grads, params, decay)
    for g, p, d in zip(grads.layers, params.layers, decayed.layers, strict=True):
        assert same_array(d.w, g.w + decay * p.w)
        assert same_array(d.b, g.b)  # biases are not decayed


def test_schedules():
    constant = LearningRate(0.1)
    assert constant(0) == constant(57.3) == 0.1
    step = LearningRate(0.1, "step", epochs=100, step_every=30, gamma=0.1)
    assert (
        step(29.9) == 0.1 and step(30) == pytest.approx(0.01) and step(61) == pytest.approx(0.001)
    )
    cosine = LearningRate(0.2, "cosine", epochs=10)
    assert cosine(0) == pytest.approx(0.2) and cosine(5) == pytest.approx(0.1)
    assert cosine(10) == pytest.approx(0.0, abs=1e-12)
    values = [cosine(e / 4) for e in range(41)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert math.isclose(cosine(2.5), 0.1 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=IDS)
def test_optimizer_state_round_trips_through_arrays(optimizer):
    params, grads = _gradient_fixed()
    _, state = _run(optimizer, params, grads, 0.1, steps=2)
    assert optimizer.state_from_arrays(state.arrays(), params) == state
