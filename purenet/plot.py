"""Figures from a run's history and params, with matplotlib's object API.

Functions here build and return a :class:`matplotlib.figure.Figure` (or draw into one
they are given); they never touch pyplot's global state, so the caller decides whether
to show or save it. Images are the MNIST layout: a row of 784 pixels is a 28x28 image
read row by row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

from purenet.atomic import atomic_save
from purenet.errors import write_failures
from purenet.evaluation import confusion_matrix, per_class_accuracy
from purenet.history import History
from purenet.params import Params
from purenet.predict import class_probabilities
from purenet.titles import figure_title, optimizer_words, rule_words  # noqa: F401  (0.6.0's names)
from purenet.train import DIVERGED_LOSS

LOSS_COLOR = "red"
TRAIN_COLOR = "blue"
TEST_COLOR = "orange"
VALID_COLOR = "green"  # only for runs that hold out a validation set
WEIGHTS_CMAP = "RdBu_r"  # positive weights red, negative blue, zero white
DIGIT_CMAP = "gray_r"  # dark ink on light paper
SIDE = 28

FIGURE_NAMES = ("training", "confusion", "per-class", "weights", "misclassified")


def best_epoch(history: History) -> tuple[int, float, str] | None:
    """The row with the best accuracy on held-out data, as ``(row index, accuracy,
    which)``: the validation set's when the history has one (``which`` is
    ``"validation"``), else the test set's (``"test"``); the earliest on ties; None for
    an empty history."""
    which = "validation" if np.isfinite(history.valid_acc).any() else "test"
    series = history.valid_acc if which == "validation" else history.test_acc
    if not len(series) or not np.isfinite(series).any():
        return None
    index = int(np.nanargmax(series))  # the first of equal maxima
    return index, float(series[index]), which


def _sound_top(losses: np.ndarray) -> float | None:
    """An upper limit for the loss axis from the finite losses below the divergence
    threshold (a diverged row's huge loss would flatten every other point)."""
    sound = losses[np.isfinite(losses) & (losses < DIVERGED_LOSS)]
    return 1.05 * float(sound.max()) if sound.size and sound.max() > 0 else None


def training_curves(loss_ax, history: History) -> list[tuple[Line2D, np.ndarray]]:
    """Draw the training curves on ``loss_ax`` and a twin axis: train loss (red) and test
    loss (red, dashed) on the left axis, train (blue) and test (orange) accuracy on the
    right axis, from 0 to 1, against the epoch; validation accuracy (green, dashed) too
    when the history has one. Returns each line with the series it shows, for redrawing a
    prefix of it. The caller places the legend (see :func:`curve_legend`)."""
    acc_ax = loss_ax.twinx()
    curves = [
        (loss_ax, history.train_loss, {"color": LOSS_COLOR, "label": "loss (train)"}),
        (
            loss_ax,
            history.test_loss,
            {"color": LOSS_COLOR, "linestyle": "--", "alpha": 0.7, "label": "loss (test)"},
        ),
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
    loss_ax.set_ylim(0, _sound_top(np.concatenate([history.train_loss, history.test_loss])))
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1)
    acc_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    loss_ax.grid(alpha=0.3)
    return lines


def error_curves(ax, history: History) -> list[Line2D]:
    """Draw the error rate (1 - accuracy) of train (blue), test (orange) and, if there is
    one, validation (green, dashed) on a log axis into ``ax``, where 10%, 1% and 0.1% are
    equally far apart: the differences that matter once accuracy is past 90%. An error of
    0 (every image right) is drawn at the bottom of the axis, half the smallest error
    drawn."""
    series = [
        ("train", history.train_acc, TRAIN_COLOR, "-"),
        ("test", history.test_acc, TEST_COLOR, "-"),
    ]
    if np.isfinite(history.valid_acc).any():
        series.append(("validation", history.valid_acc, VALID_COLOR, "--"))
    errors = {name: 1.0 - np.asarray(acc, dtype=np.float64) for name, acc, _, _ in series}
    positive = np.concatenate([e[np.isfinite(e) & (e > 0)] for e in errors.values()])
    floor = float(positive.min()) / 2 if positive.size else 1e-4
    lines = []
    for name, _, colour, style in series:
        clipped = np.where(errors[name] > 0, errors[name], floor)
        lines.append(
            ax.plot(history.epoch, clipped, color=colour, linestyle=style, label=f"{name} error")[0]
        )
    ax.set_yscale("log")
    top = max(1.0, float(np.nanmax(positive))) if positive.size else 1.0
    ax.set_ylim(floor, top)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.4g}%"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("error rate (log scale)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")
    return lines


def mark_best(axes, acc_ax, history: History) -> list[Line2D]:
    """Mark the epoch of :func:`best_epoch` with a dotted vertical line on each of
    ``axes`` and a star on its accuracy curve (on ``acc_ax``); returns the star, whose
    label says which set chose it (none, for an empty history)."""
    best = best_epoch(history)
    if best is None:
        return []
    index, accuracy, which = best
    epoch = int(history.epoch[index])
    for ax in axes:
        ax.axvline(epoch, color="0.35", linestyle=":", linewidth=1)
    colour = VALID_COLOR if which == "validation" else TEST_COLOR
    if which == "validation":
        label = f"best validation accuracy: epoch {epoch}, {accuracy:.2%}"
    else:  # nothing is chosen on the test set: say it is only shown
        label = f"highest test accuracy (no validation set): epoch {epoch}, {accuracy:.2%}"
    (star,) = acc_ax.plot(
        [epoch],
        [accuracy],
        marker="*",
        markersize=12,
        linestyle="none",
        color=colour,
        markeredgecolor="black",
        label=label,
    )
    return [star]


def draw_training(fig: Figure, history: History, title: str = "purenet training") -> None:
    """Draw the training figure into ``fig``: on top, the reference's curves (see
    :func:`training_curves`); below, the error rates on a log axis (see
    :func:`error_curves`); the best held-out epoch marked (:func:`mark_best`); the legend
    below both, off the curves; titled with the last epoch's numbers."""
    loss_ax, error_ax = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]}, squeeze=True
    )
    lines = [line for line, _ in training_curves(loss_ax, history)]
    loss_ax.set_xlabel("")
    loss_ax.tick_params(axis="x", labelbottom=False)
    acc_ax = lines[-1].axes
    error_curves(error_ax, history)
    lines += mark_best([loss_ax, error_ax], acc_ax, history)
    fig.legend(
        lines,
        [line.get_label() for line in lines],
        loc="outside lower center",
        ncols=3,
        fontsize=8,
        frameon=False,
    )
    if len(history):
        final = (
            f"epoch {history.epoch[-1]}: train {history.train_acc[-1]:.2%}, "
            f"test {history.test_acc[-1]:.2%}, loss {history.train_loss[-1]:.4f}"
        )
        title = f"{title}\n{final}"
    fig.suptitle(title, fontsize=10)


def training_figure(history: History, title: str = "purenet training") -> Figure:
    """The reference's figure: loss (red, left axis), train (blue) and test (orange)
    accuracy (right axis) against the epoch, with the test loss (red, dashed), and below
    it the error rates on a log axis.
    """
    fig = Figure(figsize=(8, 6.4), layout="constrained")
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
    """Write ``fig`` as PNG to ``path`` atomically; a failure raises
    :class:`purenet.errors.WriteError`."""
    with write_failures(path):
        atomic_save(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=dpi))


def _as_shown(picture: np.ndarray) -> tuple[np.ndarray, dict]:
    """A picture as read (see :func:`purenet.images.read_image`) ready for ``imshow``:
    its values in [0, 1] and the colour map a grey one needs."""
    picture = np.asarray(picture)
    values = (
        picture / np.iinfo(picture.dtype).max
        if np.issubdtype(picture.dtype, np.integer)
        else np.clip(picture, 0, 1)
    )
    if values.ndim == 3 and values.shape[2] == 2:  # grey + alpha: show the grey
        values = values[..., 0]
    if values.ndim == 2:
        return values, {"cmap": "gray", "vmin": 0, "vmax": 1}
    return values, {}


def inputs_figure(
    names: Sequence[str],
    pictures: Sequence[np.ndarray],
    inputs: np.ndarray,
    probabilities: np.ndarray,
    notes: Sequence[str] | None = None,
    title: str = "purenet predict: your picture, and what the network sees",
) -> Figure:
    """Each picture as read beside (below) the 28x28 input it was prepared into, captioned
    with what the network read.

    Args:
        names: a caption per picture (its file name).
        pictures: the pictures as read, each (h, w), (h, w, 2), (h, w, 3) or (h, w, 4).
        inputs: the prepared inputs, shape (n, 784), pixels in [0, 1].
        probabilities: the network's class probabilities for them, shape (n, k).
        notes: a warning per picture, or "" for none (written in dark red under it).
    """
    n = len(names)
    columns = max(1, min(6, n))
    blocks = max(1, math.ceil(n / columns))
    fig = Figure(figsize=(2.4 * columns + 0.2, 4.6 * blocks + 0.5), layout="constrained")
    axes = fig.subplots(2 * blocks, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (name, picture) in enumerate(zip(names, pictures, strict=True)):
        top, bottom = (
            axes[2 * (i // columns), i % columns],
            axes[2 * (i // columns) + 1, i % columns],
        )
        values, style = _as_shown(picture)
        top.imshow(values, **style)
        top.set_title(f"{name}\n{picture.shape[1]}x{picture.shape[0]} pixels", fontsize=9)
        top.set_axis_on()
        top.set_xticks([])
        top.set_yticks([])
        bottom.imshow(inputs[i].reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1)
        guess = int(np.argmax(probabilities[i]))
        note = notes[i] if notes else ""
        bottom.set_title(
            f"prepared 28x28: read as {guess} ({probabilities[i][guess]:.1%})"
            + (f"\n{note}" if note else ""),
            fontsize=9,
            color="darkred" if note else "black",
        )
    fig.suptitle(title, fontsize=11)
    return fig


def distortions_figure(
    rows: Sequence[tuple[str, np.ndarray]], title: str = "training images, distorted"
) -> Figure:
    """A grid of digits: one row per ``(label, images)`` pair, images (n, 784) in [0, 1],
    the label on the row's left. Every row shows the same number of images (the first
    row's), e.g. some training digits, then the same digits as distortions change them.
    """
    n = len(rows[0][1])
    fig = Figure(figsize=(0.9 * n + 1.6, 0.95 * len(rows) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(SIDE, SIDE), cmap=DIGIT_CMAP, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig
