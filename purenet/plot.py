"""Figures from a run's history and params, with matplotlib's object API.

Functions here build and return a :class:`matplotlib.figure.Figure` (or draw into one
they are given); they never touch pyplot's global state, so the caller decides whether
to show or save it. Images are the MNIST layout: a row of 784 pixels is a 28x28 image
read row by row.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

from purenet.atomic import atomic_save
from purenet.evaluation import confusion_matrix, per_class_accuracy
from purenet.history import History
from purenet.params import Params
from purenet.predict import class_probabilities

if TYPE_CHECKING:
    from purenet.config import Config

LOSS_COLOR = "red"
TRAIN_COLOR = "blue"
TEST_COLOR = "orange"
VALID_COLOR = "green"  # only for runs that hold out a validation set
WEIGHTS_CMAP = "RdBu_r"  # positive weights red, negative blue, zero white
DIGIT_CMAP = "gray_r"  # dark ink on light paper
SIDE = 28

FIGURE_NAMES = ("training", "confusion", "per-class", "weights", "misclassified")


def figure_title(config: Config) -> str:
    """The title that names a run's figures: its layer sizes, learning rate, split and
    seed (``purenet 784-10, lr 0.5, reference split, seed 0``)."""
    return (
        f"purenet {'-'.join(map(str, config.sizes))}, lr {config.lr}, "
        f"{config.split.value} split, seed {config.seed}"
    )


def training_curves(loss_ax, history: History) -> list[tuple[Line2D, np.ndarray]]:
    """Draw the training curves on ``loss_ax`` and a twin axis: loss (red, left axis),
    train (blue) and test (orange) accuracy (right axis) against the epoch; validation
    accuracy (green, dashed) too when the history has one. Returns each line with the
    series it shows, for redrawing a prefix of it."""
    acc_ax = loss_ax.twinx()
    curves = [
        (loss_ax, history.train_loss, {"color": LOSS_COLOR, "label": "loss (train)"}),
        (acc_ax, history.train_acc, {"color": TRAIN_COLOR, "label": "train accuracy"}),
        (acc_ax, history.test_acc, {"color": TEST_COLOR, "label": "test accuracy"}),
    ]
    if np.isfinite(history.valid_acc).any():
        style = {"color": VALID_COLOR, "linestyle": "--", "label": "validation accuracy"}
        curves.append((acc_ax, history.valid_acc, style))
    lines = [(ax.plot(history.epoch, series, **style)[0], series) for ax, series, style in curves]
    loss_ax.set_xlabel("epoch")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_ylabel("cross-entropy loss", color=LOSS_COLOR)
    loss_ax.tick_params(axis="y", colors=LOSS_COLOR)
    loss_ax.set_ylim(bottom=0)
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1)
    loss_ax.grid(alpha=0.3)
    loss_ax.legend(
        [line for line, _ in lines], [line.get_label() for line, _ in lines], loc="center right"
    )
    return lines


def draw_training(fig: Figure, history: History, title: str = "purenet training") -> None:
    """Draw the training curves (see :func:`training_curves`) into ``fig``, titled with
    the last epoch's numbers."""
    loss_ax = fig.add_subplot()
    training_curves(loss_ax, history)
    if len(history):
        final = (
            f"epoch {history.epoch[-1]}: train {history.train_acc[-1]:.2%}, "
            f"test {history.test_acc[-1]:.2%}, loss {history.train_loss[-1]:.4f}"
        )
        title = f"{title}\n{final}"
    loss_ax.set_title(title)


def training_figure(history: History, title: str = "purenet training") -> Figure:
    """The reference's figure: loss (red, left axis), train (blue) and test (orange)
    accuracy (right axis) against the epoch.
    """
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    draw_training(fig, history, title)
    return fig


def confusion_figure(confusion: np.ndarray, title: str = "confusion matrix") -> Figure:
    """The confusion matrix (k, k) of counts as a heat map with every count written in.

    Rows are the true digit, columns the predicted one. The image holds the counts
    themselves; a square-root colour scale keeps the few mistakes visible next to the
    large diagonal.
    """
    confusion = np.asarray(confusion)
    k = len(confusion)
    total, correct = int(confusion.sum()), int(np.trace(confusion))
    fig = Figure(figsize=(6.4, 5.8), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        confusion, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=max(1, int(confusion.max())))
    )
    dark = 0.45 * confusion.max()
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            colour = "white" if count > dark else "black"
            ax.text(j, i, f"{count}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    share = f" ({correct / total:.2%})" if total else ""
    ax.set_title(f"{title}\n{correct:,} of {total:,} test images right{share}", fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    return fig


def per_class_figure(confusion: np.ndarray, title: str = "test accuracy per digit") -> Figure:
    """Bars of the test accuracy of each true digit, from the confusion matrix (k, k),
    with the overall accuracy as a dashed line. Bar ``i`` has length
    ``confusion[i, i] / confusion[i].sum()``."""
    confusion = np.asarray(confusion)
    accuracy = per_class_accuracy(confusion)
    counts = confusion.sum(axis=1)
    total = counts.sum()
    digits = np.arange(len(accuracy))
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.barh(digits, np.nan_to_num(accuracy), color=TEST_COLOR, height=0.7)
    for bar, acc, right, count in zip(bars, accuracy, np.diag(confusion), counts, strict=True):
        label = "no images" if np.isnan(acc) else f"{acc:.1%}  ({right} of {count})"
        ax.text(0.015, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=9)
    if total:
        overall = np.trace(confusion) / total
        ax.axvline(overall, color="black", linestyle="--", linewidth=1)
        ax.annotate(
            f"all digits {overall:.2%}",
            (overall, 1),
            xycoords=("data", "axes fraction"),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.set_yticks(digits)
    ax.invert_yaxis()  # digit 0 on top
    ax.set_ylabel("true digit")
    ax.set_xlabel("test accuracy")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, 1.02)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=11, pad=16)
    return fig


def grid_shape(n: int, max_columns: int = 10) -> tuple[int, int]:
    """Rows and columns of a near-square grid for ``n`` tiles, at most ``max_columns`` wide
    (10 tiles: 2 x 5; 16: 4 x 4; 40: 4 x 10)."""
    if n <= 0:
        return 0, 0
    columns = min(max_columns, math.ceil(math.sqrt(n)))
    if n <= 2 * max_columns and n % 2 == 0:
        columns = max(columns, n // 2)  # two tidy rows for small even counts
    return math.ceil(n / columns), columns


def weight_limit(w: np.ndarray) -> float:
    """A symmetric colour limit for weights: the 99.5th percentile of |w| (not the max,
    so a few large weights do not wash out the rest)."""
    limit = float(np.percentile(np.abs(w), 99.5)) if w.size else 0.0
    return limit if limit > 0 else 1.0


def weight_mosaic(w: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """The columns of ``w`` (784, n_units) as 28x28 tiles laid out row by row in a grid
    ``columns`` wide, ``gap`` pixels apart; gaps and unused cells are NaN.

    Returns:
        Shape (rows * (28 + gap) - gap, columns * (28 + gap) - gap), float64, where
        ``rows = ceil(n_units / columns)``; unit ``u`` is the tile at row ``u // columns``,
        column ``u % columns``.
    """
    n_units = w.shape[1]
    rows = math.ceil(n_units / columns)
    step = SIDE + gap
    mosaic = np.full((rows * step - gap, columns * step - gap), np.nan)
    for unit in range(n_units):
        top, left = (unit // columns) * step, (unit % columns) * step
        mosaic[top : top + SIDE, left : left + SIDE] = w[:, unit].reshape(SIDE, SIDE)
    return mosaic


def draw_weights(ax, w: np.ndarray, limit: float, columns: int, gap: int = 2, labels=False):
    """Draw the first layer's weights (784, n_units) into ``ax`` as a
    :func:`weight_mosaic`, from -limit (blue) to +limit (red), white gaps; returns the
    ``AxesImage``. With ``labels``, each tile is numbered above (give it a ``gap`` of
    about 8 pixels to fit)."""
    cmap = colormaps[WEIGHTS_CMAP].with_extremes(bad="white")
    image = ax.imshow(
        weight_mosaic(w, columns, gap),
        cmap=cmap,
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
    )
    ax.set_axis_off()
    if labels:
        step = SIDE + gap
        for unit in range(w.shape[1]):
            ax.text(
                (unit % columns) * step + SIDE / 2 - 0.5,
                (unit // columns) * step - 1,
                f"unit {unit}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    return image


def weights_figure(w: np.ndarray, title: str = "first-layer weights") -> Figure:
    """The first layer's weights (784, n_units) as a grid of 28x28 images, one per hidden
    unit, on one shared colour scale: red pixels push the unit up, blue ones down."""
    n_units = w.shape[1]
    rows, columns = grid_shape(n_units, max_columns=max(10, math.ceil(math.sqrt(n_units))))
    tile = 1.25 if n_units <= 40 else max(0.35, 12 / columns)
    fig = Figure(figsize=(tile * columns + 1.4, tile * rows + 1.0), layout="constrained")
    ax = fig.add_subplot()
    labels = n_units <= 40
    image = draw_weights(ax, w, weight_limit(w), columns, gap=8 if labels else 2, labels=labels)
    fig.colorbar(image, ax=ax, shrink=0.9, label="weight")
    fig.suptitle(
        f"{title}\n{n_units} units; each tile is one unit's weight on every pixel", fontsize=11
    )
    return fig


def misclassified(y_true: np.ndarray, probabilities: np.ndarray, limit: int = 40) -> np.ndarray:
    """Indices (n,) of wrongly classified samples, the most confident mistakes first.

    Args:
        y_true: labels, shape (m,).
        probabilities: predicted class probabilities, shape (m, k).
        limit: at most this many indices.
    """
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def misclassified_figure(
    x: np.ndarray,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    limit: int = 40,
    title: str = "misclassified test digits",
) -> Figure:
    """A gallery of wrongly classified digits, the most confident mistakes first, each
    captioned with its true label, the prediction and the probability given to it.

    Args:
        x: images, shape (m, 784), pixels in [0, 1].
        y_true: labels, shape (m,).
        probabilities: predicted class probabilities, shape (m, k).
        limit: at most this many digits.
    """
    picked = misclassified(y_true, probabilities, limit)
    n_wrong = int(np.count_nonzero(probabilities.argmax(axis=1) != y_true))
    columns = min(10, max(1, len(picked)))
    rows = max(1, math.ceil(len(picked) / columns))
    fig = Figure(figsize=(1.15 * columns + 0.4, 1.35 * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, index in zip(axes.flat, [*picked, *[None] * (rows * columns)], strict=False):
        ax.set_axis_off()
        if index is None:
            continue
        guess = int(probabilities[index].argmax())
        ax.imshow(x[index].reshape(SIDE, SIDE), cmap=DIGIT_CMAP, vmin=0, vmax=1)
        ax.set_title(
            f"{int(y_true[index])} read as {guess}\n{probabilities[index, guess]:.0%}",
            fontsize=8,
            color="darkred",
        )
    shown = f"the {len(picked)} most confident" if n_wrong > len(picked) else "all"
    if n_wrong == 0:
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(
        f"{title}\n{shown} of {n_wrong:,} mistakes; caption: true label, prediction, "
        "the probability it was given",
        fontsize=11,
    )
    return fig


def epoch_figures(
    history: History,
    params: Params,
    x_test: np.ndarray,
    y_test: np.ndarray,
    title: str = "purenet",
) -> dict[str, Figure]:
    """Every figure of one epoch, keyed by :data:`FIGURE_NAMES`.

    Args:
        history: the run's rows up to and including this epoch.
        params: the network at this epoch.
        x_test: test images, shape (m, 784).
        y_test: test labels, shape (m,).
        title: names the run; the epoch is added.
    """
    probabilities = class_probabilities(params, x_test)
    n_classes = probabilities.shape[1]
    confusion = confusion_matrix(y_test, probabilities.argmax(axis=1), n_classes)
    epoch = int(history.epoch[-1]) if len(history) else 0
    w = np.asarray(params.layers[0].w)
    return {
        "training": training_figure(history, title),
        "confusion": confusion_figure(confusion, f"Confusion matrix at epoch {epoch}\n{title}"),
        "per-class": per_class_figure(
            confusion, f"Test accuracy per digit at epoch {epoch}\n{title}"
        ),
        "weights": weights_figure(w, f"First-layer weights at epoch {epoch}\n{title}"),
        "misclassified": misclassified_figure(
            x_test,
            y_test,
            probabilities,
            title=f"Misclassified test digits at epoch {epoch}\n{title}",
        ),
    }


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` atomically."""
    atomic_save(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=dpi))
