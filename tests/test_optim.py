"""Optimizers as pure transformations: update rules, weight decay, schedules, chains."""

from __future__ import annotations

import ast
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import problems

import purenet.optim
from purenet.arrays import same_array
from purenet.flat import flatten, unflatten
from purenet.network import value_and_grads
from purenet.optim import (
    Adam,
    AddDecayedWeights,
    Chain,
    EmptyState,
    LearningRate,
    Momentum,
    Scheduled,
    ScheduleState,
    Sgd,
    apply_updates,
)
from purenet.params import Layer, Params, map_params

RULES = [Sgd, lambda lr: Momentum(lr, 0.9), lambda lr: Momentum(lr, 0.9, nesterov=True), Adam]
IDS = ["sgd", "momentum", "nesterov", "adam"]


def _gradient(problem):
    params, x, y = problem
    return params, value_and_grads(params, x, y)[1]


def _run(optimizer, params, grads, steps=3):
    state = optimizer.init(params)
    for _ in range(steps):
        updates, state = optimizer.update(grads, state, params)
        params = apply_updates(params, updates)
    return params, state


def test_optim_knows_nothing_of_the_network():
    tree = ast.parse(Path(purenet.optim.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if "network" in m or "_engine" in m or "train" in m}


@pytest.mark.parametrize("rule", RULES, ids=IDS)
@given(problem=problems())
def test_updates_are_pure_and_deterministic(rule, problem):
    params, grads = _gradient(problem)
    params_copy, grads_copy = map_params(np.copy, params), map_params(np.copy, grads)
    first = _run(rule(0.1), params, grads)
    second = _run(rule(0.1), params, grads)
    assert first == second
    assert params == params_copy and grads == grads_copy  # inputs untouched
    for layer in first[0].layers:
        assert not layer.w.flags.writeable


@pytest.mark.parametrize("rule", RULES, ids=IDS)
@given(problem=problems())
def test_a_zero_learning_rate_leaves_params_unchanged(rule, problem):
    params, grads = _gradient(problem)
    after, _ = _run(rule(0.0), params, grads)
    for old, new in zip(params.layers, after.layers, strict=True):
        assert np.array_equal(old.w, new.w) and np.array_equal(old.b, new.b)


@given(problem=problems(), lr=st.floats(1e-3, 1.0))
def test_momentum_with_beta_zero_is_sgd(problem, lr):
    params, grads = _gradient(problem)
    for nesterov in (False, True):
        momentum = _run(Momentum(lr, 0.0, nesterov), params, grads)[0]
        sgd = _run(Sgd(lr), params, grads)[0]
        # Equal values; the sign of a zero may differ (-0.0 + 0.0 is +0.0 in IEEE 754).
        for a, b in zip(momentum.layers, sgd.layers, strict=True):
            assert np.array_equal(a.w, b.w) and np.array_equal(a.b, b.b)


def test_plain_sgd_keeps_no_state():
    params, grads = _gradient_fixed()
    assert _run(Sgd(0.1), params, grads)[1] == EmptyState()
    assert flatten(EmptyState()) == {}


def test_momentum_accumulates_velocity():
    params, grads = _gradient_fixed()
    rule = Momentum(1.0, 0.5)
    updates, state = rule.update(grads, rule.init(params))
    updates, state = rule.update(grads, state)
    g = grads.layers[0].w
    np.testing.assert_allclose(updates.layers[0].w, -(g + 0.5 * g), rtol=1e-12)
    nesterov = Momentum(1.0, 0.5, True)
    updates, _ = nesterov.update(grads, nesterov.init(params))
    np.testing.assert_allclose(updates.layers[0].w, -(g + 0.5 * g), rtol=1e-12)


def _gradient_fixed():
    rng = np.random.default_rng(0)
    params = Params((Layer(rng.normal(size=(4, 3)), rng.normal(size=3)),))
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    return params, value_and_grads(params, x, y)[1]


@given(problem=problems(), lr=st.floats(1e-4, 1e-1))
def test_adams_first_update_is_about_minus_lr_times_the_sign_of_the_gradient(problem, lr):
    params, grads = _gradient(problem)
    updates, state = Adam(lr).update(grads, Adam(lr).init(params))
    assert state.count == 1
    for u, g in zip(updates.layers, grads.layers, strict=True):
        for ua, ga in ((u.w, g.w), (u.b, g.b)):
            big = np.abs(ga) > 1e-4  # where eps is negligible, the step is -lr sign(g)
            np.testing.assert_allclose(ua[big], -lr * np.sign(ga[big]), rtol=1e-3)
            assert np.all(np.abs(ua) <= lr * (1 + 1e-6))


@given(problem=problems(), decay=st.floats(0, 1))
def test_l2_adds_exactly_lambda_w_to_the_weight_gradient(problem, decay):
    params, grads = _gradient(problem)
    decayed, state = AddDecayedWeights(decay).update(grads, EmptyState(), params)
    assert state == EmptyState()
    for g, p, d in zip(grads.layers, params.layers, decayed.layers, strict=True):
        assert same_array(d.w, g.w + decay * p.w)
        assert same_array(d.b, g.b)  # biases are not decayed


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_a_chain_applies_weight_decay_then_the_rule(rule):
    params, grads = _gradient_fixed()
    chain = Chain((AddDecayedWeights(0.01), rule(0.1)))
    decayed, _ = AddDecayedWeights(0.01).update(grads, EmptyState(), params)
    updates, (decay_state, rule_state) = chain.update(grads, chain.init(params), params)
    expected, expected_state = rule(0.1).update(decayed, rule(0.1).init(params))
    assert updates == expected and rule_state == expected_state
    assert decay_state == EmptyState()


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


def test_the_schedule_position_counts_steps_within_epochs():
    lr = LearningRate(0.2, "cosine", epochs=4, steps_per_epoch=3)
    position, seen = ScheduleState(0, 0), []
    for _ in range(7):
        seen.append((position.epoch, position.step, lr.at(position)))
        position = lr.advance(position)
    assert [(e, s) for e, s, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    # the same float operations as the fold's ``epoch + b / n``
    assert [value for _, _, value in seen] == [lr(e + s / 3) for e, s, _ in seen]


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_a_scheduled_rule_is_the_rule_at_the_schedules_learning_rate(rule):
    params, grads = _gradient_fixed()
    lr = LearningRate(0.3, "step", epochs=4, step_every=1, gamma=0.5, steps_per_epoch=2)
    scheduled = Scheduled(rule(0.3), lr)
    state, plain_state = scheduled.init(params), rule(0.3).init(params)
    for b in range(5):
        updates, state = scheduled.update(grads, state, params)
        expected, plain_state = rule(lr(b // 2 + (b % 2) / 2)).update(grads, plain_state)
        assert updates == expected and state.rule == plain_state
    assert state.schedule == ScheduleState(2, 1)


@pytest.mark.parametrize(
    "optimizer, names",
    [
        (Sgd(0.1), set()),
        (Chain((AddDecayedWeights(0.1), Sgd(0.1))), set()),
        (Momentum(0.1), {"velocity.w0", "velocity.b0"}),
        (Adam(0.1), {"count", "mu.w0", "mu.b0", "nu.w0", "nu.b0"}),
        (
            Chain((AddDecayedWeights(0.1), Scheduled(Adam(0.1), LearningRate(0.1, "cosine")))),
            {"schedule.epoch", "schedule.step", "count", "mu.w0", "mu.b0", "nu.w0", "nu.b0"},
        ),
    ],
    ids=["sgd", "sgd+decay", "momentum", "adam", "decay+scheduled adam"],
)
def test_optimizer_state_round_trips_through_flat_arrays(optimizer, names):
    params, grads = _gradient_fixed()
    _, state = _run(optimizer, params, grads, steps=2)
    arrays = flatten(state)
    assert set(arrays) == names  # as a keyframe holds them, after "opt."
    assert unflatten(optimizer.init(params), arrays) == state
