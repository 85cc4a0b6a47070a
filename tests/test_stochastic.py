"""Mini-batches, dropout, augmentation, validation: determinism, replay and resume."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from strategies import random_network
from test_network import _assert_close_grads, _numeric_grads
from test_train import synthetic

from purenet import reference
from purenet.config import Config
from purenet.network import evaluate, forward, metrics_of, value_and_grads
from purenet.params import Activation, Layer, Params, init_params
from purenet.reference import dropout_masks
from purenet.replay import differing_columns, replay
from purenet.runner import prepare_resume, record_training
from purenet.runs import Run
from purenet.train import epoch_order, hold_out_validation, packed_batches, train

STOCHASTIC = {
    "minibatch": {"batch_size": 16, "optimizer": "momentum", "schedule": "cosine"},
    "dropout": {"batch_size": 16, "dropout": 0.3, "optimizer": "adam", "lr": 0.01},
    "augment": {"batch_size": 20, "shift": 2, "rotate": 10, "scale": 0.1},
    "elastic": {
        "batch_size": 20,
        "shift": 1,
        "rotate": 10,
        "elastic_alpha": 20,
        "elastic_sigma": 3,
    },
    "elastic-shift": {"batch_size": 16, "shift": 2, "elastic_alpha": 34, "dropout": 0.2},
    "fullbatch-dropout": {"dropout": 0.2, "weight_decay": 1e-3},
    "validation": {"batch_size": 16, "validation": 12, "optimizer": "momentum", "nesterov": True},
}


def config(name: str, **extra) -> Config:
    return Config(
        **{"hidden": (12, 8), "epochs": 7, "seed": 3, "lr": 0.1, **STOCHASTIC[name], **extra}
    )


def metrics_columns(run: Run) -> list[str]:
    """The rows without their timing, as text (so that NaN equals NaN)."""
    return [repr(attrs.astuple(r)[:-1]) for r in run.rows()]


@pytest.mark.parametrize("name", STOCHASTIC)
def test_same_config_same_snapshots(name):
    data = synthetic(m=80)
    assert list(train(config(name), data)) == list(train(config(name), data))


@pytest.mark.parametrize("name", STOCHASTIC)
def test_every_epoch_replays_bit_for_bit(name, tmp_path):
    data = synthetic(m=80)
    seen = []
    run = Run.create(tmp_path / name, config(name), data.sha256, keyframe_every=3)
    record_training(run, data, on_snapshot=seen.append)
    rows = run.rows()
    assert [s.epoch for s in seen] == list(range(8))
    for snapshot in seen:
        again = replay(Run.open(run.folder), snapshot.epoch, data)
        assert again == snapshot
        assert differing_columns(again, rows[snapshot.epoch]) == []


@pytest.mark.parametrize("name", STOCHASTIC)
def test_resume_after_an_interrupt_is_bit_identical(name, tmp_path):
    data = synthetic(m=80)
    whole = Run.create(tmp_path / "whole", config(name), data.sha256, keyframe_every=3)
    record_training(whole, data)

    def stop(snapshot):
        if snapshot.epoch == 5:
            raise KeyboardInterrupt

    cut = Run.create(tmp_path / "cut", config(name), data.sha256, keyframe_every=3)
    assert record_training(cut, data, on_snapshot=stop).status == "interrupted"
    (cut.folder / "snapshots" / "epoch-000004.npz").unlink()  # as if killed: resume from 3
    start, seconds = prepare_resume(Run.open(cut.folder))
    assert start.epoch == 3
    record_training(cut, data, start, seconds)
    assert cut.load_keyframe(7) == whole.load_keyframe(7)  # params and optimizer state
    assert metrics_columns(cut) == metrics_columns(whole)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    c = Config(batch_size=10, seed=4)
    assert np.array_equal(epoch_order(c, 50, 3), epoch_order(c, 50, 3))
    assert not np.array_equal(epoch_order(c, 50, 3), epoch_order(c, 50, 4))
    assert sorted(epoch_order(c, 50, 3)) == list(range(50))
    assert np.array_equal(epoch_order(Config(), 50, 3), np.arange(50))


def test_stochastic_train_metrics_are_the_mean_over_the_epochs_batches():
    data = synthetic(m=48)
    cfg = Config(hidden=(6,), epochs=1, batch_size=16, lr=0.05)
    first, second = list(train(cfg, data))
    assert first.train == evaluate(first.params, data.x_train, data.y_train)  # exact at 0
    params, losses, correct = first.params, [], 0
    order = epoch_order(cfg, 48, 0)
    for b in range(3):
        rows = order[b * 16 : (b + 1) * 16]
        metrics, g = value_and_grads(params, data.x_train[rows], data.y_train[rows])
        losses.append(metrics.loss)
        correct += round(metrics.accuracy * 16)
        params = Params(
            tuple(
                Layer(p.w - np.float32(0.05) * q.w, p.b - np.float32(0.05) * q.b)
                for p, q in zip(params.layers, g.layers, strict=True)
            )
        )
    assert second.train.loss == pytest.approx(np.mean(losses), rel=1e-12)
    assert second.train.accuracy == correct / 48
    assert second.params == params


def test_dropout_is_off_at_evaluation_and_keeps_the_expected_fraction():
    params = init_params((20, 400, 3), seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(50, 20))
    y = np.zeros(50, dtype=int)
    assert np.array_equal(forward(params, x), forward(params, x))
    # Count surviving units through the gradient of the first layer's bias: a dropped
    # unit's pre-activation gets no gradient from any sample.
    for rate in (0.2, 0.5):
        masks = dropout_masks(len(x), (400,), rate, (1,), np.float64)
        kept = np.mean(masks[0] > 0)
        assert kept == pytest.approx(1 - rate, abs=0.01)
        assert np.allclose(masks[0][masks[0] > 0], 1 / (1 - rate))
    with_dropout = value_and_grads(params, x, y, dropout=0.5, dropout_key=(1,))[0]
    without = value_and_grads(params, x, y)[0]
    assert with_dropout != without and without == evaluate(params, x, y)


def test_dropout_masks_do_not_depend_on_the_blocks():
    """The masks are drawn per batch: cutting the batch into other blocks changes the
    rounding of the sums, never which units are dropped."""
    params = init_params((20, 30, 3), seed=0, dtype=np.float64)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 20)), rng.integers(0, 3, 40)
    masks = dropout_masks(40, (30,), 0.5, (7,), np.float64)
    expected = reference.value_and_grads(params, x, y, masks=masks)
    for block_rows in (40, 16, 7, 1):
        metrics, g = value_and_grads(
            params, x, y, dropout=0.5, dropout_key=(7,), block_rows=block_rows, workers=2
        )
        assert metrics.loss == pytest.approx(expected[0].loss, rel=1e-12)
        assert metrics.accuracy == expected[0].accuracy
        for got, want in zip(g.layers, expected[1].layers, strict=True):
            np.testing.assert_allclose(got.w, want.w, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(got.b, want.b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", list(Activation))
def test_gradients_with_every_activation_and_dropout_match_finite_differences(activation):
    rng = np.random.default_rng(5)
    sizes = (6, 5, 4, 3)
    params = random_network(rng, sizes, activation)
    x, y = rng.normal(size=(7, 6)), rng.integers(0, 3, 7)
    analytic = value_and_grads(params, x, y)[1]
    _assert_close_grads(analytic, _numeric_grads(params, x, y))
    if activation is not Activation.RELU:  # smooth: so is the loss with fixed masks
        key = (9,)

        def fixed_mask_loss(p, xx, yy):
            return value_and_grads(p, xx, yy, dropout=0.3, dropout_key=key)[0].loss

        analytic = value_and_grads(params, x, y, dropout=0.3, dropout_key=key)[1]
        _assert_close_grads(analytic, _numeric_grads(params, x, y, loss_fn=fixed_mask_loss))


def test_validation_is_carved_from_training_data_only():
    data = synthetic(m=60, m_test=20)
    arrays = hold_out_validation(data, 15, seed=2)
    assert len(arrays.y_valid) == 15 and len(arrays.y_train) == 45
    rows = {r.tobytes() for r in np.concatenate([arrays.x_train, arrays.x_valid])}
    assert rows == {r.tobytes() for r in data.x_train}
    assert not rows & {r.tobytes() for r in data.x_test}
    config = Config(hidden=(4,), epochs=2, validation=15, seed=2)
    snapshots = list(train(config, data))
    assert all(s.valid is not None for s in snapshots)
    _, _, packed_valid = packed_batches(config, data)
    assert packed_valid.m == 15
    assert (snapshots[-1].valid,) == metrics_of(snapshots[-1].params, [packed_valid])
    dense = evaluate(snapshots[-1].params, arrays.x_valid, arrays.y_valid)
    assert snapshots[-1].valid.accuracy == dense.accuracy
    assert snapshots[-1].valid.loss == pytest.approx(dense.loss, rel=1e-6)


def _ink_in_boxes(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` (m, 784) with each image blank outside a random box, as digits on a page."""
    rng = np.random.default_rng(seed)
    images = x.reshape(-1, 28, 28).copy()
    for image in images:
        top, left = rng.integers(0, 14, 2)
        bottom, right = rng.integers(15, 29, 2)
        ink = np.zeros((28, 28), bool)
        ink[top:bottom, left:right] = True
        image[~ink] = 0
    return images.reshape(len(x), -1)


def test_a_stochastic_fold_evaluates_the_held_out_sets_from_their_packed_blocks():
    data = synthetic(m=60, m_test=4500)  # more than one packed block of 2,046 rows
    data = attrs.evolve(
        data, x_train=_ink_in_boxes(data.x_train, 1), x_test=_ink_in_boxes(data.x_test, 2)
    )
    cfg = config("validation")
    held_out = packed_batches(cfg, data, with_train=False)
    assert [batch.m for batch in held_out] == [4500, 12]
    differs = False
    for snapshot in train(cfg, data):
        assert (snapshot.test, snapshot.valid) == metrics_of(snapshot.params, held_out)
        dense = evaluate(snapshot.params, data.x_test, data.y_test)
        assert snapshot.test.accuracy == dense.accuracy
        assert snapshot.test.loss == pytest.approx(dense.loss, rel=1e-6)
        differs |= snapshot.test.loss != dense.loss
    assert differs  # else this test could not tell packed blocks from dense ones


def test_early_stopping_stops_and_records_the_best_epoch(tmp_path):
    data = synthetic(m=60)
    cfg = Config(hidden=(4,), epochs=60, batch_size=10, lr=0.5, validation=20, patience=3)
    run = Run.create(tmp_path / "r", cfg, data.sha256)
    outcome = record_training(run, data)
    rows = run.rows()
    best = max(rows, key=lambda r: (r.valid_acc, -r.epoch))
    assert outcome.stopped_early and outcome.best_epoch == best.epoch
    assert rows[-1].epoch == best.epoch + 3 < 60
    status = run.status()
    assert status["stopped_early"] and status["best_epoch"] == best.epoch
    assert run.keyframe_epochs()[-1] == rows[-1].epoch


@pytest.mark.mnist
def test_one_minibatch_epoch_on_real_mnist_beats_the_reference_run(reference_data):
    snapshots = list(
        train(
            Config(hidden=(64,), epochs=1, batch_size=128, optimizer="momentum"),
            reference_data,
        )
    )
    # The reference reaches about 90% after 2500 full-batch epochs; one epoch of
    # mini-batches gets past it.
    assert snapshots[-1].test.accuracy > 0.93
