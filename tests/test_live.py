"""The live training figure: redrawn every few epochs, into a window or an atomic PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import same_color
from matplotlib.figure import Figure
from PIL import Image
from test_train import synthetic

import purenet_cli.live as live
from purenet.config import Config
from purenet.runner import record_training
from purenet.runs import Run
from purenet.train import train
from purenet_cli.live import LIVE_FILE, LiveView, chain, live_view

CONFIG = Config(hidden=(5,), epochs=12, lr=0.5)


@pytest.fixture(scope="module")
def snapshots() -> list:
    """Real snapshots of a short fold on a synthetic problem (epochs 0..12)."""
    return list(train(CONFIG, synthetic()))


@pytest.fixture
def folder(tmp_path) -> Path:
    run_ = Run.create(tmp_path / "run", CONFIG, {})
    return run_.folder


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_the_png_is_rewritten_atomically_every_few_epochs_and_at_the_end(snapshots, folder):
    png = folder / LIVE_FILE
    messages = []
    with live_view(folder, 5, True, notify=messages.append, allow_window=False) as show:
        for s in snapshots[:6]:  # epochs 0..5: drawn at 0 and 5
            show(s)
        first, first_inode = pixels(png), png.stat().st_ino
        for s in snapshots[6:10]:  # epochs 6..9: no redraw
            show(s)
        assert np.array_equal(pixels(png), first)
        show(snapshots[10])  # epoch 10: redrawn
        second = pixels(png)
        assert png.stat().st_ino != first_inode  # a new file renamed over the old one
        assert second.shape == first.shape and not np.array_equal(second, first)
        for s in snapshots[11:]:
            show(s)
        assert np.array_equal(pixels(png), second)
    final = pixels(png)  # leaving the view draws the last epoch (12)
    assert not np.array_equal(final, second)
    assert show.__self__.drawn_epoch == 12 and show.__self__.redraws == 4  # 0, 5, 10, 12
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert messages == [f"live figure: {png}, rewritten every 5 epochs"]


def test_the_png_shows_the_curves_in_their_colours(snapshots, folder):
    with live_view(folder, 4, True, allow_window=False) as show:
        for s in snapshots:
            show(s)
    image = pixels(folder / LIVE_FILE).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    assert np.count_nonzero((r > 200) & (g < 60) & (b < 60)) > 200  # the red loss line
    assert np.count_nonzero((b > 200) & (r < 60) & (g < 60)) > 200  # the blue train line
    assert np.count_nonzero((r > 230) & (g > 140) & (g < 190) & (b < 60)) > 200  # orange


def test_disabled_does_nothing(snapshots, folder):
    with live_view(folder, 1, False) as show:
        for s in snapshots:
            show(s)
    assert not (folder / LIVE_FILE).exists()


def test_a_resumed_run_keeps_the_rows_on_record_and_replaces_the_rest(snapshots, tmp_path):
    data = synthetic()
    run_ = Run.create(tmp_path / "run", CONFIG, data.sha256, keyframe_every=4)
    record_training(run_, data)
    on_record = run_.rows()
    with live_view(run_.folder, 100, True, allow_window=False) as show:
        for s in train(CONFIG, data, start=run_.load_keyframe(8)):
            show(s)
    rows = show.__self__.rows
    assert [r.epoch for r in rows] == list(range(13))
    seconds = [r.seconds for r in rows]
    assert seconds[:8] == [r.seconds for r in on_record[:8]]  # from the file: its times
    assert seconds[8:] != [r.seconds for r in on_record[8:]]  # replaced by the new session
    assert [r.train_loss for r in rows] == [s.train.loss for s in snapshots]


def test_a_failing_redraw_warns_once_and_never_stops_the_training(snapshots, folder):
    (folder / LIVE_FILE).mkdir()  # the PNG cannot replace a folder
    warnings = []
    with live_view(folder, 2, True, notify=warnings.append, allow_window=False) as show:
        for s in snapshots:
            show(s)
    assert len(warnings) == 2  # where the figure goes, then the one failure
    assert warnings[1].startswith("purenet: live figure stopped: ")
    assert "\n" not in warnings[1]
    assert show.__self__.redraws == 0


def test_in_a_window_the_figure_itself_is_redrawn(snapshots, folder):
    window = Figure()  # a stand-in for a shown window: same drawing calls, no display
    view = LiveView(folder, 3, "t", [], window)
    for s in snapshots[:7]:
        view.update(s)
    lines = {line.get_label(): line for ax in window.axes for line in ax.get_lines()}
    assert list(lines["loss (train)"].get_xdata()) == list(range(7))
    assert list(lines["test accuracy"].get_ydata()) == [s.test.accuracy for s in snapshots[:7]]
    assert same_color(lines["train accuracy"].get_color(), "blue")
    assert len(window.axes) == 3  # cleared before each redraw, not stacked
    view.stop()  # the window was closed
    for s in snapshots[7:]:
        view.update(s)
    view.finish()
    assert view.drawn_epoch == 6 and not (folder / LIVE_FILE).exists()


def test_window_backend_needs_a_display_and_an_interactive_backend(monkeypatch):
    monkeypatch.setattr(live, "display_available", lambda: False)
    monkeypatch.setattr(live, "configured_backend", lambda: "tkagg")
    assert live.window_backend() is None
    monkeypatch.setattr(live, "display_available", lambda: True)
    assert live.window_backend() == "tkagg"
    for name in ("agg", "pdf", "webagg", "nbagg"):
        monkeypatch.setattr(live, "configured_backend", lambda name=name: name)
        assert live.window_backend() is None
    monkeypatch.setattr(live, "configured_backend", lambda: None)  # automatic choice
    monkeypatch.setattr(live, "_importable", lambda name: name in ("gtk3agg", "tkagg"))
    assert live.window_backend() == "gtk3agg"
    monkeypatch.setattr(live, "_importable", lambda name: False)
    assert live.window_backend() is None


def test_configured_backend_reads_mplbackend(monkeypatch):
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, "backend", "agg")
    assert live.configured_backend() == "agg"


def test_chain_calls_each_callback_in_order():
    seen = []
    chain(lambda s: seen.append(("a", s)), lambda s: seen.append(("b", s)))(7)
    assert seen == [("a", 7), ("b", 7)]
