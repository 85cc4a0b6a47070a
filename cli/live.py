"""``purenet train --live``: the training figure, redrawn while the run trains.

With a display, the figure is shown in a window (through the interactive backend
matplotlib would pick, or the one ``MPLBACKEND`` names); without one, ``<run>/live.png``
is rewritten atomically, so an image viewer watching the file never reads half of it.
The view only consumes snapshots: nothing it does (or fails to do) reaches the fold. If
drawing fails (the disk is full, the display goes away), it says so once and stops.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from purenet.errors import PurenetError
from purenet.history import History, Row
from purenet.runs import LIVE_FILE, Run
from purenet.titles import figure_title
from purenet.train import Snapshot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Interactive backends that open a window, in the order matplotlib tries them.
WINDOW_BACKENDS = ("macosx", "qtagg", "gtk4agg", "gtk3agg", "tkagg", "wxagg")
NOT_WINDOWS = ("nbagg", "notebook", "webagg")  # interactive, but not a window


def display_available() -> bool:
    """Whether a window could be shown: matplotlib's own test (an X11 or Wayland display
    on Linux; always on macOS and Windows)."""
    try:
        from matplotlib import cbook

        return cbook._get_running_interactive_framework() != "headless"
    except (ImportError, AttributeError):  # a matplotlib without that helper
        if sys.platform.startswith("linux"):
            return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        return True


def configured_backend() -> str | None:
    """The backend set by ``MPLBACKEND`` or matplotlibrc, or None when matplotlib would
    choose one itself (read without resolving it, so pyplot is not touched)."""
    import matplotlib

    try:
        name = matplotlib.get_backend(auto_select=False)  # matplotlib >= 3.10
    except TypeError:
        name = os.environ.get("MPLBACKEND") or None
    return name.lower() if name else None


def is_window_backend(name: str) -> bool:
    """Whether the named backend draws in a window of its own."""
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:  # matplotlib < 3.9
        interactive = WINDOW_BACKENDS
    return name in interactive and name not in NOT_WINDOWS


def _importable(name: str) -> bool:
    try:
        importlib.import_module(f"matplotlib.backends.backend_{name}")
    except Exception:  # ImportError, or a GUI toolkit failing as it loads
        return False
    return True


def window_backend() -> str | None:
    """The backend to open the live window with, or None to write a PNG instead."""
    if not display_available():
        return None
    chosen = configured_backend()
    if chosen is not None:
        return chosen if is_window_backend(chosen) else None
    return next((name for name in WINDOW_BACKENDS if _importable(name)), None)


class LiveView:
    """Keeps the rows seen so far and redraws the training figure every ``every``
    epochs: into ``window`` (a shown matplotlib Figure) if given, else into
    ``<run_folder>/live.png``."""

    def __init__(
        self,
        run_folder: Path,
        every: int,
        title: str,
        rows: list[Row],
        window: Figure | None = None,
        warn: Callable[[str], None] | None = None,
    ):
        self.path = Path(run_folder) / LIVE_FILE
        self.every = max(1, every)
        self.title = title
        self.rows = list(rows)
        self.window = window
        self.warn = warn
        self.active = True
        self.drawn_epoch: int | None = None
        self.redraws = 0
        self._began = time.perf_counter()

    def update(self, snapshot: Snapshot) -> None:
        """Record the snapshot's metrics; redraw on every ``every``-th epoch."""
        if self.rows and self.rows[-1].epoch >= snapshot.epoch:  # resumed: drop replaced
            self.rows = [row for row in self.rows if row.epoch < snapshot.epoch]
        self.rows.append(Row.of(snapshot, time.perf_counter() - self._began))
        if snapshot.epoch % self.every == 0:
            self.redraw()
        elif self.window is not None and self.active:
            self._pump()

    def stop(self) -> None:
        """Draw no more."""
        self.active = False

    def _pump(self) -> None:
        try:
            self.window.canvas.flush_events()  # keep the window responsive
        except Exception:
            self.active = False

    def redraw(self) -> None:
        """Draw the figure of every row so far (unless the view has stopped)."""
        if not self.active or not self.rows:
            return
        history = History.from_rows(self.rows)
        try:
            from purenet.plot import draw_training, save_figure, training_figure  # matplotlib

            if self.window is not None:
                self.window.clear()
                draw_training(self.window, history, self.title)
                self.window.canvas.draw_idle()
                self.window.canvas.flush_events()
            else:
                save_figure(training_figure(history, self.title), self.path)
        except Exception as exc:  # never let a drawing problem stop the training
            if self.active and self.warn is not None:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                self.warn(f"purenet: live figure stopped: {reason}")
            self.active = False
            return
        self.drawn_epoch = self.rows[-1].epoch
        self.redraws += 1

    def finish(self) -> None:
        """The last redraw, if the last epoch has not been drawn yet."""
        if self.rows and self.drawn_epoch != self.rows[-1].epoch:
            self.redraw()


def every_epochs(n: int) -> str:
    """``every epoch`` or ``every N epochs``."""
    return "every epoch" if n == 1 else f"every {n} epochs"


def chain(*callbacks: Callable[[Snapshot], None]) -> Callable[[Snapshot], None]:
    """One snapshot callback that calls each of ``callbacks`` in turn."""

    def call_each(snapshot: Snapshot) -> None:
        for callback in callbacks:
            callback(snapshot)

    return call_each


def _open_window(backend: str, title: str) -> Figure:
    """A shown, empty figure window on ``backend``.

    pyplot is used here, at the edge, because it is what manages GUI windows and their
    event loops across toolkits; the library never imports it.
    """
    from matplotlib import pyplot

    pyplot.switch_backend(backend)
    fig = pyplot.figure(num=title, figsize=(8, 6.4), layout="constrained")
    fig.show()
    fig.canvas.flush_events()
    return fig


def _recorded_rows(run_folder: Path) -> tuple[list[Row], str]:
    """Rows already on record (when resuming) and the figure title of the run."""
    try:
        run = Run.open(run_folder)
        return run.rows(tolerate_cut_last_line=True), f"{figure_title(run.config)} (live)"
    except PurenetError:
        return [], "purenet (live)"


@contextlib.contextmanager
def live_view(
    run_folder: Path,
    every: int,
    enabled: bool,
    notify: Callable[[str], None] | None = None,
    allow_window: bool = True,
) -> Iterator[Callable[[Snapshot], None]]:
    """A callback to give every snapshot to, which keeps the live figure up to date.

    Args:
        run_folder: the run being trained (its metrics are read first, for a resume).
        every: redraw every this many epochs; the last epoch is always drawn on exit.
        enabled: when False the callback does nothing.
        notify: told in one line where the figure is (e.g. ``typer.echo`` to stderr),
            and if drawing fails; ``purenet train`` tells it even with ``--quiet``, as
            the user asked for the figure and needs to know where to look.
        allow_window: False writes the PNG even when a window could be shown.
    """
    if not enabled:
        yield lambda snapshot: None
        return
    rows, title = _recorded_rows(run_folder)
    backend = window_backend() if allow_window else None
    figure, where = None, f"{Path(run_folder) / LIVE_FILE}, rewritten"
    if backend is not None:
        try:
            figure = _open_window(backend, title)
            where = f"a {backend} window, redrawn"
        except Exception as exc:  # no usable display after all: fall back to the PNG
            where = f"{Path(run_folder) / LIVE_FILE} ({backend} window failed: {exc}), rewritten"
    view = LiveView(run_folder, every, title, rows, figure, notify)
    if figure is not None:  # closing the window ends the live view, not the training
        figure.canvas.mpl_connect("close_event", lambda event: view.stop())
    if notify is not None:
        notify(f"live figure: {where} {every_epochs(view.every)}")
    try:
        yield view.update
    finally:
        view.finish()
