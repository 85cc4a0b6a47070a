"""W1, the reference workload: one epoch of full-batch gradient descent over the
reference training set (63,000 images) with a 784-10-10 ReLU network, including the
epoch's metrics (train loss and accuracy, test loss and accuracy).

Every implementation follows purenet's fold: ``start()`` computes the metrics and the
gradient at the initial params and returns the train loss; each ``epoch()`` then applies
the pending update, computes the new params' train metrics and gradient in one
forward/backward pass and their test metrics, and returns the train loss. So
``epoch()`` number ``t`` returns the loss of ``params_t`` in every implementation, and
one call is exactly one epoch of work. Afterwards ``metrics`` holds ``((train loss,
accuracy), (test loss, accuracy))``, which the harness compares with purenet's.
"""

from __future__ import annotations

import numpy as np
from bench_libs import (
    descend,
    jax_loss_and_correct,
    jax_params,
    reference_metrics,
    reference_params,
    torch_metrics,
    torch_model,
    torch_tensor,
)

from purenet import reference
from purenet.config import Config
from purenet.data import Dataset
from purenet.params import Params
from purenet.train import train


class Purenet:
    """purenet's own fold, for both workloads: one ``next()`` of ``train(config, data)``
    per epoch; ``start()`` takes the first snapshot (the initial params, evaluated)."""

    name = "purenet"

    def __init__(self, config: Config, data: Dataset) -> None:
        self._fold = train(config, data)
        self.snapshot = None

    def start(self) -> float:
        self.snapshot = next(self._fold)
        return self.snapshot.train.loss

    def epoch(self) -> float:
        self.snapshot = next(self._fold)
        return self.snapshot.train.loss

    @property
    def params(self) -> Params:
        return self.snapshot.params

    @property
    def metrics(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((train loss, accuracy), (test loss, accuracy)) of the last snapshot."""
        train, test = self.snapshot.train, self.snapshot.test
        return (train.loss, train.accuracy), (test.loss, test.accuracy)


class ReferenceNumpy:
    """:mod:`purenet.reference` run as plain NumPy: the whole batch at once, BLAS with its
    own threads, in ``dtype``. In float64 it is the reference formulas as written; in
    float32 it is what a textbook implementation of the same math costs. One epoch: the
    forward pass and gradient, the update, and the train and test metrics."""

    def __init__(self, params: Params, data: Dataset, lr: float, dtype) -> None:
        self.name = "numpy float64 literal" if dtype == np.float64 else "numpy float32 plain"
        self.params = reference_params(params, dtype)
        self.x, self.y = np.asarray(data.x_train, dtype=dtype), data.y_train
        self.x_test, self.y_test = np.asarray(data.x_test, dtype=dtype), data.y_test
        self.lr = np.dtype(dtype).type(lr)
        self.grads = None
        self.metrics = None

    def _pass(self) -> float:
        train, self.grads = reference.value_and_grads(self.params, self.x, self.y)
        test = reference_metrics(self.params, self.x_test, self.y_test)
        self.metrics = ((train.loss, train.accuracy), test)
        return train.loss

    def start(self) -> float:
        return self._pass()

    def epoch(self) -> float:
        self.params = descend(self.params, self.grads, self.lr)
        return self._pass()


class Torch:
    """PyTorch CPU: ``nn.Sequential`` + autograd + ``torch.optim.SGD``, float32, samples
    x features."""

    name = "pytorch cpu"

    def __init__(self, torch, params: Params, data: Dataset, lr: float) -> None:
        self.torch = torch
        self.model = torch_model(torch, params)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.x, self.y = torch_tensor(torch, data.x_train), torch_tensor(torch, data.y_train)
        self.x_test = torch_tensor(torch, data.x_test)
        self.y_test = torch_tensor(torch, data.y_test)
        self.metrics = None

    def _pass(self) -> float:
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(self.x)
        loss = torch.nn.functional.cross_entropy(logits, self.y)
        loss.backward()
        with torch.inference_mode():
            correct = (logits.argmax(dim=1) == self.y).sum().item()
        train_loss = loss.item()
        self.metrics = (
            (train_loss, correct / len(self.y)),
            torch_metrics(torch, self.model, self.x_test, self.y_test),
        )
        return train_loss

    def start(self) -> float:
        return self._pass()

    def epoch(self) -> float:
        self.optimizer.step()
        return self._pass()


class Jax:
    """JAX: one ``jax.jit``-compiled function per epoch (update, forward/backward via
    ``jax.value_and_grad``, test metrics), float32, samples x features."""

    name = "jax jit"

    def __init__(self, jax, params: Params, data: Dataset, lr: float) -> None:
        self.jax = jax
        self.params = jax_params(jax, params)
        self.x, self.y = jax.device_put(np.array(data.x_train)), jax.device_put(data.y_train)
        self.x_test = jax.device_put(np.array(data.x_test))
        self.y_test = jax.device_put(data.y_test)
        tree_map = jax.tree_util.tree_map

        def metrics_and_grads(params, x, y, x_test, y_test):
            loss_and_correct = lambda p: jax_loss_and_correct(jax, p, x, y)  # noqa: E731
            (loss, correct), grads = jax.value_and_grad(loss_and_correct, has_aux=True)(params)
            test = jax_loss_and_correct(jax, params, x_test, y_test)
            return grads, (loss, correct, *test)

        def step(params, grads, x, y, x_test, y_test):
            params = tree_map(lambda p, g: p - lr * g, params, grads)
            return (params, *metrics_and_grads(params, x, y, x_test, y_test))

        self._first, self._step = jax.jit(metrics_and_grads), jax.jit(step)
        self.grads = None
        self.metrics = None

    def _finish(self, metrics) -> float:
        loss, correct, test_loss, test_correct = (float(v) for v in metrics)
        self.metrics = (
            (loss, correct / len(self.y)),
            (test_loss, test_correct / len(self.y_test)),
        )
        return loss

    def start(self) -> float:
        self.grads, metrics = self._first(self.params, self.x, self.y, self.x_test, self.y_test)
        return self._finish(metrics)

    def epoch(self) -> float:
        self.params, self.grads, metrics = self._step(
            self.params, self.grads, self.x, self.y, self.x_test, self.y_test
        )
        return self._finish(metrics)
