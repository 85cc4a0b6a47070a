"""Training as a fold over epochs.

:func:`train` is a generator: it starts from the initial state and yields one
:class:`Snapshot` per epoch. Snapshot ``t`` holds the params after ``t`` updates and the
metrics *of those params*. The forward pass over the training set at ``params_t`` gives
both the train metrics of snapshot ``t`` and the gradient that makes ``params_t+1``, so an
epoch reads the training set once forwards and once backwards, and only the final
snapshot pays for a forward pass on its own. Snapshot 0 describes the initial params.

Nothing in the fold touches the world: no files, no printing, no global random state.
Consumers (the CLI, plots, stores) iterate over the snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs
import numpy as np

from purenet.data import N_CLASSES, N_PIXELS, Dataset, Split
from purenet.errors import ConfigError
from purenet.network import Metrics, evaluate, value_and_grads
from purenet.optim import Sgd, TrainState, apply_updates
from purenet.params import Init, Params, init_params

# A mean cross-entropy above this means the true class gets probability below e^-1000 on
# average: the weights have blown up (and the ReLUs usually died), and gradient descent
# will not bring them back. Stable log-softmax keeps such a loss finite, so "diverged"
# cannot mean only NaN or infinity.
DIVERGED_LOSS = 1e3


def _check_hidden(instance, attribute, value) -> None:
    if not value or any(not isinstance(h, int) or h < 1 for h in value):
        raise ConfigError(f"hidden must be one or more layer widths >= 1, got {value!r}")


def _check_epochs(instance, attribute, value) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"epochs must be an integer >= 1, got {value!r}")


def _check_lr(instance, attribute, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {value!r}")


def _check_seed(instance, attribute, value) -> None:
    if not isinstance(value, int) or value < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {value!r}")


@attrs.frozen
class Config:
    """Everything that decides what a run learns. Defaults are the reference design."""

    hidden: tuple[int, ...] = attrs.field(default=(10,), converter=tuple, validator=_check_hidden)
    epochs: int = attrs.field(default=2500, validator=_check_epochs)
    lr: float = attrs.field(default=0.1, validator=_check_lr)
    seed: int = attrs.field(default=0, validator=_check_seed)
    split: Split = attrs.field(default=Split.REFERENCE, converter=Split)
    init: Init = attrs.field(default=Init.HE, converter=Init)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (N_PIXELS, *self.hidden, N_CLASSES)

    def optimizer(self) -> Sgd:
        return Sgd(lr=self.lr)

    def to_json(self) -> dict:
        """A JSON-ready description from which :meth:`from_json` rebuilds this config."""
        return {
            "hidden": list(self.hidden),
            "layer_sizes": list(self.sizes),
            "epochs": self.epochs,
            "lr": self.lr,
            "seed": self.seed,
            "split": self.split.value,
            "init": self.init.value,
            "optimizer": {"name": "sgd", "lr": self.lr},
            "batch_size": None,  # full batch
        }

    @classmethod
    def from_json(cls, value: dict) -> Config:
        """Inverse of :meth:`to_json`.

        Raises:
            ConfigError: when a field is missing or invalid.
        """
        try:
            return cls(
                hidden=tuple(value["hidden"]),
                epochs=value["epochs"],
                lr=value["lr"],
                seed=value["seed"],
                split=value["split"],
                init=value["init"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid training settings ({exc})") from None


@attrs.frozen
class Snapshot:
    """The state of a run at the end of an epoch, with the metrics of its params.

    ``train`` comes from the training-set forward pass at ``state.params`` (full batch,
    so it is exact); ``test`` from a forward pass over the test set at the same params.
    """

    state: TrainState
    train: Metrics
    test: Metrics

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
    params = init_params(config.sizes, config.seed, config.init, dtype)
    return TrainState(params, config.optimizer().init(params), 0)


def train(config: Config, data: Dataset, start: TrainState | None = None) -> Iterator[Snapshot]:
    """Yield snapshots ``start.epoch, ..., config.epochs`` (0 .. epochs from scratch).

    The fold stops early, after yielding it, at the first snapshot that has diverged
    (training loss NaN, infinite or above :data:`DIVERGED_LOSS`).
    """
    optimizer = config.optimizer()
    state = initial_state(config, data.x_train.dtype) if start is None else start
    while True:
        last = state.epoch >= config.epochs
        if last:
            train_metrics = evaluate(state.params, data.x_train, data.y_train)
        else:
            train_metrics, g = value_and_grads(state.params, data.x_train, data.y_train)
        snapshot = Snapshot(state, train_metrics, evaluate(state.params, data.x_test, data.y_test))
        yield snapshot
        if last or snapshot.diverged:
            return
        updates, opt_state = optimizer.update(g, state.opt_state)
        state = TrainState(apply_updates(state.params, updates), opt_state, state.epoch + 1)
