"""W2: mini-batch training of a 784-512-10 ReLU network on the standard split, batches
of 128, heavy-ball momentum 0.9, learning rate 0.1.

One ``epoch()`` is one pass over the training set in purenet's epoch order
(``purenet.train.epoch_order``, so every implementation sees the same batches), with
the running mean of the batches' loss and accuracy, then the test metrics of the new
params. It returns the running mean train loss, which is what purenet's snapshot
reports, so the implementations' losses can be compared epoch by epoch.
"""

from __future__ import annotations

import itertools
import math

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
from purenet._engine import blocks
from purenet._engine.packing import drop_blank_columns
from purenet.config import Config
from purenet.data import Dataset
from purenet.params import Params, map_params
from purenet.train import epoch_order


def flops_per_epoch(sizes: tuple[int, ...], m_train: int, m_test: int) -> float:
    """Multiply-adds x 2 of the matrix products in one epoch.

    Training, per sample: the forward product of every layer, the weight gradient of
    every layer, and the input gradient of every layer but the first; the test set: the
    forward products.
    """
    products = [n_in * n_out for n_in, n_out in itertools.pairwise(sizes)]
    train_per_sample = 2 * (2 * sum(products) + sum(products[1:]))
    return float(m_train * train_per_sample + m_test * 2 * sum(products))


def w2_config(epochs: int) -> Config:
    """The W2 workload as a purenet configuration."""
    return Config(
        split="standard",
        hidden=(512,),
        batch_size=128,
        optimizer="momentum",
        momentum=0.9,
        lr=0.1,
        epochs=epochs,
    )


def purenet_flops(config: Config, data: Dataset) -> float:
    """The multiply-adds x 2 that purenet really does in its first epoch: like
    :func:`flops_per_epoch`, except that a wide first layer leaves out each block's blank
    input columns (:func:`purenet._engine.packing.drop_blank_columns`) in all its products."""
    sizes = config.sizes
    products = [n_in * n_out for n_in, n_out in itertools.pairwise(sizes)]
    shapes = list(itertools.pairwise(sizes))

    def kept_columns(block: np.ndarray) -> int:
        if not blocks.wide(*shapes[0]):
            return sizes[0]
        columns = drop_blank_columns(block)[1]
        return sizes[0] if columns is None else len(columns)

    total = 0.0
    for rows in _Batches(config, len(data.y_train)).next_epoch_at(0):
        first = kept_columns(data.x_train[rows]) * sizes[1]
        total += len(rows) * 2 * (2 * (first + sum(products[1:])) + sum(products[1:]))
    for rows in blocks.plan(len(data.y_test), shapes).blocks:
        first = kept_columns(data.x_test[rows]) * sizes[1]
        total += (rows.stop - rows.start) * 2 * (first + sum(products[1:]))
    return total


class _Batches:
    """purenet's epoch order, cut into batches."""

    def __init__(self, config: Config, m: int) -> None:
        self.config, self.m, self.size = config, m, config.batch_size
        self.count = math.ceil(m / self.size)
        self.epoch = 0

    def next_epoch(self) -> list[np.ndarray]:
        self.epoch += 1
        return self.next_epoch_at(self.epoch - 1)

    def next_epoch_at(self, epoch: int) -> list[np.ndarray]:
        order = epoch_order(self.config, self.m, epoch)
        return [order[b * self.size : (b + 1) * self.size] for b in range(self.count)]


class PlainNumpy:
    """:mod:`purenet.reference` run as plain NumPy in float32, mini-batch by mini-batch
    (gathered with fancy indexing), with the heavy-ball update ``v = momentum * v + g;
    w = w - lr * v``; then the test metrics. BLAS uses its own threads (the default)."""

    name = "numpy float32 plain"

    def __init__(self, params: Params, data: Dataset, config: Config) -> None:
        self.params = reference_params(params, np.float32)
        self.velocity = map_params(np.zeros_like, self.params)
        self.lr, self.beta = np.float32(config.lr), np.float32(config.momentum)
        self.x, self.y = np.asarray(data.x_train, dtype=np.float32), data.y_train
        self.x_test, self.y_test = np.asarray(data.x_test, dtype=np.float32), data.y_test
        self.batches = _Batches(config, len(data.y_train))
        self.metrics = None

    def epoch(self) -> float:
        loss_sum, correct = 0.0, 0
        for rows in self.batches.next_epoch():
            xb, yb = self.x[rows], self.y[rows]
            metrics, grads = reference.value_and_grads(self.params, xb, yb)
            self.velocity = map_params(lambda v, g: self.beta * v + g, self.velocity, grads)
            self.params = descend(self.params, self.velocity, self.lr)
            loss_sum += metrics.loss * len(rows)
            correct += round(metrics.accuracy * len(rows))
        m = len(self.y)
        test = reference_metrics(self.params, self.x_test, self.y_test)
        self.metrics = ((loss_sum / m, correct / m), test)
        return loss_sum / m

    def test_loss_of(self, params: Params) -> float:
        """The test loss of ``params``, computed as this implementation computes its own."""
        return reference_metrics(params.astype(np.float32), self.x_test, self.y_test)[0]


class Torch:
    """PyTorch CPU: ``nn.Sequential``, ``F.cross_entropy``, autograd and
    ``torch.optim.SGD(momentum=...)`` (the same heavy-ball rule as purenet's)."""

    name = "pytorch nn + optim"

    def __init__(self, torch, params: Params, data: Dataset, config: Config) -> None:
        self.torch = torch
        self.model = torch_model(torch, params)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum
        )
        self.x, self.y = torch_tensor(torch, data.x_train), torch_tensor(torch, data.y_train)
        self.x_test = torch_tensor(torch, data.x_test)
        self.y_test = torch_tensor(torch, data.y_test)
        self.batches = _Batches(config, len(data.y_train))
        self.metrics = None

    def epoch(self) -> float:
        torch, model, optimizer = self.torch, self.model, self.optimizer
        loss_sum, correct = 0.0, 0
        for rows in self.batches.next_epoch():
            index = torch.from_numpy(rows)
            xb, yb = self.x[index], self.y[index]
            logits = model(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(rows)
            correct += (logits.detach().argmax(dim=1) == yb).sum().item()
        m = len(self.y)
        self.metrics = (
            (loss_sum / m, correct / m),
            torch_metrics(torch, model, self.x_test, self.y_test),
        )
        return loss_sum / m

    def test_loss_of(self, params: Params) -> float:
        """The test loss of ``params``, computed as this implementation computes its own."""
        model = torch_model(self.torch, params)
        return torch_metrics(self.torch, model, self.x_test, self.y_test)[0]


class Jax:
    """JAX: one ``jax.jit``-compiled step per batch (gather, ``jax.value_and_grad``,
    momentum update), float32, samples x features; losses stay on the device until the
    epoch ends."""

    name = "jax jit"

    def __init__(self, jax, params: Params, data: Dataset, config: Config) -> None:
        self.jax = jax
        jnp = jax.numpy
        tree_map = jax.tree_util.tree_map
        lr, beta = config.lr, config.momentum
        self.params = jax_params(jax, params)
        self.velocity = tree_map(jnp.zeros_like, self.params)
        self.x, self.y = jax.device_put(np.array(data.x_train)), jax.device_put(data.y_train)
        self.x_test = jax.device_put(np.array(data.x_test))
        self.y_test = jax.device_put(data.y_test)
        self.batches = _Batches(config, len(data.y_train))

        def step(params, velocity, x, y, rows):
            xb, yb = x[rows], y[rows]
            loss_and_correct = lambda p: jax_loss_and_correct(jax, p, xb, yb)  # noqa: E731
            (loss, correct), grads = jax.value_and_grad(loss_and_correct, has_aux=True)(params)
            velocity = tree_map(lambda v, g: beta * v + g, velocity, grads)
            params = tree_map(lambda p, v: p - lr * v, params, velocity)
            return params, velocity, loss * len(rows), correct

        self._step = jax.jit(step)
        self._evaluate = jax.jit(lambda p, x, y: jax_loss_and_correct(jax, p, x, y))
        self.metrics = None

    def epoch(self) -> float:
        sums = []
        for rows in self.batches.next_epoch():
            self.params, self.velocity, loss_sum, correct = self._step(
                self.params, self.velocity, self.x, self.y, rows.astype(np.int32)
            )
            sums.append((loss_sum, correct))
        m = len(self.y)
        loss_sum = sum(float(s) for s, _ in sums)
        correct = sum(int(c) for _, c in sums)
        test_loss, test_correct = self._evaluate(self.params, self.x_test, self.y_test)
        self.metrics = (
            (loss_sum / m, correct / m),
            (float(test_loss), int(test_correct) / len(self.y_test)),
        )
        return loss_sum / m

    def test_loss_of(self, params: Params) -> float:
        """The test loss of ``params``, computed as this implementation computes its own."""
        loss, _ = self._evaluate(jax_params(self.jax, params), self.x_test, self.y_test)
        return float(loss)
