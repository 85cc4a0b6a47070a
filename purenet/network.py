"""The network's math, by hand: forward pass, cross-entropy, and backpropagation.

Every function here is pure: it reads its arguments, allocates its result, and never
writes into an input. Layout is samples x features throughout: ``x`` has shape
``(m, n_in)`` with one sample per row, labels ``y`` are integers of shape ``(m,)``, and
logits have shape ``(m, n_classes)``. Hidden layers use ReLU; the last layer is linear
and its logits feed a softmax. The dtype of the params (float32 for training, float64
for gradient checks) is the dtype of the computation.
"""

from __future__ import annotations

import attrs
import numpy as np

from purenet.params import Layer, Params


@attrs.frozen
class Metrics:
    """Mean cross-entropy and accuracy of some params on some data (plain floats)."""

    loss: float
    accuracy: float


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log of the softmax of ``z`` (m, k), computed without overflow.

    Subtracting each row's maximum first keeps ``exp`` in (0, 1], so logits of any
    magnitude (1e4, -1e4) give exact, finite log-probabilities.
    """
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``z`` (m, k); each row sums to 1."""
    return np.exp(log_softmax(z))


def _affine(layer: Layer, a: np.ndarray) -> np.ndarray:
    return a @ layer.w + layer.b


def forward(params: Params, x: np.ndarray) -> np.ndarray:
    """Logits of shape (m, n_out) for inputs ``x`` of shape (m, n_in)."""
    with np.errstate(over="ignore", invalid="ignore"):
        a = x
        for layer in params.layers[:-1]:
            a = relu(_affine(layer, a))
        return _affine(params.layers[-1], a)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean categorical cross-entropy of logits (m, k) against integer labels (m,)."""
    with np.errstate(over="ignore", invalid="ignore"):
        logp = log_softmax(logits)
        return float(-logp[np.arange(len(y)), y].mean())


def accuracy_of(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose largest logit is at the true label."""
    return float(np.count_nonzero(logits.argmax(axis=1) == y) / len(y))


def loss(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the network on ``x`` (m, n_in) with labels ``y`` (m,)."""
    return cross_entropy(forward(params, x), y)


def evaluate(params: Params, x: np.ndarray, y: np.ndarray) -> Metrics:
    """Loss and accuracy from one forward pass."""
    logits = forward(params, x)
    return Metrics(cross_entropy(logits, y), accuracy_of(logits, y))


def value_and_grads(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[Metrics, Params]:
    """Metrics of ``params`` on (x, y) and the gradient of the mean loss, from one pass.

    Backpropagation as in the reference, written for row-per-sample layout: with
    ``P = softmax(logits)`` and ``Y`` the one-hot labels,
    ``dZ_L = (P - Y) / m``; for each layer ``dW = A_prevᵀ dZ``, ``db = sum of dZ over
    rows``; and below a hidden layer ``dZ_prev = (dZ Wᵀ) * ReLU'(Z_prev)``, where
    ``ReLU'(z) = 1 if z > 0 else 0``.

    Args:
        params: the network.
        x: inputs, shape (m, n_in), the dtype of ``params``.
        y: integer labels in [0, n_out), shape (m,).

    Returns:
        ``(Metrics, grads)`` where ``grads`` has the structure of ``params``.
    """
    m = len(y)
    rows = np.arange(m)
    with np.errstate(over="ignore", invalid="ignore"):
        inputs = [x]  # the input of each layer
        pre = []  # pre-activations of the hidden layers
        for layer in params.layers[:-1]:
            z = _affine(layer, inputs[-1])
            pre.append(z)
            inputs.append(relu(z))
        logits = _affine(params.layers[-1], inputs[-1])
        logp = log_softmax(logits)
        metrics = Metrics(float(-logp[rows, y].mean()), accuracy_of(logits, y))

        dz = np.exp(logp)
        dz[rows, y] -= 1
        dz /= m
        grads: list[Layer] = []
        for i in range(len(params.layers) - 1, -1, -1):
            dw = inputs[i].T @ dz
            db = dz.sum(axis=0)
            grads.append(Layer(dw, db))
            if i > 0:
                dz = (dz @ params.layers[i].w.T) * (pre[i - 1] > 0)
    return metrics, Params(tuple(reversed(grads)))


def grads(params: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradient of :func:`loss` with respect to every parameter array."""
    return value_and_grads(params, x, y)[1]
