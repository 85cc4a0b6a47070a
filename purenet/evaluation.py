"""Test-set diagnostics: the confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np

from purenet.network import forward
from purenet.params import Params


def predictions(params: Params, x: np.ndarray) -> np.ndarray:
    """Predicted class of each row of ``x`` (m, n_in): shape (m,), int64."""
    return forward(params, x).argmax(axis=1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of shape (n_classes, n_classes): row = true class, column = predicted."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Fraction of each true class predicted correctly, shape (n_classes,); NaN for a class
    with no samples."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / totals
