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
from a generator seeded with ``(seed, stream, epoch, batch)``: a pure function of the
configuration, never NumPy's global state. The same config and data give bit-identical
snapshots, and a fold started from any saved state continues exactly as the original.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import attrs
import numpy as np

from purenet._engine import blocks
from purenet._engine.packing import PACKED_BLOCK_ROWS, PackedBatch, pack
from purenet.augment import augment
from purenet.data import N_CLASSES, N_PIXELS, Dataset, Split
from purenet.errors import ConfigError
from purenet.network import Metrics, evaluate, metrics_of, value_grads_and_metrics
from purenet.optim import (
    Adam,
    LearningRate,
    Momentum,
    Optimizer,
    Schedule,
    Sgd,
    TrainState,
    apply_gradient,
    step,
)
from purenet.params import Activation, Init, Params, init_params

# A mean cross-entropy above this means the true class gets probability below e^-1000 on
# average: the weights have blown up (and the ReLUs usually died), and gradient descent
# will not bring them back. Stable log-softmax keeps such a loss finite, so "diverged"
# cannot mean only NaN or infinity.
DIVERGED_LOSS = 1e3

# Seed streams (see purenet.data.SPLIT_STREAM = 1 and purenet.params.INIT_STREAM = 2).
ORDER_STREAM, DROPOUT_STREAM, AUGMENT_STREAM, VALID_STREAM = 3, 4, 5, 6

OPTIMIZERS = ("sgd", "momentum", "adam")


def _check(field: str, condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message, field)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@attrs.frozen
class Config:
    """Everything that decides what a run learns. Defaults are the reference design.

    Attributes:
        hidden: widths of the hidden layers, e.g. (10,) or (256, 128).
        activation, init: the hidden non-linearity and the weight initialisation.
        epochs, lr, seed, split: as in the reference.
        batch_size: samples per gradient step; None = the full training set.
        optimizer: sgd, momentum or adam; ``momentum`` is momentum's beta (and adam's
            beta1), ``nesterov`` momentum's look-ahead variant.
        weight_decay: L2 coefficient (adds ``weight_decay * w`` to each weight's gradient).
        schedule, step_every, step_gamma: the learning-rate schedule.
        dropout: probability of dropping a hidden unit's output while training.
        shift, rotate, scale: random distortions of training images: shifts up to
            ``shift`` pixels, rotations up to ``rotate`` degrees, scaling by up to
            ``scale`` (a fraction).
        validation: training samples held out to measure generalisation (0 = none).
        patience: with validation, stop after this many epochs without a better
            validation accuracy (None = never stop early).
    """

    hidden: tuple[int, ...] = attrs.field(default=(10,), converter=tuple)
    activation: Activation = attrs.field(default=Activation.RELU, converter=Activation)
    init: Init = attrs.field(default=Init.HE, converter=Init)
    epochs: int = 2500
    lr: float = 0.1
    seed: int = 0
    split: Split = attrs.field(default=Split.REFERENCE, converter=Split)
    batch_size: int | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: Schedule = attrs.field(default=Schedule.CONSTANT, converter=Schedule)
    step_every: int = 30
    step_gamma: float = 0.1
    dropout: float = 0.0
    shift: int = 0
    rotate: float = 0.0
    scale: float = 0.0
    validation: int = 0
    patience: int | None = None

    def __attrs_post_init__(self) -> None:
        h = self.hidden
        _check(
            "hidden",
            bool(h) and all(isinstance(w, int) and w >= 1 for w in h),
            f"hidden must be one or more layer widths >= 1, got {h!r}",
        )
        _check(
            "epochs",
            isinstance(self.epochs, int) and self.epochs >= 1,
            f"epochs must be >= 1, got {self.epochs!r}",
        )
        _check(
            "lr",
            _number(self.lr) and self.lr > 0,
            f"lr must be a finite number > 0, got {self.lr!r}",
        )
        _check(
            "seed",
            isinstance(self.seed, int) and self.seed >= 0,
            f"seed must be >= 0, got {self.seed!r}",
        )
        _check(
            "batch_size",
            self.batch_size is None or (isinstance(self.batch_size, int) and self.batch_size >= 1),
            f"batch size must be an integer >= 1, got {self.batch_size!r}",
        )
        _check(
            "optimizer",
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
        )
        _check(
            "momentum",
            _number(self.momentum) and 0 <= self.momentum < 1,
            f"momentum must be in [0, 1), got {self.momentum!r}",
        )
        _check(
            "weight_decay",
            _number(self.weight_decay) and self.weight_decay >= 0,
            f"weight decay must be >= 0, got {self.weight_decay!r}",
        )
        _check(
            "step_every",
            isinstance(self.step_every, int) and self.step_every >= 1,
            f"step_every must be >= 1, got {self.step_every!r}",
        )
        _check(
            "step_gamma",
            _number(self.step_gamma) and 0 < self.step_gamma <= 1,
            f"step_gamma must be in (0, 1], got {self.step_gamma!r}",
        )
        _check(
            "dropout",
            _number(self.dropout) and 0 <= self.dropout < 1,
            f"dropout must be in [0, 1), got {self.dropout!r}",
        )
        _check(
            "shift",
            isinstance(self.shift, int) and 0 <= self.shift <= 8,
            f"shift must be 0..8 pixels, got {self.shift!r}",
        )
        _check(
            "rotate",
            _number(self.rotate) and 0 <= self.rotate <= 45,
            f"rotate must be 0..45 degrees, got {self.rotate!r}",
        )
        _check(
            "scale",
            _number(self.scale) and 0 <= self.scale < 0.5,
            f"scale must be in [0, 0.5), got {self.scale!r}",
        )
        _check(
            "validation",
            isinstance(self.validation, int) and self.validation >= 0,
            f"validation must be >= 0 samples, got {self.validation!r}",
        )
        _check(
            "patience",
            self.patience is None or (isinstance(self.patience, int) and self.patience >= 1),
            f"patience must be >= 1 epochs, got {self.patience!r}",
        )
        _check(
            "patience",
            self.patience is None or self.validation > 0,
            "early stopping (patience) needs a validation set",
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        return (N_PIXELS, *self.hidden, N_CLASSES)

    @property
    def augmenting(self) -> bool:
        return self.shift > 0 or self.rotate > 0 or self.scale > 0

    @property
    def stochastic(self) -> bool:
        """True when the params move within an epoch or training sees noise, so train
        metrics are a mean over the epoch's batches (see the module docstring)."""
        return self.batch_size is not None or self.dropout > 0 or self.augmenting

    def make_optimizer(self) -> Optimizer:
        if self.optimizer == "momentum":
            return Momentum(self.momentum, self.nesterov)
        if self.optimizer == "adam":
            return Adam(beta1=self.momentum)
        return Sgd()

    def learning_rate(self) -> LearningRate:
        return LearningRate(self.lr, self.schedule, self.epochs, self.step_every, self.step_gamma)

    def to_json(self) -> dict:
        """A JSON-ready description from which :meth:`from_json` rebuilds this config."""
        value = attrs.asdict(self)
        value.update(
            hidden=list(self.hidden),
            activation=self.activation.value,
            init=self.init.value,
            split=self.split.value,
            schedule=self.schedule.value,
            layer_sizes=list(self.sizes),
        )
        return value

    @classmethod
    def from_json(cls, value: dict) -> Config:
        """Inverse of :meth:`to_json`; fields missing from older files take their defaults.

        Raises:
            ConfigError: when a field is invalid.
        """
        names = {f.name for f in attrs.fields(cls)}
        try:
            known = {k: v for k, v in value.items() if k in names}
            if "hidden" in known:
                known["hidden"] = tuple(known["hidden"])
            return cls(**known)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid training settings ({exc})") from None


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
    held[np.random.default_rng([seed, VALID_STREAM]).permutation(m)[:n]] = True
    return _Arrays(data.x_train[~held], data.y_train[~held], data.x_train[held], data.y_train[held])


def train(config: Config, data: Dataset, start: TrainState | None = None) -> Iterator[Snapshot]:
    """Yield snapshots ``start.epoch, ..., config.epochs`` (0 .. epochs from scratch).

    The fold stops early, after yielding it, at the first snapshot that has diverged
    (training loss NaN, infinite or above :data:`DIVERGED_LOSS`).
    """
    arrays = hold_out_validation(data, config.validation, config.seed)
    if config.batch_size is not None and config.batch_size > len(arrays.y_train):
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(arrays.y_train)} "
            "training samples"
        )
    state = initial_state(config, data.x_train.dtype) if start is None else start
    if config.stochastic:
        yield from _stochastic_fold(config, data, arrays, state)
    else:
        yield from _full_batch_fold(config, data, arrays, state)


def packed_batches(
    config: Config, data: Dataset, arrays: _Arrays | None = None, with_train: bool = True
) -> list[PackedBatch]:
    """The fold's data, packed once (see :mod:`purenet._engine.packing`): the training set (unless
    ``with_train`` is False), the test set and, if held out, the validation set, in that
    order. ``arrays`` is ``hold_out_validation(data, config.validation, config.seed)``, if
    already made. The full-batch fold trains and evaluates on all of them; the stochastic
    fold, whose batches are drawn afresh every epoch, evaluates on the held-out ones."""
    if arrays is None:
        arrays = hold_out_validation(data, config.validation, config.seed)
    shapes = list(itertools.pairwise(config.sizes))
    rows = blocks.default_block_rows(shapes, PACKED_BLOCK_ROWS)
    pairs = [(arrays.x_train, arrays.y_train)] if with_train else []
    pairs.append((data.x_test, data.y_test))
    if arrays.x_valid is not None:
        pairs.append((arrays.x_valid, arrays.y_valid))
    return [pack(x, y, rows) for x, y in pairs]


def _full_batch_fold(config, data, arrays, state) -> Iterator[Snapshot]:
    optimizer, lr = config.make_optimizer(), config.learning_rate()
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
        after = apply_gradient(state, g, optimizer, lr(state.epoch), config.weight_decay)
        state = attrs.evolve(after, epoch=state.epoch + 1)
    train_metrics, test, *valid = metrics_of(state.params, [train_batch, *held_out])
    yield Snapshot(state, train_metrics, test, valid[0] if valid else None)


def epoch_order(config: Config, m: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (0-based) visits the m training samples."""
    if config.batch_size is None:
        return np.arange(m)
    return np.random.default_rng([config.seed, ORDER_STREAM, epoch]).permutation(m)


def _stochastic_fold(config, data, arrays, state) -> Iterator[Snapshot]:
    optimizer, lr = config.make_optimizer(), config.learning_rate()
    x, y = arrays.x_train, arrays.y_train
    m = len(y)
    size = config.batch_size or m
    n_batches = math.ceil(m / size)
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
            xb = x if len(rows) == m and config.batch_size is None else x[rows]
            yb = y[rows]
            if config.augmenting:
                key = (config.seed, AUGMENT_STREAM, epoch, b)
                xb = augment(xb, key, config.shift, config.rotate, config.scale)
            state, metrics = step(
                state,
                xb,
                yb,
                optimizer,
                lr(epoch + b / n_batches),
                config.weight_decay,
                config.dropout,
                (config.seed, DROPOUT_STREAM, epoch, b),
            )
            loss_sum += metrics.loss * len(yb)
            correct += round(metrics.accuracy * len(yb))
        state = attrs.evolve(state, epoch=epoch + 1)
        snapshot = snapshot_of(state, Metrics(loss_sum / m, correct / m))
        yield snapshot
