"""The comparison figure: several runs' curves overlaid, each named by what sets it apart.

Top: the error rate (1 - accuracy) on a log axis, as in a run's own figure (see
:func:`purenet.plot.error_curves`): between runs that all pass 85%, the differences that
matter are 10% against 8% errors, which a linear accuracy axis squeezes into a sliver.
Bottom: the cross-entropy loss, on a log axis too, for the same reason. Test curves are
solid, train curves dashed, in one colour per run. Only a run's sound epochs are drawn (a
diverged epoch's loss would flatten every other curve); its last one is marked with a
cross. Runs of any length share the epoch axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from purenet.atomic import atomic_save
from purenet.compare import (
    FIGURE_FORMATS,
    Entry,
    Summary,
    caveats,
    common_words,
    differing_settings,
    summarise,
)
from purenet.errors import PurenetError, write_failures
from purenet.history import History
from purenet.runs import Run, last_sound_epoch

TEST_STYLE, TRAIN_STYLE = "-", "--"
FORMATS = FIGURE_FORMATS
LEGEND_CHARACTERS = 140  # about what fits across the figure at the legend's font size


def run_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours: matplotlib's ``tab10`` up to ten runs, ``tab20`` up to
    twenty, else evenly spaced on ``turbo``."""
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def _sound_history(run: Run) -> History:
    """The run's rows up to its last sound epoch (empty if it has none, or none can be
    read)."""
    try:
        rows = run.rows(tolerate_cut_last_line=True)
    except PurenetError:
        return History.from_rows([])
    sound = last_sound_epoch(rows)
    return History.from_rows([] if sound is None else rows[: sound + 1])


def legend_text(summary: Summary, single: bool) -> str:
    """A run's legend entry: its label (or its name when nothing tells it apart), its
    state when it is not simply finished, and its final test accuracy
    (``lr=0.1 (interrupted at 40/300): test 85.12%``, ``lr=0.5 (running, no epoch yet)``)."""
    text = summary.name if single or not summary.label else summary.label
    if summary.status != "finished":
        if summary.epochs_done is None:
            text += f" ({summary.status}, no epoch yet)"
        elif summary.status == "diverged":
            text += f" (diverged at epoch {summary.epochs_done + 1})"
        else:
            text += f" ({summary.status} at {summary.epochs_done}/{summary.epochs_planned})"
    if summary.final_test_acc is not None:
        text += f": test {summary.final_test_acc:.2%}"
    return text


def legend_columns(texts: Sequence[str], width: int = LEGEND_CHARACTERS) -> int:
    """As many legend columns as entries of the longest text fit side by side in
    ``width`` characters (one at least, five at most)."""
    longest = max(map(len, texts), default=1) + 6  # the line sample and the gap
    return max(1, min(len(texts), 5, width // longest))


def _log_axis(ax, percent: bool) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    shown = (lambda v, _: f"{100 * v:.4g}%") if percent else (lambda v, _: f"{v:.4g}")
    ax.yaxis.set_major_formatter(FuncFormatter(shown))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")


def compare_figure(entries: Sequence[Entry], title: str = "purenet compare") -> Figure:
    """The test (solid) and train (dashed) error rate and loss of every readable run in
    ``entries`` against the epoch, one colour per run, each labelled in the legend by the
    settings that differ between the runs (:func:`purenet.compare.labels`), with the
    settings they share and any warning (different splits) in the title.

    Each run's lines carry ``gid`` ``"<run name>:<test|train>:<error|loss>"``.
    """
    runs = [e for e in entries if isinstance(e, Run)]
    summaries = {id(r): s for r, s in zip(runs, summarise(runs), strict=True)}
    common, _ = differing_settings([r.config for r in runs])
    fig = Figure(figsize=(9, 7.6), layout="constrained")
    error_ax, loss_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    handles: list[Line2D] = []
    lowest = 1.0
    for run, colour in zip(runs, run_colours(len(runs)), strict=True):
        history = _sound_history(run)
        summary = summaries[id(run)]
        text = legend_text(summary, single=len(runs) == 1)
        for which, style in (("test", TEST_STYLE), ("train", TRAIN_STYLE)):
            error = 1.0 - getattr(history, f"{which}_acc")
            positive = error[np.isfinite(error) & (error > 0)]
            lowest = min(lowest, float(positive.min())) if positive.size else lowest
            error_ax.plot(
                history.epoch, error, color=colour, linestyle=style, gid=f"{run.name}:{which}:error"
            )
            loss_ax.plot(
                history.epoch,
                getattr(history, f"{which}_loss"),
                color=colour,
                linestyle=style,
                gid=f"{run.name}:{which}:loss",
            )
        if summary.status in ("diverged", "interrupted", "running") and len(history):
            for ax, series in ((error_ax, 1.0 - history.test_acc), (loss_ax, history.test_loss)):
                ax.plot(history.epoch[-1:], series[-1:], marker="x", color=colour, linestyle="none")
        handles.append(Line2D([], [], color=colour, label=text))
    # an error of 0 (every image right) sits on the axis' floor, as in a run's own figure
    floor = lowest / 2
    for line in error_ax.get_lines():
        y = np.asarray(line.get_ydata(), dtype=np.float64)
        line.set_ydata(np.where(y > 0, y, floor))
    _log_axis(error_ax, percent=True)
    error_ax.set_ylim(top=1.0)
    error_ax.set_ylabel("error rate, 1 - accuracy (log)")
    _log_axis(loss_ax, percent=False)
    loss_ax.set_ylabel("cross-entropy loss (log)")
    loss_ax.set_xlabel("epoch")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles += [
        Line2D([], [], color="0.3", linestyle=TEST_STYLE, label="test"),
        Line2D([], [], color="0.3", linestyle=TRAIN_STYLE, label="train"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=legend_columns([h.get_label() for h in handles]),
        fontsize=8,
        frameon=False,
    )
    words = common_words(common)
    heading = f"{title}: {len(runs)} run{'s' if len(runs) != 1 else ''}"
    if words:
        heading += f", all {words}" if len(runs) > 1 else f", {words}"
    lines = [heading]
    lines += [f"warning: {w}" for w in caveats(list(summaries.values()), runs)]
    fig.suptitle("\n".join(lines), fontsize=10)
    return fig


def figure_format(path: Path) -> str:
    """The image format of ``path`` from its suffix (``.png``, ``.svg`` or ``.pdf``).

    Raises:
        PurenetError: for any other suffix.
    """
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise PurenetError(f"{path}: give a file name ending in {', '.join(FORMATS)}")
    return kind


def save_compare_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names."""
    kind = figure_format(path)
    with write_failures(path):
        atomic_save(Path(path), lambda fh: fig.savefig(fh, format=kind, dpi=dpi))
