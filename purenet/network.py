"""The network as a library: forward pass, loss, metrics and gradients of a batch.

What these functions compute is defined, formula by formula, in :mod:`purenet.reference`
(read that first). They compute it with the fast engine in :mod:`purenet._engine`: the
batch cut into blocks and tiles on purenet's threads, blank input columns left out,
BLAS on one thread; the results equal the reference's up to the order of float
additions, and do not depend on the number of threads.

Layout: one sample per row. ``x`` is (m, n_in), ``y`` integer labels (m,), logits
(m, n_out). Training and test batches may also be :class:`purenet._engine.packing.PackedBatch`
(the full-batch fold packs its data once). Every function is pure.
"""

from __future__ import annotations

from purenet._engine.network import (
    Batch,
    evaluate,
    forward,
    grads,
    loss,
    metrics_of,
    value_and_grads,
    value_grads_and_metrics,
)
from purenet.reference import Metrics, cross_entropy, log_softmax, softmax

__all__ = [
    "Batch",
    "Metrics",
    "cross_entropy",
    "evaluate",
    "forward",
    "grads",
    "log_softmax",
    "loss",
    "metrics_of",
    "softmax",
    "value_and_grads",
    "value_grads_and_metrics",
]
