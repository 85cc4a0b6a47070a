"""The network's math, by hand: forward pass, cross-entropy, and backpropagation.

Every function here is pure: it reads its arguments, allocates its result, and never
writes into an input. Layout is samples x features throughout: ``x`` has shape
``(m, n_in)`` with one sample per row, labels ``y`` are integers of shape ``(m,)``, and
logits have shape ``(m, n_classes)``. Hidden layers use the params' activation (ReLU,
tanh or sigmoid), optionally followed by dropout while training; the last layer is
linear and its logits feed a softmax. The dtype of the params (float32 for training,
float64 for gradient checks) is the dtype of the computation.
"""

from __future__ import annotations

import attrs
import numpy as np

from purenet.params import Activation, Layer, Params, frozen_result


@attrs.frozen
class Metrics:
    """Mean cross-entropy and accuracy of some params on some data (plain floats)."""

    loss: float
    accuracy: float


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def activate(z: np.ndarray, activation: Activation) -> np.ndarray:
    """The hidden non-linearity applied to pre-activations ``z`` (m, n)."""
    if activation is Activation.RELU:
        return relu(z)
    if activation is Activation.TANH:
        return np.tanh(z)
    return 1 / (1 + np.exp(-z))  # sigmoid; exp overflow gives exactly 0, as it should


def activation_slope(z: np.ndarray, a: np.ndarray, activation: Activation) -> np.ndarray:
    """d activation / d z at ``z``, given ``a = activate(z)``: ReLU' is 1 where z > 0
    else 0; tanh' = 1 - a²; sigmoid' = a (1 - a)."""
    if activation is Activation.RELU:
        return z > 0
    if activation is Activation.TANH:
        return 1 - a * a
    return a * (1 - a)


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
    out = a @ layer.w
    out += layer.b  # in place on the fresh product: one pass fewer over the result
    return out


def _trace(
    params: Params,
    x: np.ndarray,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list, np.ndarray]:
    """Forward pass keeping what backpropagation needs.

    With ``dropout > 0`` each hidden unit's output is zeroed with probability
    ``dropout`` and the survivors scaled by ``1 / (1 - dropout)`` (inverted dropout), with
    masks drawn from ``rng``.

    Returns ``(inputs, pre, post, masks, logits)``: the input of every layer (``x`` first),
    the pre-activations and activations (before dropout) of the hidden layers, their
    dropout masks (None without dropout), and the logits (m, n_out).
    """
    inputs, pre, post, masks = [x], [], [], []
    for layer in params.layers[:-1]:
        z = _affine(layer, inputs[-1])
        a = activate(z, params.activation)
        pre.append(z)
        post.append(a)
        mask = None
        if dropout > 0:
            keep = rng.random(a.shape, dtype=np.float32) >= dropout
            mask = keep.astype(a.dtype) * a.dtype.type(1 / (1 - dropout))
            a = a * mask
        masks.append(mask)
        inputs.append(a)
    return inputs, pre, post, masks, _affine(params.layers[-1], inputs[-1])


def forward(params: Params, x: np.ndarray) -> np.ndarray:
    """Logits of shape (m, n_out) for inputs ``x`` of shape (m, n_in)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _trace(params, x)[-1]


def _loss_sum_and_correct(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, int]:
    """``(log_softmax(logits), summed cross-entropy, number of correct argmaxes)``.

    The per-row losses are added in float64 whatever the dtype of the logits.
    """
    logp = log_softmax(logits)
    loss_sum = -float(logp[np.arange(len(y)), y].sum(dtype=np.float64))
    return logp, loss_sum, int(np.count_nonzero(logits.argmax(axis=1) == y))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean categorical cross-entropy of logits (m, k) against integer labels (m,)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _loss_sum_and_correct(logits, y)[1] / len(y)


# Rows per chunk. Chunking bounds the memory of the intermediates (activations and
# their gradients are chunk_rows x width instead of m x width, which matters for wide
# layers on the full batch) and lets a chunk of X stay in cache between the forward and
# backward products. On the reference network it measured about even with one big
# chunk (both ~55-60 ms per epoch here); the speed issue owns deeper tuning.
DEFAULT_CHUNK_ROWS = 4096


def _chunks(m: int, chunk_rows: int) -> list[slice]:
    return [slice(start, start + chunk_rows) for start in range(0, m, chunk_rows)]


def evaluate(
    params: Params, x: np.ndarray, y: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Metrics:
    """Mean loss and accuracy of ``params`` on ``x`` (m, n_in) with labels ``y`` (m,).

    Computed chunk by chunk exactly as :func:`value_and_grads` computes its metrics, so
    the two agree bit for bit on the same params and data.
    """
    loss_sum, correct = 0.0, 0
    with np.errstate(over="ignore", invalid="ignore"):
        for part in _chunks(len(y), chunk_rows):
            _, chunk_loss, chunk_correct = _loss_sum_and_correct(
                _trace(params, x[part])[-1], y[part]
            )
            loss_sum += chunk_loss
            correct += chunk_correct
    return Metrics(loss_sum / len(y), correct / len(y))


def loss(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the network on ``x`` (m, n_in) with labels ``y`` (m,)."""
    return evaluate(params, x, y).loss


def _chunk_sums(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    m_total: int,
    dropout: float,
    rng: np.random.Generator | None,
) -> tuple[float, int, list[tuple[np.ndarray, np.ndarray]]]:
    """Summed loss, correct count and gradient contributions of one chunk of rows.

    Backpropagation as in the reference, written for row-per-sample layout: with
    ``P = softmax(logits)`` and ``Y`` the one-hot labels, ``dZ_L = (P - Y) / m``; for each
    layer ``dW = A_prevᵀ dZ`` and ``db = sum of dZ over rows``; below a hidden layer
    ``dZ_prev = (dZ Wᵀ) * mask * act'(Z_prev)`` (the mask is dropout's, if any; for ReLU
    ``act'(z) = 1 if z > 0 else 0``). ``m`` is the size of the whole batch, so chunk
    contributions add up to the gradient.
    """
    inputs, pre, post, masks, logits = _trace(params, x, dropout, rng)
    logp, loss_sum, correct = _loss_sum_and_correct(logits, y)
    dz = np.exp(logp)
    dz[np.arange(len(y)), y] -= 1
    dz /= m_total
    grads: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(len(params.layers) - 1, -1, -1):
        grads.append((inputs[i].T @ dz, dz.sum(axis=0)))
        if i > 0:
            da = dz @ params.layers[i].w.T
            if masks[i - 1] is not None:
                da *= masks[i - 1]
            dz = da * activation_slope(pre[i - 1], post[i - 1], params.activation)
    return loss_sum, correct, grads[::-1]


def value_and_grads(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    dropout: float = 0.0,
    dropout_key: tuple[int, ...] | None = None,
) -> tuple[Metrics, Params]:
    """Metrics of ``params`` on (x, y) and the gradient of the mean loss, from one pass.

    The batch is processed ``chunk_rows`` rows at a time and the per-chunk sums are
    added: the result is the full-batch gradient, exact up to the order of float
    additions, and a pure function of the arguments (same inputs, same bits).

    Args:
        params: the network.
        x: inputs, shape (m, n_in), the dtype of ``params``.
        y: integer labels in [0, n_out), shape (m,).
        chunk_rows: rows per chunk (>= 1).
        dropout: probability of dropping each hidden unit's output (0 = off).
        dropout_key: seeds the dropout masks (``np.random.default_rng(dropout_key)``);
            required when ``dropout > 0``.

    Returns:
        ``(Metrics, grads)``: the metrics of this forward pass (equal to
        ``evaluate(params, x, y)`` bit for bit when dropout is off), and ``grads`` with
        the structure of ``params``.
    """
    if dropout > 0 and dropout_key is None:
        raise ValueError("dropout needs a dropout_key")
    rng = np.random.default_rng(dropout_key) if dropout > 0 else None
    m = len(y)
    loss_sum, correct, total = 0.0, 0, None
    with np.errstate(over="ignore", invalid="ignore"):
        for part in _chunks(m, chunk_rows):
            chunk_loss, chunk_correct, chunk_grads = _chunk_sums(
                params, x[part], y[part], m, dropout, rng
            )
            loss_sum += chunk_loss
            correct += chunk_correct
            if total is None:
                total = chunk_grads  # fresh arrays: summed into in place below
            else:
                for (w_sum, b_sum), (w, b) in zip(total, chunk_grads, strict=True):
                    w_sum += w
                    b_sum += b
    layers = tuple(Layer(frozen_result(w), frozen_result(b)) for w, b in total)
    return Metrics(loss_sum / m, correct / m), Params(layers, params.activation)


def grads(params: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradient of :func:`loss` with respect to every parameter array."""
    return value_and_grads(params, x, y)[1]
