"""The fast engine: the network of :mod:`purenet.reference`, computed block by block.

Each public function here computes what the reference defines, on a batch cut by
:mod:`purenet._engine.blocks` into blocks of rows (on purenet's threads) and tiles (for
skinny products), or for a :class:`~purenet._engine.packing.PackedBatch` in the blocks it
was packed in, each without its blank input columns. The blocks' sums are added in a fixed
order, so the results do not depend on the number of threads; they differ from the
reference's only in the order of float additions.

Every public function is pure: it reads its arguments, allocates its result, and never
writes into an input (private helpers may overwrite the fresh arrays that their callers
hand over to them, as :func:`_output_terms` does). Layout is samples x features: ``x``
(m, n_in), labels ``y`` (m,) integers, logits (m, n_classes). The dtype of the params
(float32 for training, float64 for gradient checks) is the dtype of the computation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import attrs
import numpy as np

from purenet._engine import blocks
from purenet._engine.packing import PackedBatch, drop_blank_columns
from purenet._engine.threads import run_tasks
from purenet.arrays import frozen_result
from purenet.params import Activation, Layer, Params
from purenet.reference import Metrics, activate, dropout_masks


def _slope(z: np.ndarray, a: np.ndarray, activation: Activation) -> np.ndarray:
    """:func:`purenet.reference.activation_slope` from ``z`` and ``a = activate(z)``,
    without computing the activation again (for ReLU a boolean array, which multiplies
    faster)."""
    if activation is Activation.RELU:
        return z > 0
    if activation is Activation.TANH:
        return 1 - a * a
    return a * (1 - a)


@attrs.frozen(eq=False)
class _Layers:
    """The layers of ``params`` made ready for one pass over a batch: the plan that cuts
    the batch into blocks and tiles, and the weights of each tiled layer transposed into
    C order, the operand order of the fast tiled product (see :mod:`purenet._engine.blocks`)."""

    params: Params
    w_t: tuple[np.ndarray | None, ...]
    plan: blocks.Plan

    @classmethod
    def prepare(
        cls, params: Params, m: int, block_rows: int | None, workers: int | None
    ) -> _Layers:
        plan = blocks.plan(m, [layer.w.shape for layer in params.layers], block_rows, workers)
        w_t = tuple(
            None if tile is None else np.ascontiguousarray(layer.w.T)
            for layer, tile in zip(params.layers, plan.tiles, strict=True)
        )
        return cls(params, w_t, plan)

    def affine(self, i: int, a: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """Layer i's pre-activations ``a @ w + b``, shape (rows, n_out). With ``columns``,
        ``a`` (rows, k) holds only those inputs (the others are zero) and is multiplied
        with the matching rows of ``w``."""
        layer = self.params.layers[i]
        w, w_t = layer.w, self.w_t[i]
        if columns is not None:
            w = w.take(columns, axis=0)  # take: faster than w[columns] for rows
            w_t = None if w_t is None else w_t.take(columns, axis=1)
        out = self.product(i, a, w, w_t)
        out += layer.b  # in place on the fresh product
        return out

    def product(self, i: int, a: np.ndarray, w: np.ndarray, w_t: np.ndarray | None = None):
        """``a @ w`` with layer i's weights (or their transpose, or some of their rows),
        cut as the plan says for layer i: in tiles, by output columns on threads when the
        layer is wide, or in one piece."""
        if self.plan.wide[i]:
            return self.wide_product(a, w)
        return blocks.tiled_product(a, w, w_t, self.plan.tiles[i])

    def wide_product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b`` for a wide layer, cut as the plan says (see
        :func:`purenet._engine.blocks.wide_product`)."""
        return blocks.wide_product(a, b, self.plan.product_workers, self.plan.blas_threads)

    def logits_t(self, a: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """The last layer's pre-activations (the logits) transposed: shape (n_out, rows),
        the layout in which :func:`_output_terms` works. A fresh C-order array."""
        last = len(self.params.layers) - 1
        if self.plan.tiles[last] is not None or self.plan.wide[last]:
            return self.affine(last, a, columns).T.copy()
        layer = self.params.layers[last]
        w = layer.w if columns is None else layer.w.take(columns, axis=0)
        out = w.T @ a.T
        out += layer.b[:, None]
        return out


def _trace(
    layers: _Layers,
    x: np.ndarray,
    masks: Sequence[np.ndarray] = (),
    columns: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Forward pass over one block ``x`` (rows, n_in), keeping what backpropagation needs;
    with ``columns``, ``x`` (rows, k) holds only those inputs (see :mod:`purenet._engine.packing`).

    ``masks``, if any, are the block's rows of the batch's dropout masks (see
    :func:`purenet.reference.dropout_masks`), one per hidden layer.

    Returns ``(inputs, pre, post, logits_t)``: the input of every layer (``x`` first), the
    pre-activations and activations (before dropout) of the hidden layers, and the logits
    transposed (n_out, rows).
    """
    inputs, pre, post = [x], [], []
    activation = layers.params.activation
    for i in range(len(layers.params.layers) - 1):
        z = layers.affine(i, inputs[-1], columns if i == 0 else None)
        a = activate(z, activation)
        pre.append(z)
        post.append(a)
        inputs.append(a * masks[i] if masks else a)
    first_is_last = len(layers.params.layers) == 1
    return inputs, pre, post, layers.logits_t(inputs[-1], columns if first_is_last else None)


def forward(
    params: Params, x: np.ndarray, block_rows: int | None = None, workers: int | None = None
) -> np.ndarray:
    """Logits of shape (m, n_out) for inputs ``x`` of shape (m, n_in).

    Computed block by block exactly as :func:`evaluate` and :func:`value_and_grads`
    compute them, so all three see the same logits, bit for bit.
    """
    layers = _Layers.prepare(params, len(x), block_rows, workers)

    def block_logits(rows: slice) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            xb, columns = _dense_block(layers, x, rows)
            return _trace(layers, xb, columns=columns)[-1]

    parts = blocks.map_blocks(block_logits, layers.plan)
    if not parts:
        return np.empty((0, params.layers[-1].w.shape[1]), params.layers[-1].w.dtype)
    return np.ascontiguousarray(np.concatenate(parts, axis=1).T)


def _output_terms(
    logits_t: np.ndarray, y: np.ndarray, grad_scale: float | None = None
) -> tuple[float, int, np.ndarray | None]:
    """Summed cross-entropy, number of correct argmaxes and, if ``grad_scale`` is given,
    ``grad_scale * (softmax(logits) - onehot(y))`` transposed: shape (k, m).

    ``logits_t`` is the logits transposed, shape (k, m): a fresh array, which this
    function overwrites (the gradient is returned in its place). In this layout the
    reductions across the k classes of every sample (the max, the sum of exponentials)
    are element-wise operations between k long rows, which NumPy runs far faster than m
    reductions over rows of length k. Each sample's loss is ``log(sum(exp(s))) -
    s[label]`` with ``s = logits - max(logits)`` (a stable log-softmax); the per-sample
    losses are added in float64.
    """
    logits_t = np.ascontiguousarray(logits_t)  # (already is): ravel() below must be a view
    m = logits_t.shape[1]
    top = logits_t.max(axis=0)
    finite = bool(np.isfinite(top).all())
    if not finite:  # NaN or infinite logits: argmax decides, before they are shifted
        correct = int(np.count_nonzero(logits_t.argmax(axis=0) == y))
    shifted = logits_t
    shifted -= top
    # where each sample's label sits in shifted.ravel()
    label_at = y.astype(np.intp) * m + np.arange(m)
    label_shifted = shifted.ravel().take(label_at)
    if finite:
        correct = _correct(shifted, label_shifted, y)
    exps = np.exp(shifted, out=shifted)
    totals = exps.sum(axis=0)
    loss_sum = float((np.log(totals) - label_shifted).sum(dtype=np.float64))
    if grad_scale is None:
        return loss_sum, correct, None
    exps *= grad_scale / totals  # softmax, already divided by the batch size
    exps.ravel()[label_at] -= grad_scale
    return loss_sum, correct, exps


def _correct(shifted: np.ndarray, label_shifted: np.ndarray, y: np.ndarray) -> int:
    """How many samples ``argmax`` over the classes gets right, given finite logits minus
    their maximum, ``shifted`` (k, m): a label is right where its entry is 0, unless an
    earlier class ties with it (argmax takes the first maximum); when there are ties,
    argmax itself decides."""
    if np.count_nonzero(shifted == 0) == shifted.shape[1]:  # one maximum per sample
        return int(np.count_nonzero(label_shifted == 0))
    return int(np.count_nonzero(shifted.argmax(axis=0) == y))


Batch = PackedBatch | tuple[np.ndarray, np.ndarray]
"""Inputs and labels: a pair ``(x (m, n_in), y (m,))`` or a :class:`PackedBatch`."""

# One block of a batch: a function that gives its rows of x and the columns of x they hold
# (None: all), and the block's labels.
_BlockInput = tuple[Callable[[], tuple[np.ndarray, np.ndarray | None]], np.ndarray]


def _prepare(params: Params, batch: Batch, block_rows: int | None, workers: int | None):
    """The layers ready for a pass over ``batch``; a packed batch brings its own blocks
    (``block_rows`` does not apply to it)."""
    if isinstance(batch, PackedBatch):
        n_in = params.layers[0].w.shape[0]
        if batch.n_in != n_in:
            raise ValueError(f"a batch packed with {batch.n_in} inputs, for a network of {n_in}")
        block_rows = len(batch.x[0]) if batch.x else None
        return _Layers.prepare(params, batch.m, block_rows, workers)
    return _Layers.prepare(params, len(batch[1]), block_rows, workers)


def _block_inputs(layers: _Layers, batch: Batch) -> list[_BlockInput]:
    """The blocks of ``batch`` (see :data:`_BlockInput`). A packed block is copied when
    the first layer is tiled, as a dense one is (see :func:`purenet._engine.blocks.block_rows_of`).
    A dense block whose first layer is wide drops its blank columns
    (:func:`purenet._engine.packing.drop_blank_columns`): there the products with x dominate, and
    a third of the columns of a random batch of 128 MNIST images are 0."""
    if isinstance(batch, PackedBatch):
        copy = layers.plan.tiles[0] is not None
        return [
            (functools.partial(_packed_block, xb, columns, copy), yb)
            for xb, columns, yb in zip(batch.x, batch.columns, batch.y, strict=True)
        ]
    x, y = batch
    return [
        (functools.partial(_dense_block, layers, x, rows), y[rows]) for rows in layers.plan.blocks
    ]


def _packed_block(xb: np.ndarray, columns: np.ndarray, copy: bool) -> tuple[np.ndarray, np.ndarray]:
    return (np.array(xb) if copy else xb), columns


def _dense_block(
    layers: _Layers, x: np.ndarray, rows: slice
) -> tuple[np.ndarray, np.ndarray | None]:
    block = blocks.block_rows_of(x, rows, layers.plan)
    return drop_blank_columns(block) if layers.plan.wide[0] else (block, None)


def _metric_tasks(layers: _Layers, batch: Batch) -> list:
    """One task per block: its summed loss and number of correct answers."""

    def block_terms(load_block: Callable, y: np.ndarray) -> tuple[float, int]:
        with np.errstate(over="ignore", invalid="ignore"):
            xb, columns = load_block()
            logits_t = _trace(layers, xb, columns=columns)[-1]
            loss_sum, correct, _ = _output_terms(logits_t, y)
        return loss_sum, correct

    return [functools.partial(block_terms, *block) for block in _block_inputs(layers, batch)]


def _metrics_of(terms: list[tuple[float, int]], m: int) -> Metrics:
    """The blocks' sums, added in block order, as mean loss and accuracy over m samples."""
    loss_sum, correct = 0.0, 0
    for block_loss, block_correct in terms:
        loss_sum += block_loss
        correct += block_correct
    return Metrics(loss_sum / m, correct / m)


def evaluate(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    block_rows: int | None = None,
    workers: int | None = None,
) -> Metrics:
    """Mean loss and accuracy of ``params`` on ``x`` (m, n_in) with labels ``y`` (m,).

    Computed block by block exactly as :func:`value_and_grads` computes its metrics, so
    the two agree bit for bit on the same params and data.
    """
    return metrics_of(params, [(x, y)], block_rows, workers)[0]


def metrics_of(
    params: Params,
    batches: Sequence[Batch],
    block_rows: int | None = None,
    workers: int | None = None,
) -> tuple[Metrics, ...]:
    """The metrics of ``params`` on each batch (a pair ``(x, y)`` or a packed batch), in
    one parallel pass; ``evaluate(params, x, y)`` is ``metrics_of(params, [(x, y)])[0]``.
    ``block_rows`` applies to the pairs; a packed batch keeps the blocks it was packed in.
    """
    tasks, spans, threads = _batch_metric_tasks(params, batches, block_rows, workers)
    return _metrics_by_span(run_tasks(tasks, threads), spans, batches)


def _batch_metric_tasks(
    params: Params,
    batches: Sequence[Batch],
    block_rows: int | None,
    workers: int | None,
    first: int = 0,
) -> tuple[list, list[slice], int]:
    """The metric tasks of all ``batches`` (one per block), each batch's span of them
    counted from task number ``first``, and the most threads any batch may use."""
    tasks: list = []
    spans, threads = [], 1
    for batch in batches:
        layers = _prepare(params, batch, block_rows, workers)
        block_tasks = _metric_tasks(layers, batch)
        start = first + len(tasks)
        spans.append(slice(start, start + len(block_tasks)))
        tasks += block_tasks
        threads = max(threads, layers.plan.workers)
    return tasks, spans, threads


def _metrics_by_span(
    results: list, spans: list[slice], batches: Sequence[Batch]
) -> tuple[Metrics, ...]:
    return tuple(
        _metrics_of(results[span], _size(batch)) for span, batch in zip(spans, batches, strict=True)
    )


def _size(batch: Batch) -> int:
    return batch.m if isinstance(batch, PackedBatch) else len(batch[1])


def loss(params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the network on ``x`` (m, n_in) with labels ``y`` (m,)."""
    return evaluate(params, x, y).loss


def _column_sums(dz: np.ndarray) -> np.ndarray:
    """``dz.sum(axis=0)`` for dz (rows, n), as a vector-matrix product: for narrow
    layers NumPy's reduction over rows is several times slower than BLAS."""
    return np.ones(len(dz), dz.dtype) @ dz


@attrs.frozen(eq=False)
class _RowsOf:
    """A weight gradient that is zero outside some rows, as the first layer's is for a
    block without some input columns: ``values`` (len(rows), n_out) at ``rows`` of an
    (n_in, n_out) gradient."""

    values: np.ndarray
    rows: np.ndarray
    n_in: int

    def dense(self) -> np.ndarray:
        full = np.zeros((self.n_in, self.values.shape[1]), self.values.dtype)
        full[self.rows] = self.values
        return full


def _weight_grad(
    layers: _Layers, i: int, a: np.ndarray, dz: np.ndarray, columns: np.ndarray | None
) -> np.ndarray | _RowsOf:
    """Layer i's ``a.T @ dz``, shape (n_in, n_out); with ``columns``, ``a`` (rows, k) holds
    only those inputs and the gradient is zero in the other rows (kept sparse: the blocks'
    sums add it into its rows only)."""
    plan = layers.plan
    if plan.wide[i]:
        g = layers.wide_product(a.T, dz)
    else:
        g = blocks.tiled_weight_grad(a, dz, plan.tiles[i])
    n_in = layers.params.layers[i].w.shape[0]
    return g if columns is None else _RowsOf(g, columns, n_in)


def _block_sums(
    layers: _Layers,
    x: np.ndarray,
    y: np.ndarray,
    m_total: int,
    masks: Sequence[np.ndarray] = (),
    columns: np.ndarray | None = None,
) -> tuple[float, int, list[tuple[np.ndarray, np.ndarray]]]:
    """Summed loss, correct count and gradient contributions of one block of rows.

    Backpropagation as in the reference, written for row-per-sample layout: with
    ``P = softmax(logits)`` and ``Y`` the one-hot labels, ``dZ_L = (P - Y) / m``; for each
    layer ``dW = A_prevᵀ dZ`` and ``db = sum of dZ over rows``; below a hidden layer
    ``dZ_prev = (dZ Wᵀ) * mask * act'(Z_prev)`` (the mask is dropout's, if any; for ReLU
    ``act'(z) = 1 if z > 0 else 0``). ``m`` is the size of the whole batch, so block
    contributions add up to the gradient. The output layer's ``dZ`` arrives transposed,
    (k, rows), from :func:`_output_terms`; BLAS takes transposed operands without copies.
    With ``columns``, ``x`` (rows, k) holds only those inputs (see :mod:`purenet._engine.packing`).
    """
    params = layers.params
    inputs, pre, post, logits_t = _trace(layers, x, masks, columns)
    loss_sum, correct, dz_t = _output_terms(logits_t, y, 1 / m_total)
    hidden = len(params.layers) - 1

    def weight_grad(i: int, dz: np.ndarray) -> np.ndarray | _RowsOf:
        return _weight_grad(layers, i, inputs[i], dz, columns if i == 0 else None)

    def input_grad(i: int, dz: np.ndarray) -> np.ndarray:  # dZ Wᵀ through layer i
        w = params.layers[i].w
        return layers.wide_product(dz, w.T) if layers.plan.wide[i] else dz @ w.T

    grads = [(weight_grad(hidden, dz_t.T), dz_t.sum(axis=1))]
    da = input_grad(hidden, dz_t.T) if hidden else None
    for i in range(hidden - 1, -1, -1):
        if masks:
            da *= masks[i]
        dz = np.multiply(da, _slope(pre[i], post[i], params.activation), out=da)
        grads.append((weight_grad(i, dz), _column_sums(dz)))
        if i > 0:
            da = input_grad(i, dz)
    return loss_sum, correct, grads[::-1]


def value_and_grads(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    dropout: float = 0.0,
    dropout_key: tuple[int, ...] | None = None,
    block_rows: int | None = None,
    workers: int | None = None,
) -> tuple[Metrics, Params]:
    """Metrics of ``params`` on (x, y) and the gradient of the mean loss, from one pass.

    The batch is processed in blocks of rows (see :mod:`purenet._engine.blocks`) and the blocks'
    sums are added in block order: the result is the full-batch gradient, exact up to the
    order of float additions, and a pure function of the arguments (same inputs, same
    bits, whatever the number of threads).

    Args:
        params: the network.
        x: inputs, shape (m, n_in), the dtype of ``params``.
        y: integer labels in [0, n_out), shape (m,).
        dropout: probability of dropping each hidden unit's output (0 = off).
        dropout_key: seeds the batch's dropout masks
            (:func:`purenet.reference.dropout_masks`, whatever the blocks); required when
            ``dropout > 0``.
        block_rows: rows per block (default: about 1,024, whole tiles). It decides the
            order of float additions, so it is part of what a result's bits depend on.
        workers: threads for the blocks (default: see :func:`purenet._engine.blocks.plan`).
            Never changes the result.

    Returns:
        ``(Metrics, grads)``: the metrics of this forward pass (equal to
        ``evaluate(params, x, y)`` bit for bit when dropout is off), and ``grads`` with
        the structure of ``params``.
    """
    if dropout > 0 and dropout_key is None:
        raise ValueError("dropout needs a dropout_key")
    layers = _Layers.prepare(params, len(y), block_rows, workers)
    tasks = _gradient_tasks(layers, (x, y), dropout, dropout_key)
    return _gradient_of(run_tasks(tasks, layers.plan.workers), len(y), params.activation)


def _gradient_tasks(
    layers: _Layers,
    batch: Batch,
    dropout: float = 0.0,
    dropout_key: tuple[int, ...] | None = None,
) -> list:
    """One task per block: its loss, correct count and gradient sums. Dropout's masks are
    drawn for the whole batch, so the blocks never change what is sampled."""
    m = _size(batch)
    masks = []
    if dropout > 0:
        if isinstance(batch, PackedBatch):
            raise ValueError("dropout needs a plain batch, not a packed one")
        widths = tuple(layer.w.shape[1] for layer in layers.params.layers[:-1])
        masks = dropout_masks(m, widths, dropout, dropout_key, layers.params.dtype)

    def block_sums(rows: slice, load_block: Callable, y: np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):
            xb, columns = load_block()
            block_masks = [mask[rows] for mask in masks]
            return _block_sums(layers, xb, y, m, block_masks, columns)

    inputs = _block_inputs(layers, batch)
    rows = layers.plan.blocks if masks else [slice(0)] * len(inputs)
    return [functools.partial(block_sums, r, *block) for r, block in zip(rows, inputs, strict=True)]


def _gradient_of(results: list, m: int, activation: Activation) -> tuple[Metrics, Params]:
    """The blocks' sums, added in block order: metrics and gradient of the mean loss."""
    loss_sum, correct, total = 0.0, 0, None
    for block_loss, block_correct, block_grads in results:
        loss_sum += block_loss
        correct += block_correct
        if total is None:  # fresh arrays: summed into in place below
            total = [(w.dense() if isinstance(w, _RowsOf) else w, b) for w, b in block_grads]
            continue
        for (w_sum, b_sum), (w, b) in zip(total, block_grads, strict=True):
            if isinstance(w, _RowsOf):
                w_sum[w.rows] += w.values  # the rows are distinct: no sample is added twice
            else:
                w_sum += w
            b_sum += b
    layers = tuple(
        Layer(frozen_result(np.ascontiguousarray(w)), frozen_result(b)) for w, b in total
    )
    return Metrics(loss_sum / m, correct / m), Params(layers, activation)


def value_grads_and_metrics(
    params: Params,
    train: Batch,
    others: Sequence[Batch] = (),
    block_rows: int | None = None,
    workers: int | None = None,
) -> tuple[Metrics, Params, tuple[Metrics, ...]]:
    """The metrics and gradient of the mean loss on ``train`` and the metrics on each of
    ``others``, in one parallel pass. Each batch is a pair ``(x, y)`` or a
    :class:`~purenet._engine.packing.PackedBatch`.

    For pairs this is ``value_and_grads(params, x, y)`` and ``evaluate(params, x_k,
    y_k)``, bit for bit. One pass instead of several saves a hand-off to the threads and
    lets the evaluation blocks fill the gradient's last ones.

    Returns:
        ``(metrics, grads, other_metrics)``, ``other_metrics`` in the order of ``others``.
    """
    layers = _prepare(params, train, block_rows, workers)
    tasks = _gradient_tasks(layers, train)
    n_train = len(tasks)
    held_out, spans, threads = _batch_metric_tasks(params, others, block_rows, workers, n_train)
    results = run_tasks(tasks + held_out, max(threads, layers.plan.workers))
    metrics, g = _gradient_of(results[:n_train], _size(train), params.activation)
    return metrics, g, _metrics_by_span(results, spans, others)


def grads(params: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradient of :func:`loss` with respect to every parameter array."""
    return value_and_grads(params, x, y)[1]
