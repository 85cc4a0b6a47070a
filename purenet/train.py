"""Training as a fold over epochs.

:func:`train` is a generator: it starts from the initial state and yields one
:class:`Snapshot` per epoch; snapshot ``t`` holds the params after ``t`` epochs. Test (and
validation) metrics are always exact for those params. What the *train* metrics mean
depends on the kind of run:

- **Full batch, no dropout, no augmentation** (the reference): snapshot ``t``'s train
  metrics are exact for ``params_t``. The forward pass over the training set at
  ``params_t`` gives both those metrics and the gradient that makes ``params_t+1``, so an
  epoch reads the training set once forwards and once backwards.
- **Stochastic** (mini-batches, dropout or augmentation): the params move within an epoch,
  so snapshot ``t``'s train metrics are the mean over epoch ``t``'s batches of the loss and
  accuracy actually trained on (with dropout and distortions). The first snapshot of a
  fold (epoch 0, or the state it resumes from) is evaluated exactly instead.

Every random choice (epoch order, dropout masks, distortions, validation split) is drawn
from a generator seeded with ``(seed, stream, epoch, batch)`` (the streams:
:class:`purenet.seeds.Stream`): a pure function of the configuration, never NumPy's
global state. The same config and data give bit-identical
snapshots, and a fold started from any saved state continues exactly as the original.

The settings are a :class:`purenet.config.Config`; the optimizer it describes
(:mod:`purenet.optim`) updates a :class:`TrainState` by :func:`step`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import numpy as np

from purenet._engine.packing import pack_for_layers
from purenet.augment import augment
from purenet.config import Config
from purenet.data import Dataset
from purenet.errors import ConfigError
from purenet.flat import FLAT_NAME
from purenet.network import (
    Metrics,
    evaluate,
    metrics_of,
    value_and_grads,
    value_grads_and_metrics,
)
from purenet.optim import OptState, Transformation, apply_updates
from purenet.params import Params, init_params, zero_params
from purenet.seeds import Stream

if TYPE_CHECKING:
    from purenet._engine.packing import PackedBatch

# A mean cross-entropy above this means the true class gets probability below e^-1000 on
# average: the weights have blown up (and the ReLUs usually died), and gradient descent
# will not bring them back. Stable log-softmax keeps such a loss finite, so "diverged"
# cannot mean only NaN or infinity.
DIVERGED_LOSS = 1e3


@attrs.frozen
class TrainState:
    """Everything the fold carries from one epoch to the next.

    ``params`` are the parameters after ``epoch`` epochs of training; ``opt_state`` is the
    optimizer's state at that moment. Flattened (:func:`purenet.flat.flatten`), a state
    is a keyframe's arrays: ``w0, b0, ...``, ``opt.*`` and ``epoch``.
    """

    params: Params = attrs.field(metadata={FLAT_NAME: ""})
    opt_state: OptState = attrs.field(metadata={FLAT_NAME: "opt"})
    epoch: int


def apply_gradient(state: TrainState, grads: Params, optimizer: Transformation) -> TrainState:
    """The state after one optimizer update with ``grads``; the epoch count is unchanged."""
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return TrainState(apply_updates(state.params, updates), opt_state, state.epoch)


def step(
    state: TrainState,
    x: np.ndarray,
    y: np.ndarray,
    optimizer: Transformation,
    *,
    dropout: float = 0.0,
    dropout_key: tuple[int, ...] | None = None,
) -> tuple[TrainState, Metrics]:
    """One gradient step on the batch (x (m, n_in), y (m,)); the epoch count is unchanged.

    ``dropout`` (the probability of dropping a hidden unit) and ``dropout_key`` (the seed
    of its masks) are keyword-only. Returns the new state and the metrics of
    ``state.params`` on that batch, from the same forward pass that made the gradient
    (with dropout, if any).
    """
    metrics, g = value_and_grads(state.params, x, y, dropout=dropout, dropout_key=dropout_key)
    return apply_gradient(state, g, optimizer), metrics


@attrs.frozen
class Snapshot:
    """The state of a run at the end of an epoch, with the metrics of its params.

    ``train``: see the module docstring; ``test`` and ``valid`` (None without a
    validation set): exact, from forward passes at ``state.params`` without dropout.
    """

    state: TrainState
    train: Metrics
    test: Metrics
    valid: Metrics | None = None

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def params(self) -> Params:
        return self.state.params

    @property
    def diverged(self) -> bool:
        """True when the training loss is NaN, infinite, or above :data:`DIVERGED_LOSS`."""
        return not (self.train.loss <= DIVERGED_LOSS)


def initial_state(config: Config, dtype=np.float32) -> TrainState:
    """The state before any update: fresh params from the seed, epoch 0."""
    params = init_params(config.sizes, config.seed, config.init, dtype, config.activation)
    return TrainState(params, config.make_optimizer().init(params), 0)


def state_template(config: Config) -> TrainState:
    """A state of the structure and shapes that ``config`` trains (all zeros, epoch 0):
    the template :func:`purenet.flat.unflatten` fills from a keyframe's arrays."""
    params = zero_params(config.sizes, activation=config.activation)
    return TrainState(params, config.make_optimizer().init(params), 0)


@attrs.frozen
class _Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray | None
    y_valid: np.ndarray | None


def hold_out_validation(data: Dataset, n: int, seed: int) -> _Arrays:
    """Carve ``n`` samples (chosen by the seed) out of the training set for validation;
    the rest keep their order. The test set is untouched."""
    if n == 0:
        return _Arrays(data.x_train, data.y_train, None, None)
    m = len(data.y_train)
    if n >= m:
        raise ConfigError(f"validation of {n} samples leaves no training data (of {m})")
    held = np.zeros(m, dtype=bool)
    held[np.random.default_rng([seed, Stream.VALID]).permutation(m)[:n]] = True
    return _Arrays(data.x_train[~held], data.y_train[~held], data.x_train[held], data.y_train[held])


def train(config: Config, data: Dataset, start: TrainState | None = None) -> Iterator[Snapshot]:
    """Yield snapshots ``start.epoch, ..., config.epochs`` (0 .. epochs from scratch).

    The fold stops early, after yielding it, at the first snapshot that has diverged
    (training loss NaN, infinite or above :data:`DIVERGED_LOSS`).
    """
    config.check_fits(len(data.y_train))
    arrays = hold_out_validation(data, config.validation, config.seed)
    state = initial_state(config, data.x_train.dtype) if start is None else start
    if config.stochastic:
        yield from _stochastic_fold(config, data, arrays, state)
    else:
        yield from _full_batch_fold(config, data, arrays, state)


def packed_batches(
    config: Config, data: Dataset, arrays: _Arrays | None = None, with_train: bool = True
) -> list[PackedBatch]:
    """The fold's data, packed once for the engine (by
    :func:`purenet._engine.packing.pack_for_layers`): the training set (unless
    ``with_train`` is False), the test set and, if held out, the validation set, in that
    order. ``arrays`` is ``hold_out_validation(data, config.validation, config.seed)``, if
    already made. The full-batch fold trains and evaluates on all of them; the stochastic
    fold, whose batches are drawn afresh every epoch, evaluates on the held-out ones."""
    if arrays is None:
        arrays = hold_out_validation(data, config.validation, config.seed)
    pairs = [(arrays.x_train, arrays.y_train)] if with_train else []
    pairs.append((data.x_test, data.y_test))
    if arrays.x_valid is not None:
        pairs.append((arrays.x_valid, arrays.y_valid))
    return [pack_for_layers(x, y, config.sizes) for x, y in pairs]


def _full_batch_fold(config, data, arrays, state) -> Iterator[Snapshot]:
    optimizer = config.make_optimizer(steps_per_epoch=1)
    train_batch, *held_out = packed_batches(config, data, arrays)
    while state.epoch < config.epochs:
        # the train metrics and gradient, and the test (and validation) metrics, in one
        # pass over the packed batches
        train_metrics, g, (test, *valid) = value_grads_and_metrics(
            state.params, train_batch, held_out
        )
        snapshot = Snapshot(state, train_metrics, test, valid[0] if valid else None)
        yield snapshot
        if snapshot.diverged:
            return
        after = apply_gradient(state, g, optimizer)
        state = attrs.evolve(after, epoch=state.epoch + 1)
    train_metrics, test, *valid = metrics_of(state.params, [train_batch, *held_out])
    yield Snapshot(state, train_metrics, test, valid[0] if valid else None)


def epoch_order(config: Config, m: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (0-based) visits the m training samples."""
    if config.full_batch:
        return np.arange(m)
    return np.random.default_rng([config.seed, Stream.ORDER, epoch]).permutation(m)


def distort_batch(config: Config, x: np.ndarray, epoch: int, batch: int) -> np.ndarray:
    """Batch ``batch`` of epoch ``epoch`` (0-based), ``x`` (B, 784), as training sees it:
    with the config's shifts, affine maps and elastic distortions, drawn from the keys
    ``(seed, AUGMENT, epoch, batch)`` and ``(seed, ELASTIC, epoch, batch)``. ``x`` itself
    when the config distorts nothing."""
    return augment(
        x,
        (config.seed, Stream.AUGMENT, epoch, batch),
        config.shift,
        config.rotate,
        config.scale,
        config.elastic_alpha,
        config.elastic_sigma,
        (config.seed, Stream.ELASTIC, epoch, batch),
    )


def _stochastic_fold(config, data, arrays, state) -> Iterator[Snapshot]:
    x, y = arrays.x_train, arrays.y_train
    m = len(y)
    size = m if config.full_batch else config.batch_size
    n_batches = math.ceil(m / size)
    optimizer = config.make_optimizer(steps_per_epoch=n_batches)
    held_out = packed_batches(config, data, arrays, with_train=False)

    def snapshot_of(state: TrainState, train_metrics: Metrics) -> Snapshot:
        test, *valid = metrics_of(state.params, held_out)
        return Snapshot(state, train_metrics, test, valid[0] if valid else None)

    snapshot = snapshot_of(state, evaluate(state.params, x, y))
    yield snapshot
    while state.epoch < config.epochs and not snapshot.diverged:
        epoch = state.epoch
        order = epoch_order(config, m, epoch)
        loss_sum, correct = 0.0, 0
        for b in range(n_batches):
            rows = order[b * size : (b + 1) * size]
            xb = x if len(rows) == m and config.full_batch else x[rows]
            yb = y[rows]
            if config.augmenting:
                xb = distort_batch(config, xb, epoch, b)
            dropout_key = (config.seed, Stream.DROPOUT, epoch, b)
            state, metrics = step(
                state, xb, yb, optimizer, dropout=config.dropout, dropout_key=dropout_key
            )
            loss_sum += metrics.loss * len(yb)
            correct += round(metrics.accuracy * len(yb))
        state = attrs.evolve(state, epoch=epoch + 1)
        snapshot = snapshot_of(state, Metrics(loss_sum / m, correct / m))
        yield snapshot
