"""The reference network: what purenet computes, written to be read top to bottom.

One sample per row: inputs ``x`` are (m, n_in), labels ``y`` are integers (m,), a layer's
weights ``w`` are (n_in, n_out) and its biases ``b`` (n_out,). Hidden layers apply an
activation (ReLU, tanh or sigmoid), then, while training, inverted dropout; the last layer
is linear and its logits feed a softmax; the loss is the mean categorical cross-entropy.
The reference tutorial lays samples out in columns, so its ``dW1 = dZ1·Xᵀ / m`` is
``x.T @ dz1`` here, transposed, with the 1/m already in ``dz``: this module divides by m
once, at the output (:func:`cross_entropy_grad`).

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
    """Mean of ``-log softmax(logits)[label]`` over the m samples; ``logits`` (m, k),
    labels ``y`` (m,)."""
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean(dtype=np.float64))


def cross_entropy_grad(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d cross_entropy / d logits, shape (m, k): ``(softmax(logits) - onehot(y)) / m``."""
    dz = softmax(logits)
    dz[np.arange(len(y)), y] -= 1
    return dz / len(y)


def dropout_masks(
    m: int, widths: tuple[int, ...], p: float, key: tuple[int, ...], dtype: np.dtype
) -> list[np.ndarray]:
    """Inverted dropout's masks for a batch of ``m`` samples, one (m, width) array per
    hidden layer: 0 with probability ``p``, else ``1 / (1 - p)``, so that a unit's
    expected output is unchanged. Drawn from ``default_rng(key)``, layer after layer.
    Dropout multiplies a layer's output by its mask, so its derivative multiplies the
    gradient flowing back by the same mask."""
    rng = np.random.default_rng(key)
    scale = np.dtype(dtype).type(1 / (1 - p))
    return [
        (rng.random((m, width), dtype=np.float32) >= p).astype(dtype) * scale for width in widths
    ]


@attrs.frozen
class Trace:
    """What a forward pass keeps for backpropagation: the input of every layer (``x``,
    then each hidden layer's output after dropout), each hidden layer's pre-activations
    ``z``, and the logits (m, n_out)."""

    inputs: list[np.ndarray]
    pre: list[np.ndarray]
    logits: np.ndarray


def forward_trace(params: Params, x: np.ndarray, *, masks: list | None = None) -> Trace:
    """The forward pass over ``x`` (m, n_in), with dropout ``masks`` (each (m, width))
    if given: layer by layer, ``z = a @ w + b`` (m, n_out), then the activation."""
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


def backprop(params: Params, trace: Trace, y: np.ndarray, *, masks: list | None = None) -> Params:
    """The gradient of the mean cross-entropy with respect to every weight and bias (the
    structure of ``params``), layer by layer from the output, by the chain rule."""
    dz = cross_entropy_grad(trace.logits, y)  # d loss / d z of the last layer, (m, n_out)
    grads = []
    for i in reversed(range(len(params.layers))):
        a = trace.inputs[i]  # this layer's input, (m, n_in)
        grads.append(Layer(a.T @ dz, dz.sum(axis=0)))  # dW = Aᵀ dZ (n_in, n_out), db = Σ dZ
        if i > 0:
            da = dz @ params.layers[i].w.T  # d loss / d a, (m, n_in)
            if masks:
                da = da * masks[i - 1]  # through dropout: the same mask
            dz = da * activation_slope(trace.pre[i - 1], params.activation)  # through act
    return Params(tuple(reversed(grads)), params.activation)


def value_and_grads(
    params: Params, x: np.ndarray, y: np.ndarray, *, masks: list | None = None
) -> tuple[Metrics, Params]:
    """The metrics of ``params`` on ``x`` (m, n_in) with labels ``y`` (m,), and the
    gradient of the mean loss (shaped like ``params``), from one forward pass (with
    dropout ``masks`` if given)."""
    trace = forward_trace(params, x, masks=masks)
    accuracy = float(np.mean(trace.logits.argmax(axis=1) == y))
    metrics = Metrics(cross_entropy(trace.logits, y), accuracy)
    return metrics, backprop(params, trace, y, masks=masks)
