"""Optimizers as pure transformations of gradients, as in optax.

A transformation is a frozen record of its hyper-parameters with two pure methods:
``init(params) -> state`` and ``update(grads, state, params) -> (updates, new_state)``;
the new params are ``apply_updates(params, updates)``. Its state is plain data (never a
function), so a training state can be saved, compared and replayed.

Transformations compose: :class:`AddDecayedWeights` (L2) goes before an update rule in a
:class:`Chain`, and :class:`Scheduled` sets a rule's learning rate from a schedule before
each update, keeping the position in training in its state (as optax's
``inject_hyperparams`` keeps its step count). Gradients, updates and the arrays of a
state are all :class:`~purenet.params.Params`: this module knows nothing of the network.
"""

from __future__ import annotations

import enum
import math
from typing import Protocol

import attrs
import numpy as np

from purenet.arrays import frozen_result
from purenet.flat import FLAT_NAME
from purenet.params import Layer, Params, map_params


def _fraction(instance, attribute, value) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _axpy(a, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``a * x + y`` as a new array, with one temporary instead of two."""
    out = x * a
    out += y
    return out


def _zeros_like(params: Params) -> Params:
    return map_params(np.zeros_like, params)


# -- states: plain data --------------------------------------------------------------------


@attrs.frozen
class EmptyState:
    """The state of a transformation that keeps none (plain SGD, weight decay)."""


@attrs.frozen
class MomentumState:
    """Momentum's velocity: one array per parameter array."""

    velocity: Params


@attrs.frozen
class AdamState:
    """Adam's count of updates and its moving averages of the gradient (mu) and of its
    square (nu)."""

    count: int
    mu: Params
    nu: Params


@attrs.frozen
class ScheduleState:
    """A position in training: ``epoch`` whole epochs done, ``step`` updates made within
    the current one."""

    epoch: int
    step: int


@attrs.frozen
class ScheduledState:
    """:class:`Scheduled`'s state: the position in training, and the rule's own state
    (whose arrays keep their plain names in a keyframe: ``opt.velocity.w0``, not
    ``opt.rule.velocity.w0``)."""

    schedule: ScheduleState
    rule: OptState = attrs.field(metadata={FLAT_NAME: ""})


# A chain's state is the tuple of its transformations' states.
OptState = EmptyState | MomentumState | AdamState | ScheduledState | tuple


class Transformation(Protocol):
    """An optimizer, or one step of one (see the module docstring)."""

    def init(self, params: Params) -> OptState: ...

    def update(self, grads: Params, state: OptState, params: Params) -> tuple[Params, OptState]: ...


def apply_updates(params: Params, updates: Params) -> Params:
    """``params + updates``, array by array, as new read-only arrays."""
    return map_params(np.add, params, updates)


# -- update rules: gradients -> updates ------------------------------------------------------


@attrs.frozen
class Sgd:
    """Gradient descent: ``update = -learning_rate * g``. Its state is empty."""

    learning_rate: float

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self, grads: Params, state: EmptyState, params: Params | None = None
    ) -> tuple[Params, EmptyState]:
        step = grads.dtype.type(self.learning_rate)
        return map_params(lambda g: -step * g, grads), state


@attrs.frozen
class Momentum:
    """Heavy-ball momentum: ``v = beta v + g``, ``update = -learning_rate v``; with
    ``nesterov``, ``update = -learning_rate (g + beta v)`` (the look-ahead form).
    ``beta = 0`` is plain SGD."""

    learning_rate: float
    beta: float = attrs.field(default=0.9, validator=_fraction)
    nesterov: bool = False

    def init(self, params: Params) -> MomentumState:
        return MomentumState(_zeros_like(params))

    def update(
        self, grads: Params, state: MomentumState, params: Params | None = None
    ) -> tuple[Params, MomentumState]:
        beta, step = grads.dtype.type(self.beta), grads.dtype.type(self.learning_rate)
        velocity = map_params(lambda v, g: _axpy(beta, v, g), state.velocity, grads)
        if self.nesterov:
            updates = map_params(lambda g, v: _axpy(beta, v, g) * -step, grads, velocity)
        else:
            updates = map_params(lambda v: v * -step, velocity)
        return updates, MomentumState(velocity)


@attrs.frozen
class Adam:
    """Adam (Kingma and Ba): bias-corrected moving averages of g and g²;
    ``update = -learning_rate mu_hat / (sqrt(nu_hat) + eps)``."""

    learning_rate: float
    beta1: float = attrs.field(default=0.9, validator=_fraction)
    beta2: float = attrs.field(default=0.999, validator=_fraction)
    eps: float = 1e-8

    def init(self, params: Params) -> AdamState:
        return AdamState(0, _zeros_like(params), _zeros_like(params))

    def update(
        self, grads: Params, state: AdamState, params: Params | None = None
    ) -> tuple[Params, AdamState]:
        t = state.count + 1
        f = grads.dtype.type
        b1, b2 = f(self.beta1), f(self.beta2)
        mu = map_params(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = map_params(lambda v, g: b2 * v + (1 - b2) * (g * g), state.nu, grads)
        # Both bias corrections folded into one step size, as Kingma and Ba suggest.
        step = f(self.learning_rate * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t))
        eps = f(self.eps * math.sqrt(1 - self.beta2**t))
        updates = map_params(lambda m, v: -step * m / (np.sqrt(v) + eps), mu, nu)
        return updates, AdamState(t, mu, nu)


Rule = Sgd | Momentum | Adam


# -- transformations around a rule ------------------------------------------------------------


@attrs.frozen
class AddDecayedWeights:
    """L2 weight decay: the gradient of ``loss + weight_decay / 2 * sum(w²)``, which adds
    exactly ``weight_decay * w`` to each weight's gradient. Biases are not decayed."""

    weight_decay: float

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(self, grads: Params, state: EmptyState, params: Params) -> tuple[Params, EmptyState]:
        if self.weight_decay == 0:
            return grads, state
        lam = grads.dtype.type(self.weight_decay)
        layers = tuple(
            Layer(frozen_result(g.w + lam * p.w), g.b)
            for g, p in zip(grads.layers, params.layers, strict=True)
        )
        return Params(layers, grads.activation), state


class Schedule(str, enum.Enum):
    """How the learning rate changes over a run."""

    CONSTANT = "constant"
    STEP = "step"  # multiply by gamma every step_every epochs
    COSINE = "cosine"  # half a cosine from lr down to 0 over the run


@attrs.frozen
class LearningRate:
    """A learning rate as a pure function of the position in training.

    ``progress`` is measured in epochs, fractional within an epoch: after ``b`` of the
    ``steps_per_epoch`` updates of epoch ``e`` (0-based) it is ``e + b / steps_per_epoch``.
    """

    base: float
    schedule: Schedule = attrs.field(default=Schedule.CONSTANT, converter=Schedule)
    epochs: int = 1
    step_every: int = 30
    gamma: float = 0.1
    steps_per_epoch: int = 1

    def __call__(self, progress: float) -> float:
        if self.schedule is Schedule.STEP:
            return self.base * self.gamma ** math.floor(progress / self.step_every)
        if self.schedule is Schedule.COSINE:
            return self.base * 0.5 * (1 + math.cos(math.pi * min(progress / self.epochs, 1.0)))
        return self.base

    def at(self, position: ScheduleState) -> float:
        """The learning rate at ``position``."""
        return self(position.epoch + position.step / self.steps_per_epoch)

    def advance(self, position: ScheduleState) -> ScheduleState:
        """The position one update later."""
        if position.step + 1 == self.steps_per_epoch:
            return ScheduleState(position.epoch + 1, 0)
        return ScheduleState(position.epoch, position.step + 1)


@attrs.frozen
class Scheduled:
    """``rule`` with its learning rate set by ``schedule`` before each update, at the
    position in training that the state keeps (it starts at epoch 0, step 0)."""

    rule: Rule
    schedule: LearningRate

    def init(self, params: Params) -> ScheduledState:
        return ScheduledState(ScheduleState(0, 0), self.rule.init(params))

    def update(
        self, grads: Params, state: ScheduledState, params: Params | None = None
    ) -> tuple[Params, ScheduledState]:
        rule = attrs.evolve(self.rule, learning_rate=self.schedule.at(state.schedule))
        updates, rule_state = rule.update(grads, state.rule, params)
        return updates, ScheduledState(self.schedule.advance(state.schedule), rule_state)


@attrs.frozen
class Chain:
    """Transformations applied one after the other; the state is the tuple of theirs."""

    transformations: tuple[Transformation, ...] = attrs.field(converter=tuple)

    def init(self, params: Params) -> tuple:
        return tuple(t.init(params) for t in self.transformations)

    def update(self, grads: Params, state: tuple, params: Params) -> tuple[Params, tuple]:
        states = []
        for transformation, inner in zip(self.transformations, state, strict=True):
            grads, inner = transformation.update(grads, inner, params)
            states.append(inner)
        return grads, tuple(states)
