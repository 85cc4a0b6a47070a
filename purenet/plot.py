"""Figures from a run's history, with matplotlib's object API.

Functions here build and return a :class:`matplotlib.figure.Figure`; they never touch
pyplot's global state, so the caller decides whether to show or save it.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from purenet.atomic import atomic_save
from purenet.history import History

LOSS_COLOR = "red"
TRAIN_COLOR = "blue"
TEST_COLOR = "orange"


def training_figure(history: History, title: str = "purenet training") -> Figure:
    """The reference's figure: loss (red, left axis), train (blue) and test (orange)
    accuracy (right axis) against the epoch.
    """
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    loss_ax = fig.add_subplot()
    acc_ax = loss_ax.twinx()
    lines = loss_ax.plot(history.epoch, history.train_loss, color=LOSS_COLOR, label="loss (train)")
    lines += acc_ax.plot(
        history.epoch, history.train_acc, color=TRAIN_COLOR, label="train accuracy"
    )
    lines += acc_ax.plot(history.epoch, history.test_acc, color=TEST_COLOR, label="test accuracy")
    loss_ax.set_xlabel("epoch")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_ylabel("cross-entropy loss", color=LOSS_COLOR)
    loss_ax.tick_params(axis="y", colors=LOSS_COLOR)
    loss_ax.set_ylim(bottom=0)
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1)
    loss_ax.grid(alpha=0.3)
    if len(history):
        final = (
            f"epoch {history.epoch[-1]}: train {history.train_acc[-1]:.2%}, "
            f"test {history.test_acc[-1]:.2%}, loss {history.train_loss[-1]:.4f}"
        )
        title = f"{title}\n{final}"
    loss_ax.set_title(title)
    loss_ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return fig


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` atomically."""
    atomic_save(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=dpi))
