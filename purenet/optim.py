"""Optimizers as pure update rules, learning-rate schedules, and the training step.

An optimizer is a frozen record of its hyper-parameters with two pure methods:
``init(params) -> state`` and ``update(grads, state, lr) -> (updates, new_state)``; the
new params are ``apply_updates(params, updates)``. Its state is plain data (never a
function), so a training state can be saved, compared and replayed. The learning rate is
an argument of ``update`` so that a schedule (a pure function of the position in
training) can drive it.
"""

from __future__ import annotations

import enum
import math
from typing import Protocol

import attrs
import numpy as np

from purenet.network import Metrics, value_and_grads
from purenet.params import Layer, Params, frozen_result, map_params


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


# -- optimizer states: plain data ------------------------------------------------------------


@attrs.frozen
class EmptyState:
    """The state of an optimizer that keeps none."""

    def arrays(self) -> dict[str, np.ndarray]:
        return {}


@attrs.frozen
class MomentumState:
    """Momentum's velocity: one array per parameter array."""

    velocity: Params

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"velocity.{k}": v for k, v in self.velocity.arrays().items()}


@attrs.frozen
class AdamState:
    """Adam's step count and moving averages of the gradient (mu) and its square (nu)."""

    count: int
    mu: Params
    nu: Params

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"count": np.int64(self.count)}
        out.update({f"mu.{k}": v for k, v in self.mu.arrays().items()})
        out.update({f"nu.{k}": v for k, v in self.nu.arrays().items()})
        return out


OptState = EmptyState | MomentumState | AdamState


def _sub_params(arrays: dict[str, np.ndarray], prefix: str, like: Params) -> Params:
    inner = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
    restored = Params.from_arrays(inner, like.activation)
    if [layer.w.shape for layer in restored.layers] != [layer.w.shape for layer in like.layers]:
        raise ValueError(f"{prefix} arrays do not match the params' shapes")
    return restored


# -- optimizers ------------------------------------------------------------------------------


class Optimizer(Protocol):
    def init(self, params: Params) -> OptState: ...

    def update(self, grads: Params, state, lr: float) -> tuple[Params, OptState]: ...

    def state_from_arrays(self, arrays: dict[str, np.ndarray], params: Params) -> OptState: ...


@attrs.frozen
class Sgd:
    """Gradient descent: ``update = -lr * grad``."""

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(self, grads: Params, state: EmptyState, lr: float) -> tuple[Params, EmptyState]:
        step = grads.dtype.type(lr)
        return map_params(lambda g: -step * g, grads), state

    def state_from_arrays(self, arrays, params: Params) -> EmptyState:
        return EmptyState()


@attrs.frozen
class Momentum:
    """Heavy-ball momentum: ``v = beta v + g``, ``update = -lr v``; with ``nesterov``,
    ``update = -lr (g + beta v)`` (the look-ahead form). ``beta = 0`` is plain SGD."""

    beta: float = attrs.field(default=0.9, validator=_fraction)
    nesterov: bool = False

    def init(self, params: Params) -> MomentumState:
        return MomentumState(_zeros_like(params))

    def update(
        self, grads: Params, state: MomentumState, lr: float
    ) -> tuple[Params, MomentumState]:
        beta, step = grads.dtype.type(self.beta), grads.dtype.type(lr)
        velocity = map_params(lambda v, g: _axpy(beta, v, g), state.velocity, grads)
        if self.nesterov:
            updates = map_params(lambda g, v: _axpy(beta, v, g) * -step, grads, velocity)
        else:
            updates = map_params(lambda v: v * -step, velocity)
        return updates, MomentumState(velocity)

    def state_from_arrays(self, arrays, params: Params) -> MomentumState:
        return MomentumState(_sub_params(arrays, "velocity", params))


@attrs.frozen
class Adam:
    """Adam (Kingma and Ba): bias-corrected moving averages of g and g²;
    ``update = -lr mu_hat / (sqrt(nu_hat) + eps)``."""

    beta1: float = attrs.field(default=0.9, validator=_fraction)
    beta2: float = attrs.field(default=0.999, validator=_fraction)
    eps: float = 1e-8

    def init(self, params: Params) -> AdamState:
        return AdamState(0, _zeros_like(params), _zeros_like(params))

    def update(self, grads: Params, state: AdamState, lr: float) -> tuple[Params, AdamState]:
        t = state.count + 1
        f = grads.dtype.type
        b1, b2 = f(self.beta1), f(self.beta2)
        mu = map_params(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = map_params(lambda v, g: b2 * v + (1 - b2) * (g * g), state.nu, grads)
        # Both bias corrections folded into one step size, as Kingma and Ba suggest.
        step = f(lr * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t))
        eps = f(self.eps * math.sqrt(1 - self.beta2**t))
        updates = map_params(lambda m, v: -step * m / (np.sqrt(v) + eps), mu, nu)
        return updates, AdamState(t, mu, nu)

    def state_from_arrays(self, arrays, params: Params) -> AdamState:
        count = arrays.get("count")
        if count is None or count.shape != ():
            raise ValueError("adam state needs a scalar count")
        return AdamState(
            int(count), _sub_params(arrays, "mu", params), _sub_params(arrays, "nu", params)
        )


def apply_updates(params: Params, updates: Params) -> Params:
    """``params + updates``, array by array, as new read-only arrays."""
    return map_params(np.add, params, updates)


def add_weight_decay(grads: Params, params: Params, decay: float) -> Params:
    """The gradient of ``loss + decay / 2 * sum(w²)``: adds exactly ``decay * w`` to each
    weight's gradient. Biases are not decayed."""
    if decay == 0:
        return grads
    lam = grads.dtype.type(decay)
    layers = tuple(
        Layer(frozen_result(g.w + lam * p.w), g.b)
        for g, p in zip(grads.layers, params.layers, strict=True)
    )
    return Params(layers, grads.activation)


# -- learning-rate schedules -----------------------------------------------------------------


class Schedule(str, enum.Enum):
    CONSTANT = "constant"
    STEP = "step"  # multiply by gamma every step_every epochs
    COSINE = "cosine"  # half a cosine from lr down to 0 over the run


@attrs.frozen
class LearningRate:
    """A learning rate as a pure function of the position in training.

    ``progress`` is measured in epochs, fractional within an epoch (after ``b`` of ``n``
    batches of epoch ``e`` (0-based), it is ``e + b / n``).
    """

    base: float
    schedule: Schedule = attrs.field(default=Schedule.CONSTANT, converter=Schedule)
    epochs: int = 1
    step_every: int = 30
    gamma: float = 0.1

    def __call__(self, progress: float) -> float:
        if self.schedule is Schedule.STEP:
            return self.base * self.gamma ** math.floor(progress / self.step_every)
        if self.schedule is Schedule.COSINE:
            return self.base * 0.5 * (1 + math.cos(math.pi * min(progress / self.epochs, 1.0)))
        return self.base


# -- the training step -----------------------------------------------------------------------


@attrs.frozen
class TrainState:
    """Everything the fold carries from one epoch to the next.

    ``params`` are the parameters after ``epoch`` epochs of training; ``opt_state`` is the
    optimizer's state at that moment.
    """

    params: Params
    opt_state: OptState
    epoch: int


def apply_gradient(
    state: TrainState, grads: Params, optimizer: Optimizer, lr: float, weight_decay: float = 0.0
) -> TrainState:
    """The state after one optimizer update with ``grads`` (weight decay added first); the
    epoch count is unchanged."""
    g = add_weight_decay(grads, state.params, weight_decay)
    updates, opt_state = optimizer.update(g, state.opt_state, lr)
    return TrainState(apply_updates(state.params, updates), opt_state, state.epoch)


def step(
    state: TrainState,
    x: np.ndarray,
    y: np.ndarray,
    optimizer: Optimizer,
    lr: float,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    dropout_key: tuple[int, ...] | None = None,
) -> tuple[TrainState, Metrics]:
    """One gradient step on the batch (x (m, n_in), y (m,)); the epoch count is unchanged.

    Returns the new state and the metrics of ``state.params`` on that batch, from the
    same forward pass that made the gradient (with dropout, if any).
    """
    metrics, g = value_and_grads(state.params, x, y, dropout=dropout, dropout_key=dropout_key)
    return apply_gradient(state, g, optimizer, lr, weight_decay), metrics
