"""The settings of a training run, each declared once with its default, bounds and help.

Every field of :class:`Config` carries a :class:`Setting` in its metadata: a line of help
and the values it allows. ``Config`` checks its values against them and names the field
at fault (:attr:`purenet.errors.ConfigError.field`); the command line takes its options'
help and defaults from them (see :func:`setting_of`), so the two cannot drift apart.
"""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from purenet.data import N_CLASSES, N_PIXELS, Split
from purenet.errors import ConfigError
from purenet.optim import (
    Adam,
    AddDecayedWeights,
    Chain,
    LearningRate,
    Momentum,
    Rule,
    Schedule,
    Scheduled,
    Sgd,
    Transformation,
)
from purenet.params import Activation, Init
from purenet.settings import (
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    FULL_BATCH,
    Interval,
    Kind,
    Setting,
    batch_size_converter,
    choice,
    field_setting,
    setting,
    widths_converter,
)


class Optimizer(str, enum.Enum):
    """The update rule (see :mod:`purenet.optim`)."""

    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"


@attrs.frozen
class Config:
    """Everything that decides what a run learns. The defaults are the reference design.

    Each field's help and allowed values are in its metadata (:func:`setting_of`);
    ``Config(...)`` raises :class:`ConfigError` naming the first field out of bounds.
    """

    hidden: tuple[int, ...] = setting(
        (10,),
        "Hidden layer widths, comma-separated, e.g. 256,128.",
        Kind.WIDTHS,
        AT_LEAST_1,
        converter=widths_converter,
    )
    activation: Activation = choice(
        Activation, Activation.RELU, "The hidden layers' non-linearity."
    )
    init: Init = choice(
        Init,
        Init.HE,
        "Weight initialisation: he (suits ReLU), xavier (suits tanh and sigmoid), or "
        "uniform (U(-0.5, 0.5), as the reference tutorial).",
    )
    epochs: int = setting(2500, "Passes over the training set.", Kind.WHOLE, AT_LEAST_1)
    lr: float = setting(
        0.1, "Learning rate (the base of a schedule).", Kind.NUMBER, Interval(0, low_open=True)
    )
    seed: int = setting(
        0,
        "Seed of every random choice: split, weights, order, dropout, distortions.",
        Kind.WHOLE,
        AT_LEAST_0,
    )
    split: Split = choice(
        Split,
        Split.REFERENCE,
        "reference: all 70,000 images shuffled by the seed, 90% train / 10% test. "
        "standard: the official 60,000 / 10,000.",
    )
    batch_size: int | Literal["full"] = setting(
        FULL_BATCH,
        f"Samples per gradient step, or '{FULL_BATCH}' for the whole training set.",
        Kind.BATCH,
        AT_LEAST_1,
        converter=batch_size_converter,
    )
    optimizer: Optimizer = choice(
        Optimizer, Optimizer.SGD, "The update rule: sgd, momentum or adam."
    )
    momentum: float = setting(
        0.9, "Momentum's beta (with optimizer momentum).", Kind.NUMBER, FRACTION
    )
    nesterov: bool = setting(False, "Nesterov's look-ahead form of momentum.", Kind.FLAG)
    adam_beta1: float = setting(
        0.9,
        "Adam's beta1: the decay of its moving average of the gradient (with optimizer adam).",
        Kind.NUMBER,
        FRACTION,
    )
    weight_decay: float = setting(
        0.0,
        "L2 weight decay: adds weight-decay * w to each weight's gradient (not the biases').",
        Kind.NUMBER,
        AT_LEAST_0,
    )
    schedule: Schedule = choice(
        Schedule,
        Schedule.CONSTANT,
        "Learning-rate schedule: constant, step (times step-gamma every step-every epochs) "
        "or cosine (down to 0 over the run).",
    )
    step_every: int = setting(30, "Epochs per step of the step schedule.", Kind.WHOLE, AT_LEAST_1)
    step_gamma: float = setting(
        0.1, "Factor of each step of the step schedule.", Kind.NUMBER, Interval(0, 1, low_open=True)
    )
    dropout: float = setting(
        0.0, "Probability of dropping a hidden unit's output while training.", Kind.NUMBER, FRACTION
    )
    shift: int = setting(
        0, "Random shifts of training images, in whole pixels.", Kind.WHOLE, Interval(0, 8)
    )
    rotate: float = setting(
        0.0, "Random rotations of training images, in degrees.", Kind.NUMBER, Interval(0, 45)
    )
    scale: float = setting(
        0.0,
        "Random scaling of training images, a fraction of their size.",
        Kind.NUMBER,
        Interval(0, 0.5, high_open=True),
    )
    elastic_alpha: float = setting(
        0.0,
        "Elastic distortions of training images: the strength (alpha) of a random "
        "displacement field, in pixels before smoothing; 0 (off) or e.g. 34.",
        Kind.NUMBER,
        Interval(0, 100),
    )
    elastic_sigma: float = setting(
        4.0,
        "Elastic distortions: the width (sigma) in pixels of the Gaussian that smooths "
        "the displacement field.",
        Kind.NUMBER,
        Interval(0.5, 10),
    )
    validation: int = setting(
        0,
        "Training samples held out to validate on (never the test set).",
        Kind.WHOLE,
        AT_LEAST_0,
    )
    patience: int | None = setting(
        None,
        "With validation: stop after this many epochs without a better validation accuracy.",
        Kind.WHOLE_OR_NONE,
        AT_LEAST_1,
    )

    def __attrs_post_init__(self) -> None:
        if self.patience is not None and self.validation == 0:
            raise ConfigError(
                "early stopping (patience) needs a validation set",
                "patience",
                "early stopping needs a validation set (validation > 0)",
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. (784, 10, 10)."""
        return (N_PIXELS, *self.hidden, N_CLASSES)

    @property
    def full_batch(self) -> bool:
        return self.batch_size == FULL_BATCH

    @property
    def augmenting(self) -> bool:
        return self.shift > 0 or self.rotate > 0 or self.scale > 0 or self.elastic_alpha > 0

    @property
    def stochastic(self) -> bool:
        """True when the params move within an epoch or training sees noise, so train
        metrics are a mean over the epoch's batches (see :mod:`purenet.train`)."""
        return not self.full_batch or self.dropout > 0 or self.augmenting

    def check_fits(self, n_train: int) -> None:
        """Check the settings that depend on the size of the training set.

        Raises:
            ConfigError: naming ``validation`` or ``batch_size``.
        """
        if self.validation >= n_train:
            raise ConfigError(
                f"validation of {self.validation} samples leaves no training data (of {n_train})",
                "validation",
                f"must be less than the {n_train} training samples (got {self.validation})",
            )
        available = n_train - self.validation
        if not self.full_batch and self.batch_size > available:
            raise ConfigError(
                f"batch size {self.batch_size} is larger than the {available} training samples",
                "batch_size",
                f"must be at most the {available} training samples (got {self.batch_size})",
            )

    def make_optimizer(self, steps_per_epoch: int = 1) -> Transformation:
        """The optimizer these settings describe, for ``steps_per_epoch`` updates per epoch
        (only the schedule needs that number; the state's structure does not depend on it).

        Weight decay, if any, comes first; a schedule other than constant wraps the rule.
        """
        rule = self._rule()
        if self.schedule is not Schedule.CONSTANT:
            lr = LearningRate(
                self.lr,
                self.schedule,
                self.epochs,
                self.step_every,
                self.step_gamma,
                steps_per_epoch,
            )
            rule = Scheduled(rule, lr)
        return (
            rule if self.weight_decay == 0 else Chain((AddDecayedWeights(self.weight_decay), rule))
        )

    def _rule(self) -> Rule:
        if self.optimizer is Optimizer.MOMENTUM:
            return Momentum(self.lr, self.momentum, self.nesterov)
        if self.optimizer is Optimizer.ADAM:
            return Adam(self.lr, beta1=self.adam_beta1)
        return Sgd(self.lr)

    def to_json(self) -> dict:
        """A JSON-ready description from which :meth:`from_json` rebuilds this config.

        The format of purenet 0.3 is kept: full batch is written ``null``."""
        value = {
            name: v.value if isinstance(v, enum.Enum) else v
            for name, v in attrs.asdict(self, recurse=False).items()
        }
        value.update(
            hidden=list(self.hidden),
            batch_size=None if self.full_batch else self.batch_size,
            layer_sizes=list(self.sizes),
        )
        return value

    @classmethod
    def from_json(cls, value: dict) -> Config:
        """Inverse of :meth:`to_json`; fields missing from older files take their defaults,
        except Adam's beta1, which purenet 0.3 read from ``momentum``. A ``batch_size`` of
        None (``null``, how config.json writes full batch) is :data:`FULL_BATCH`.

        Raises:
            ConfigError: when a field is invalid.
        """
        names = {f.name for f in attrs.fields(cls)}
        known = {k: v for k, v in value.items() if k in names}
        if "batch_size" in known and known["batch_size"] is None:
            known["batch_size"] = FULL_BATCH
        if "adam_beta1" not in known and known.get("optimizer") == Optimizer.ADAM.value:
            known["adam_beta1"] = known.get("momentum", default_of("momentum"))
        try:
            return cls(**known)
        except ConfigError as exc:
            raise ConfigError(f"invalid training settings ({exc})", exc.field) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid training settings ({exc})") from None


def setting_of(name: str) -> Setting:
    """The :class:`Setting` of the :class:`Config` field ``name``."""
    return field_setting(Config, name)


def default_of(name: str):
    """The default value of the :class:`Config` field ``name``."""
    return attrs.fields_dict(Config)[name].default


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in attrs.fields(Config))
