"""Optimizers as pure update rules, and the training step built on them.

An optimizer is a frozen record of its hyper-parameters with two pure methods:
``init(params) -> state`` and ``update(grads, state) -> (updates, new_state)``. Its state
is plain data (never a function), so a training state can be saved and replayed.
Plain gradient descent is the optimizer whose state is empty.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from purenet.network import Metrics, value_and_grads
from purenet.params import Params, map_params


@attrs.frozen
class EmptyState:
    """The state of an optimizer that keeps none."""


def _non_negative_finite(instance, attribute, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class Sgd:
    """Gradient descent: ``update = -lr * grad``."""

    lr: float = attrs.field(default=0.1, validator=_non_negative_finite)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(self, grads: Params, state: EmptyState) -> tuple[Params, EmptyState]:
        lr = grads.dtype.type(self.lr)
        return map_params(lambda g: -lr * g, grads), state


def apply_updates(params: Params, updates: Params) -> Params:
    """``params + updates``, array by array, as new read-only arrays."""
    return map_params(np.add, params, updates)


@attrs.frozen
class TrainState:
    """Everything the fold carries from one epoch to the next.

    ``params`` are the parameters after ``epoch`` updates.
    """

    params: Params
    opt_state: EmptyState
    epoch: int


def step(
    state: TrainState, x: np.ndarray, y: np.ndarray, optimizer: Sgd
) -> tuple[TrainState, Metrics]:
    """One gradient step on the batch (x (m, n_in), y (m,)).

    Returns the new state and the metrics of ``state.params`` (the params *before* the
    step) on that batch, which the same forward pass that made the gradient yields.
    """
    metrics, g = value_and_grads(state.params, x, y)
    updates, opt_state = optimizer.update(g, state.opt_state)
    return TrainState(apply_updates(state.params, updates), opt_state, state.epoch + 1), metrics
