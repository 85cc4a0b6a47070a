"""Reading digits from pictures: prepare each as MNIST was made, then classify it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from purenet.network import forward, softmax
from purenet.params import Params


def class_probabilities(params: Params, x: np.ndarray) -> np.ndarray:
    """Softmax of the network's logits: shape (m, n_classes), rows summing to 1, for
    inputs ``x`` of shape (m, 784). Params that overflow (a diverged epoch) give rows of
    NaN, without NumPy's warnings: a caller that shows them checks
    (``purenet predict`` reports such an epoch's output as not a number)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return softmax(forward(params, x.astype(params.dtype, copy=False)))


def top_classes(probabilities: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The ``k`` most probable classes of one row (n_classes,), most probable first, as
    ``(class, probability)``; ties go to the smaller class."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(c), float(probabilities[c])) for c in order]


def describe(name: str, top: Sequence[tuple[int, float]]) -> str:
    """One line: the name, the predicted digit, and the top classes with percentages."""
    ranked = ", ".join(f"{digit}: {p:.1%}" for digit, p in top)
    return f"{name}: {top[0][0]}  ({ranked})"
