"""The training fold: what each snapshot means, determinism, divergence, real MNIST."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import problems

from purenet.arrays import same_array
from purenet.config import Config
from purenet.data import Dataset
from purenet.errors import ConfigError
from purenet.network import evaluate, metrics_of, value_and_grads, value_grads_and_metrics
from purenet.optim import Sgd, apply_updates
from purenet.params import init_params, map_params
from purenet.train import TrainState, initial_state, packed_batches, step, train


def synthetic(seed: int = 0, m: int = 64, m_test: int = 32) -> Dataset:
    """A small random problem in MNIST's shape (784 features, 10 classes)."""
    rng = np.random.default_rng(seed)
    return Dataset(
        rng.random((m, 784), dtype=np.float32),
        rng.integers(0, 10, m),
        rng.random((m_test, 784), dtype=np.float32),
        rng.integers(0, 10, m_test),
    )


def test_snapshot_t_holds_params_after_t_updates_and_their_metrics():
    data = synthetic()
    config = Config(hidden=(8,), epochs=6, lr=0.5, seed=3)
    snapshots = list(train(config, data))
    assert [s.epoch for s in snapshots] == list(range(7))
    assert snapshots[0].params == initial_state(config).params
    packed = packed_batches(config, data)
    for before, after in itertools.pairwise(snapshots):
        # the fold's gradient is the packed batch's, bit for bit; the dense one's up to rounding
        _, g, _ = value_grads_and_metrics(before.params, packed[0])
        expected = apply_updates(before.params, map_params(lambda a: -np.float32(0.5) * a, g))
        assert after.params == expected
        _, dense_g = value_and_grads(before.params, data.x_train, data.y_train)
        for got, dense in zip(g.layers, dense_g.layers, strict=True):
            np.testing.assert_allclose(got.w, dense.w, rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(got.b, dense.b, rtol=1e-4, atol=1e-7)
    for s in snapshots:  # metrics describe the snapshot's own params, bit for bit
        assert (s.train, s.test) == metrics_of(s.params, packed)
        for got, dense in (
            (s.train, evaluate(s.params, data.x_train, data.y_train)),
            (s.test, evaluate(s.params, data.x_test, data.y_test)),
        ):
            assert got.accuracy == dense.accuracy
            assert got.loss == pytest.approx(dense.loss, rel=1e-6)


def test_same_config_gives_bit_identical_snapshots_and_another_seed_does_not():
    data = synthetic()
    config = Config(hidden=(8, 5), epochs=4, seed=11)
    first, second = list(train(config, data)), list(train(config, data))
    assert first == second
    other = list(train(Config(hidden=(8, 5), epochs=4, seed=12), data))
    assert other[-1].params != first[-1].params


def test_resuming_from_a_state_continues_the_same_fold():
    data = synthetic()
    config = Config(hidden=(6,), epochs=5, seed=1)
    full = list(train(config, data))
    resumed = list(train(config, data, start=full[2].state))
    assert resumed == full[2:]


def test_the_fold_stops_at_the_first_diverged_snapshot():
    data = synthetic()
    snapshots = list(train(Config(hidden=(8,), epochs=50, lr=1e6), data))
    assert snapshots[-1].diverged
    assert not any(s.diverged for s in snapshots[:-1])
    assert len(snapshots) < 51


def test_training_neither_uses_nor_changes_numpy_global_random_state():
    data = synthetic()
    np.random.seed(0)  # noqa: NPY002 (the global state is what is under test)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first = list(train(Config(epochs=2), data))
    assert same_array(np.random.get_state()[1], before)  # noqa: NPY002
    np.random.seed(99)  # noqa: NPY002
    assert list(train(Config(epochs=2), data)) == first


@given(problems())
def test_step_with_zero_learning_rate_changes_nothing_and_leaves_inputs(problem):
    params, x, y = problem
    x_copy, params_copy = x.copy(), map_params(np.copy, params)
    state = TrainState(params, Sgd(0.0).init(params), 0)
    new_state, metrics = step(state, x, y, Sgd(0.0))
    # equal values (a -0.0 weight may come back as +0.0: -0.0 + 0.0 is +0.0 in IEEE 754)
    for old, new in zip(params.layers, new_state.params.layers, strict=True):
        assert np.array_equal(old.w, new.w) and np.array_equal(old.b, new.b)
    assert new_state.epoch == state.epoch
    assert metrics == evaluate(params, x, y)
    assert same_array(x, x_copy) and params == params_copy
    for layer in new_state.params.layers:
        assert not layer.w.flags.writeable


def test_step_takes_dropout_only_by_keyword():
    params = init_params((6, 4, 3), seed=0, dtype=np.float64)
    x, y = np.random.default_rng(0).normal(size=(5, 6)), np.arange(5) % 3
    state = TrainState(params, Sgd(0.1).init(params), 0)
    with pytest.raises(TypeError, match="positional"):
        step(state, x, y, Sgd(0.1), 0.1)  # an old positional call: 0.1 is not taken as dropout
    dropped, _ = step(state, x, y, Sgd(0.1), dropout=0.5, dropout_key=(1,))
    assert dropped != step(state, x, y, Sgd(0.1))[0]


@given(problems(), st.floats(1e-3, 1.0))
def test_step_is_deterministic_and_moves_against_the_gradient(problem, lr):
    params, x, y = problem
    state = TrainState(params, Sgd(lr).init(params), 0)
    a, _ = step(state, x, y, Sgd(lr))
    b, _ = step(state, x, y, Sgd(lr))
    assert a == b
    g = value_and_grads(params, x, y)[1]
    for old, new, grad in zip(params.layers, a.params.layers, g.layers, strict=True):
        np.testing.assert_allclose(new.w, old.w - lr * grad.w, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"lr": -1.0},
        {"lr": math.nan},
        {"lr": math.inf},
        {"epochs": 0},
        {"hidden": (0,)},
        {"hidden": ()},
        {"seed": -1},
    ],
)
def test_config_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        Config(**kwargs)


def test_config_rejects_an_unknown_split():
    with pytest.raises(ValueError):
        Config(split="random")


@pytest.mark.slow
@pytest.mark.mnist
def test_hundred_reference_epochs_on_real_mnist_learn(reference_data):
    snapshots = list(train(Config(epochs=100), reference_data))
    first, last = snapshots[0], snapshots[-1]
    assert last.epoch == 100
    assert first.test.accuracy < 0.2  # an untrained network is near chance
    assert last.train.loss < 0.5 * first.train.loss
    assert last.test.accuracy > 0.75  # chance is 0.1
    assert last.params.dtype == np.float32
