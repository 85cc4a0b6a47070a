"""The reference network: what purenet computes, written to be read top to bottom.

One sample per row: inputs ``x`` are (m, n_in), labels ``y`` are integers (m,), a layer's
weights ``w`` are (n_in, n_out) and its biases ``b`` (n_out,). Hidden layers apply an
activation (ReLU, tanh or sigmoid), then, while training, inverted dropout; the last layer
is linear and its logits feed a softmax; the loss is the mean categorical cross-entropy.
The reference tutorial lays samples out in columns, so its ``dW1 = dZ1·Xᵀ / m`` is
``x.T @ dz1 / m`` here, transposed.

The fast engine behind :mod:`purenet.network` (blocks, tiles, packed inputs, threads)
computes exactly these functions, up to the order of float additions;
``tests/test_engine.py`` checks that on the shapes where it takes its fast paths.
"""

from __future__ import annotations

import attrs
import numpy as np

from purenet.params import Activation, Layer, Params


@attrs.frozen
class Metrics:
    """Mean cross-entropy and accuracy of some params on some data (plain floats)."""

    loss: float
    accuracy: float


def activate(z: np.ndarray, activation: Activation) -> np.ndarray:
    """The hidden non-linearity, element by element on pre-activations ``z`` (m, n)."""
    if activation is Activation.RELU:
        return np.maximum(z, 0)
    if activation is Activation.TANH:
        return np.tanh(z)
    return 1 / (1 + np.exp(-z))  # sigmoid; exp overflow gives exactly 0, as it should


def activation_slope(z: np.ndarray, activation: Activation) -> np.ndarray:
    """d activate(z) / dz: ReLU' = 1 where z > 0 else 0; tanh' = 1 - tanh²;
    sigmoid' = s (1 - s)."""
    if activation is Activation.RELU:
        return (z > 0).astype(z.dtype)
    a = activate(z, activation)
    return 1 - a * a if activation is Activation.TANH else a * (1 - a)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log of the softmax of logits ``z`` (m, k). Subtracting each row's maximum
    first keeps ``exp`` in (0, 1], so logits of any size give finite results."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``z`` (m, k): each row is a probability distribution."""
    return np.exp(log_softmax(z))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean of ``-log softmax(logits)[label]`` over the m samples."""
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean(dtype=np.float64))


def dropout_masks(
    shape: tuple[int, ...], widths: tuple[int, ...], p: float, key: tuple[int, ...], dtype
) -> list[np.ndarray]:
    """Inverted dropout's masks for a batch of ``shape[0]`` samples, one (m, width) array
    per hidden layer: 0 with probability ``p``, else ``1 / (1 - p)``, so that a unit's
    expected output is unchanged. Drawn from ``default_rng(key)``, layer after layer."""
    rng = np.random.default_rng(key)
    scale = np.dtype(dtype).type(1 / (1 - p))
    return [
        (rng.random((shape[0], width), dtype=np.float32) >= p).astype(dtype) * scale
        for width in widths
    ]


@attrs.frozen
class Trace:
    """What a forward pass keeps for backpropagation: the input of every layer (``x``,
    then each hidden layer's output after dropout), each hidden layer's pre-activations
    ``z``, and the logits (m, n_out)."""

    inputs: list[np.ndarray]
    pre: list[np.ndarray]
    logits: np.ndarray


def forward_trace(params: Params, x: np.ndarray, masks: list | None = None) -> Trace:
    """The forward pass over ``x`` (m, n_in), with dropout ``masks`` if given."""
    inputs, pre = [x], []
    for i, layer in enumerate(params.layers):
        z = inputs[-1] @ layer.w + layer.b  # (m, n_out)
        if i == len(params.layers) - 1:
            return Trace(inputs, pre, z)
        a = activate(z, params.activation)
        pre.append(z)
        inputs.append(a * masks[i] if masks else a)
    raise ValueError("a network needs at least one layer")


def forward(params: Params, x: np.ndarray) -> np.ndarray:
    """The logits (m, n_out) of ``x`` (m, n_in), dropout off."""
    return forward_trace(params, x).logits


def backprop(params: Params, trace: Trace, y: np.ndarray, masks: list | None = None) -> Params:
    """The gradient of the mean cross-entropy with respect to every weight and bias,
    layer by layer from the output, by the chain rule."""
    m = len(y)
    dz = softmax(trace.logits)  # d loss / d logits = (softmax - onehot(y)) / m
    dz[np.arange(m), y] -= 1
    dz /= m
    grads = []
    for i in reversed(range(len(params.layers))):
        grads.append(Layer(trace.inputs[i].T @ dz, dz.sum(axis=0)))  # dW = Aᵀ dZ, db = Σ dZ
        if i > 0:
            da = dz @ params.layers[i].w.T  # d loss / d (output of hidden layer i - 1)
            if masks:
                da = da * masks[i - 1]  # dropout passes the gradient where it passed the unit
            dz = da * activation_slope(trace.pre[i - 1], params.activation)
    return Params(tuple(reversed(grads)), params.activation)


def value_and_grads(
    params: Params, x: np.ndarray, y: np.ndarray, masks: list | None = None
) -> tuple[Metrics, Params]:
    """The metrics of ``params`` on (x, y) and the gradient of the mean loss, from one
    forward pass (with dropout ``masks`` if given)."""
    trace = forward_trace(params, x, masks)
    accuracy = float(np.mean(trace.logits.argmax(axis=1) == y))
    metrics = Metrics(cross_entropy(trace.logits, y), accuracy)
    return metrics, backprop(params, trace, y, masks)
