"""An animated GIF of a run learning: the curves growing and the first layer's weights
changing, one frame per ``stride`` epochs.

Built on matplotlib's animation machinery (its Pillow writer, so GIF needs nothing that
matplotlib does not already bring) with the object API: no pyplot state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.figure import Figure

from purenet.atomic import atomic_path
from purenet.data import Dataset
from purenet.frames import DEFAULT_FPS, MAX_FRAMES, default_stride, frame_epochs  # noqa: F401
from purenet.history import History, Row
from purenet.keyframes import params_at
from purenet.plot import (
    draw_weights,
    grid_shape,
    training_curves,
    weight_limit,
    weight_mosaic,
)
from purenet.runs import Run
from purenet.titles import figure_title
from purenet.train import Snapshot


def _caption(history: History, i: int) -> str:
    return (
        f"epoch {history.epoch[i]:>5}   loss {history.train_loss[i]:.4f}   "
        f"train {history.train_acc[i]:6.2%}   test {history.test_acc[i]:6.2%}"
    )


def animation_figure(
    history: History, weights: np.ndarray, limit: float, title: str
) -> tuple[Figure, Callable[[int, np.ndarray], None]]:
    """The figure of the animation and the function that sets it to one frame.

    Args:
        history: every row the animation will show; the x axis spans all of them.
        weights: first-layer weights (784, n_units) of the first frame.
        limit: the colour scale of the weights, the same for every frame.
        title: names the run.

    Returns:
        ``(figure, show)``: ``show(i, w)`` draws the curves up to row ``i`` of ``history``
        and the weights ``w`` (784, n_units).
    """
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[1, 1.1])
    loss_ax = fig.add_subplot(grid[0])
    lines = training_curves(loss_ax, history)
    drawn = [line for line, _ in lines]
    loss_ax.legend(  # below the curves, never on them
        drawn,
        [line.get_label() for line in drawn],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    # fixed axes, so that the curves grow into a frame that does not move
    loss_ax.set_xlim(0, max(1, int(history.epoch[-1])))
    loss_ax.set_ylim(
        0, 1.05 * float(np.nanmax(history.train_loss[np.isfinite(history.train_loss)]))
    )
    loss_ax.set_title(title, fontsize=10)
    weights_ax = fig.add_subplot(grid[1])
    n_units = weights.shape[1]
    columns = grid_shape(n_units)[1]
    image = draw_weights(weights_ax, weights, limit, columns)
    weights_ax.set_title("first-layer weights (red +, blue -)", fontsize=10, pad=12)
    caption = fig.suptitle(_caption(history, 0), family="monospace")

    def show(i: int, w: np.ndarray) -> None:
        for line, series in lines:
            line.set_data(history.epoch[: i + 1], series[: i + 1])
        image.set_data(weight_mosaic(w, columns))  # the default gap, as drawn
        caption.set_text(_caption(history, i))

    return fig, show


def write_animation(
    path: Path,
    history: History,
    frames: Sequence[tuple[int, np.ndarray]],
    title: str,
    fps: int = DEFAULT_FPS,
    dpi: int = 80,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Render ``frames`` to the GIF at ``path`` (atomically) and return how many frames.

    Args:
        path: the GIF to write; a half-written one never appears under this name.
        history: the run's rows; row ``e`` must be epoch ``e`` for every frame's epoch.
        frames: ``(epoch, w)`` in order, ``w`` the first-layer weights (784, n_units).
        title: names the run.
        fps: frames per second.
        dpi: pixels per inch (the figure is 10 x 4.2 inches).
        on_frame: called with the number of frames written so far.
    """
    path = Path(path)
    limit = weight_limit(np.stack([w for _, w in frames]))
    fig, show = animation_figure(history, frames[0][1], limit, title)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")  # freeze the layout so nothing shifts between frames
    # The writer picks the file format from the name's suffix: keep .gif on the temporary.
    with atomic_path(path, suffix=path.suffix) as tmp:
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, tmp, dpi):
            for n, (epoch, w) in enumerate(frames, start=1):
                show(epoch, w)
                writer.grab_frame()
                if on_frame is not None:
                    on_frame(n)
    return len(frames)


def first_layer(frames: Iterable[tuple[int, object]]) -> list[tuple[int, np.ndarray]]:
    """``(epoch, params)`` pairs to ``(epoch, first-layer weights (784, n_units))``."""
    return [(epoch, np.asarray(params.layers[0].w)) for epoch, params in frames]


def animate_run(
    run: Run,
    rows: Sequence[Row],
    data: Dataset,
    last: Snapshot,
    path: Path,
    stride: int,
    fps: int = DEFAULT_FPS,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Write the GIF of ``run`` learning, up to the replayed snapshot ``last``, and return
    how many frames it has.

    Args:
        run: an open run.
        rows: its recorded rows, at least up to ``last.epoch``.
        data: its dataset, to fold forward to frames that fall between keyframes.
        last: the snapshot of the last frame (its params are drawn as they are).
        path: the GIF to write (atomically).
        stride: epochs between frames (see :func:`frame_epochs`).
        fps: frames per second.
        on_frame: called with the number of frames written so far, of
            ``len(frame_epochs(last.epoch, stride))``.

    Raises:
        RunError: if an earlier frame's params cannot be rebuilt (see
            :func:`purenet.keyframes.params_at`).
    """
    earlier = params_at(run, frame_epochs(last.epoch, stride)[:-1], lambda: data)
    frames = first_layer([*earlier, (last.epoch, last.params)])
    history = History.from_rows(rows[: last.epoch + 1])
    return write_animation(path, history, frames, figure_title(run.config), fps, on_frame=on_frame)
