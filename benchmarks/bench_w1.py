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
    jax_loss_and_correct,
    jax_params,
    numpy_backward,
    numpy_forward,
    numpy_loss_and_correct,
    numpy_params,
    torch_metrics,
    torch_model,
    torch_tensor,
)

from purenet.data import Dataset
from purenet.params import Params
from purenet.train import Config, train


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


class LiteralNumpy:
    """The reference formulas written literally, in float64 and the reference's own
    layout (features x samples: X is (784, m), W1 is (10, 784), b1 is (10, 1)).

    Z1 = W1·X + b1, A1 = ReLU(Z1), Z2 = W2·A1 + b2, A2 = softmax(Z2);
    dZ2 = A2 - Y, dW2 = dZ2·A1ᵀ/m, db2 = mean of dZ2, dZ1 = W2ᵀ·dZ2 * ReLU'(Z1),
    dW1 = dZ1·Xᵀ/m, db1 = mean of dZ1; W = W - lr·dW.
    """

    name = "numpy float64 literal"

    def __init__(self, params: Params, data: Dataset, lr: float) -> None:
        (l1, l2) = params.layers
        self.W1, self.b1 = l1.w.T.astype(np.float64), l1.b.astype(np.float64)[:, None]
        self.W2, self.b2 = l2.w.T.astype(np.float64), l2.b.astype(np.float64)[:, None]
        self.X = np.ascontiguousarray(data.x_train.T, dtype=np.float64)
        self.y = data.y_train
        self.Y = np.zeros((self.W2.shape[0], len(self.y)))
        self.Y[self.y, np.arange(len(self.y))] = 1
        self.X_test = np.ascontiguousarray(data.x_test.T, dtype=np.float64)
        self.y_test = data.y_test
        self.lr = lr
        self.grads = None
        self.metrics = None

    def _forward(self, X):
        Z1 = self.W1.dot(X) + self.b1
        A1 = np.maximum(Z1, 0)
        Z2 = self.W2.dot(A1) + self.b2
        E = np.exp(Z2 - Z2.max(axis=0))
        A2 = E / E.sum(axis=0)
        return Z1, A1, A2

    @staticmethod
    def _metrics(A2, y) -> tuple[float, float]:
        loss = -np.mean(np.log(A2[y, np.arange(len(y))]))
        return float(loss), float(np.mean(A2.argmax(axis=0) == y))

    def _pass(self) -> float:
        X, Y, m = self.X, self.Y, self.X.shape[1]
        Z1, A1, A2 = self._forward(X)
        train_metrics = self._metrics(A2, self.y)
        dZ2 = A2 - Y
        dW2 = dZ2.dot(A1.T) / m
        db2 = dZ2.mean(axis=1, keepdims=True)
        dZ1 = self.W2.T.dot(dZ2) * (Z1 > 0)
        dW1 = dZ1.dot(X.T) / m
        db1 = dZ1.mean(axis=1, keepdims=True)
        self.grads = (dW1, db1, dW2, db2)
        self.metrics = (train_metrics, self._metrics(self._forward(self.X_test)[2], self.y_test))
        return train_metrics[0]

    def start(self) -> float:
        return self._pass()

    def epoch(self) -> float:
        dW1, db1, dW2, db2 = self.grads
        self.W1 = self.W1 - self.lr * dW1
        self.b1 = self.b1 - self.lr * db1
        self.W2 = self.W2 - self.lr * dW2
        self.b2 = self.b2 - self.lr * db2
        return self._pass()


class PlainNumpy:
    """The textbook epoch in float32 NumPy, samples x features (X is (m, 784), W1 is
    (784, 10)): forward, softmax cross-entropy, the full-batch gradient, the update, and
    the train and test metrics; no blocks, no threads of its own (BLAS's only)."""

    name = "numpy float32 plain"

    def __init__(self, params: Params, data: Dataset, lr: float) -> None:
        self.p = numpy_params(params)
        self.x, self.y = np.asarray(data.x_train, dtype=np.float32), data.y_train
        self.x_test, self.y_test = np.asarray(data.x_test, dtype=np.float32), data.y_test
        self.lr = np.float32(lr)
        self.grads = None
        self.metrics = None

    def _pass(self) -> float:
        h, logp = numpy_forward(self.p, self.x)
        self.grads = numpy_backward(self.p, self.x, h, logp, self.y)
        loss, correct = numpy_loss_and_correct(logp, self.y)
        test_loss, test_correct = numpy_loss_and_correct(
            numpy_forward(self.p, self.x_test)[1], self.y_test
        )
        self.metrics = (
            (loss, correct / len(self.y)),
            (test_loss, test_correct / len(self.y_test)),
        )
        return loss

    def start(self) -> float:
        return self._pass()

    def epoch(self) -> float:
        self.p = [a - self.lr * g for a, g in zip(self.p, self.grads, strict=True)]
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
