"""Figures, checked by what they hold: line data and colours, counts, tiles, frames."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
from cli_helpers import assert_one_error_line, run, trained_run
from matplotlib.colors import same_color
from PIL import Image
from test_train import synthetic

from purenet.animate import write_animation
from purenet.config import Config
from purenet.evaluation import confusion_matrix, per_class_accuracy
from purenet.frames import default_stride, frame_epochs
from purenet.history import History, Row
from purenet.keyframes import params_at
from purenet.network import forward
from purenet.plot import (
    SIDE,
    confusion_figure,
    distortions_figure,
    epoch_figures,
    misclassified,
    misclassified_figure,
    per_class_figure,
    training_figure,
    weight_mosaic,
    weights_figure,
)
from purenet.replay import replay
from purenet.runs import Run, RunError
from purenet.titles import figure_title
from purenet.train import train


@pytest.fixture(scope="module")
def history() -> History:
    """The rows of a short real training fold on a synthetic problem."""
    rows = [Row.of(s, 0.1 * s.epoch) for s in train(Config(hidden=(6,), epochs=9), synthetic())]
    return History.from_rows(rows)


def lines_by_label(fig) -> dict:
    return {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}


# -- the training figure ---------------------------------------------------------------------


def test_training_figure_lines_carry_the_history_in_the_specified_colours(history):
    fig = training_figure(history, "t")
    lines = lines_by_label(fig)
    expected = {
        "loss (train)": (history.train_loss, "red"),
        "train accuracy": (history.train_acc, "blue"),
        "test accuracy": (history.test_acc, "orange"),
    }
    assert set(expected) <= set(lines)
    assert "validation accuracy" not in lines  # this run has none
    for label, (values, colour) in expected.items():
        assert np.array_equal(lines[label].get_xdata(), history.epoch)
        assert np.array_equal(lines[label].get_ydata(), values)
        assert same_color(lines[label].get_color(), colour)
    loss_axes = lines["loss (train)"].axes
    assert lines["train accuracy"].axes is lines["test accuracy"].axes is not loss_axes
    assert lines["train accuracy"].axes.get_ylim() == (0, 1)
    assert "epoch 9" in fig.get_suptitle()


def test_training_figure_adds_validation_when_the_history_has_it(history):
    valid = np.linspace(0.1, 0.5, len(history))
    lines = lines_by_label(training_figure(attrs.evolve(history, valid_acc=valid)))
    assert np.array_equal(lines["validation accuracy"].get_ydata(), valid)
    assert same_color(lines["validation accuracy"].get_color(), "green")


def axis_of(fig, ylabel: str):
    return next(ax for ax in fig.axes if ax.get_ylabel() == ylabel)


def test_training_figure_draws_the_test_loss_dashed_red_on_the_loss_axis(history):
    lines = lines_by_label(training_figure(history))
    test_loss = lines["loss (test)"]
    assert np.array_equal(test_loss.get_ydata(), history.test_loss)
    assert same_color(test_loss.get_color(), "red") and test_loss.get_linestyle() == "--"
    assert test_loss.axes is lines["loss (train)"].axes


def test_the_error_panel_shows_one_minus_accuracy_on_a_log_axis(history):
    fig = training_figure(history)
    ax = axis_of(fig, "error rate (log scale)")
    assert ax.get_yscale() == "log"  # 10%, 1%, 0.1% equally far apart: past 90% shows
    lines = {line.get_label(): line for line in ax.get_lines() if "error" in line.get_label()}
    for name, acc, colour in (
        ("train", history.train_acc, "blue"),
        ("test", history.test_acc, "orange"),
    ):
        error = 1 - acc
        drawn = lines[f"{name} error"]
        assert same_color(drawn.get_color(), colour)
        positive = error > 0
        assert np.allclose(drawn.get_ydata()[positive], error[positive])
    low = ax.get_ylim()[0]
    assert 0 < low <= min(np.min(line.get_ydata()) for line in lines.values())
    assert ax.get_shared_x_axes().joined(ax, lines_by_label(fig)["loss (train)"].axes)


def test_the_error_panel_separates_accuracies_past_90_percent():
    """98% and 99.95% are far apart on the error axis (they look the same on 0-1)."""
    rows = [
        Row(e, 1.0, acc, 1.0, acc, np.nan, np.nan, 0.0) for e, acc in enumerate([0.1, 0.98, 0.9995])
    ]
    fig = training_figure(History.from_rows(rows))
    ax = axis_of(fig, "error rate (log scale)")
    to_axes = ax.transAxes.inverted()
    y = [to_axes.transform(ax.transData.transform((0, e)))[1] for e in (0.02, 0.0005)]
    assert y[0] - y[1] > 0.4  # more than 40% of the panel's height between them


def test_a_perfect_accuracy_is_drawn_at_the_bottom_of_the_error_axis():
    rows = [
        Row(e, 1.0, acc, 1.0, 0.9, np.nan, np.nan, 0.0) for e, acc in enumerate([0.5, 0.99, 1.0])
    ]
    ax = axis_of(training_figure(History.from_rows(rows)), "error rate (log scale)")
    train = next(line for line in ax.get_lines() if line.get_label() == "train error")
    assert np.isfinite(train.get_ydata()).all()
    assert train.get_ydata()[-1] == ax.get_ylim()[0] > 0


def star(fig):
    return next(line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "*")


def test_the_best_validation_epoch_is_marked_and_named(history):
    valid = np.array([0.1, 0.3, 0.6, 0.6, 0.5, 0.4, 0.6, 0.2, 0.1, 0.1])[: len(history)]
    fig = training_figure(attrs.evolve(history, valid_acc=valid))
    marker = star(fig)
    assert list(marker.get_xdata()) == [2] and list(marker.get_ydata()) == [0.6]  # the earliest
    assert marker.get_label().startswith("best validation accuracy: epoch 2")
    assert same_color(marker.get_color(), "green")
    vertical = [
        line for ax in fig.axes for line in ax.get_lines() if list(line.get_xdata()) == [2, 2]
    ]
    assert len(vertical) == 2  # on both panels
    assert marker.get_label() in [t.get_text() for t in fig.legends[0].get_texts()]


def test_without_validation_the_highest_test_epoch_is_marked_and_labelled_as_such(history):
    fig = training_figure(history)
    marker = star(fig)
    best = int(np.argmax(history.test_acc))
    assert list(marker.get_xdata()) == [history.epoch[best]]
    assert "test accuracy (no validation set)" in marker.get_label()
    assert "validation" not in marker.get_label().replace("no validation set", "")


def test_the_legend_is_outside_the_axes_in_a_short_run(history):
    fig = training_figure(
        History.from_rows(
            [
                Row(e, 2.0 - e, 0.5 + e / 4, 2.1 - e, 0.5 + e / 5, np.nan, np.nan, 0.0)
                for e in range(2)
            ]
        )
    )
    fig.draw_without_rendering()
    assert not any(ax.get_legend() for ax in fig.axes)
    (legend,) = fig.legends
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent())


def test_figure_title_names_layers_activation_optimizer_lr_batch_and_seed():
    config = Config(
        hidden=(256, 128),
        activation="tanh",
        optimizer="momentum",
        nesterov=True,
        lr=0.05,
        batch_size=128,
        schedule="cosine",
        seed=7,
    )
    title = figure_title(config)
    for words in (
        "784-256-128-10",
        "tanh",
        "Nesterov momentum 0.9",
        "lr 0.05 (cosine)",
        "batch 128",
        "seed 7",
    ):
        assert words in title
    reference = figure_title(Config())
    assert (
        "784-10-10 relu" in reference and "SGD, lr 0.1" in reference and "full batch" in reference
    )
    assert "Adam" in figure_title(Config(optimizer="adam"))
    fig = training_figure(History.from_rows([]), title)
    assert fig.get_suptitle() == title


# -- confusion, per-class, weights, mistakes -------------------------------------------------


def predictions_of(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, m)
    guess = np.where(rng.random(m) < 0.7, y, rng.integers(0, 10, m))
    return y, guess


def test_confusion_figure_holds_the_counts_and_says_the_total():
    y, guess = predictions_of(537)
    counts = confusion_matrix(y, guess, 10)
    fig = confusion_figure(counts)
    (image,) = fig.axes[0].get_images()
    assert np.array_equal(image.get_array(), counts) and image.get_array().sum() == 537
    written = [int(t.get_text()) for t in fig.axes[0].texts]
    assert sum(written) == 537 and len(written) == np.count_nonzero(counts)
    assert f"{np.trace(counts)} of 537" in fig.axes[0].get_title()


def test_per_class_figure_bars_are_the_accuracy_of_each_digit():
    y, guess = predictions_of(400, seed=1)
    counts = confusion_matrix(y, guess, 10)
    fig = per_class_figure(counts)
    widths = [bar.get_width() for bar in fig.axes[0].patches]
    assert np.allclose(widths, per_class_accuracy(counts))
    overall = fig.axes[0].get_lines()[0].get_xdata()[0]
    assert overall == pytest.approx(np.trace(counts) / 400)


def runs_of(present: np.ndarray) -> list[slice]:
    """Maximal runs of True in a 1-D boolean array, as slices."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], present.astype(int), [0]])))
    return [slice(start, stop) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def tiles_of(mosaic: np.ndarray) -> list[np.ndarray]:
    """The blocks of a mosaic separated by all-NaN rows and columns, row by row."""
    filled = ~np.isnan(mosaic)
    blocks = [mosaic[r, c] for r in runs_of(filled.any(1)) for c in runs_of(filled.any(0))]
    return [b for b in blocks if not np.isnan(b).all()]


@pytest.mark.parametrize("n_units", [1, 7, 10, 64])
def test_weights_figure_has_one_tile_per_hidden_unit_holding_its_weights(n_units):
    w = np.random.default_rng(n_units).standard_normal((784, n_units)).astype(np.float32)
    fig = weights_figure(w)
    (image,) = [a for ax in fig.axes for a in ax.get_images()]
    tiles = tiles_of(np.ma.filled(image.get_array(), np.nan))
    assert len(tiles) == n_units
    for unit, tile in enumerate(tiles):
        assert np.array_equal(tile, w[:, unit].reshape(SIDE, SIDE))
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels == ([f"unit {u}" for u in range(n_units)] if n_units <= 40 else [])
    low, high = image.get_clim()
    assert low == -high > -np.abs(w).max()  # one symmetric scale for all tiles


def test_weight_mosaic_places_unit_u_at_row_u_div_columns():
    w = np.arange(784 * 5, dtype=np.float64).reshape(784, 5)
    mosaic = weight_mosaic(w, columns=2, gap=3)
    assert mosaic.shape == (3 * 31 - 3, 2 * 31 - 3)
    assert np.array_equal(mosaic[31:59, 31:59], w[:, 3].reshape(28, 28))
    assert np.isnan(mosaic[62:, 31:]).all()  # the sixth cell is empty


def test_misclassified_gallery_shows_the_most_confident_mistakes_with_their_labels():
    rng = np.random.default_rng(3)
    m = 120
    y = rng.integers(0, 10, m)
    probabilities = rng.dirichlet(np.ones(10), m)
    x = rng.random((m, 784))
    wrong = np.flatnonzero(probabilities.argmax(1) != y)
    fig = misclassified_figure(x, y, probabilities, limit=12)
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == 12 < len(wrong)
    picked = misclassified(y, probabilities, 12)
    confidence = probabilities[picked, probabilities[picked].argmax(1)]
    assert np.all(np.diff(confidence) <= 0) and set(picked) <= set(wrong)
    for ax, index in zip(shown, picked, strict=True):
        guess = probabilities[index].argmax()
        assert ax.get_title().startswith(f"{y[index]} read as {guess}\n")
        assert np.array_equal(ax.get_images()[0].get_array(), x[index].reshape(28, 28))
    assert f"of {len(wrong)} mistakes" in fig.texts[0].get_text()


# -- a real run: purenet plot and the animation ---------------------------------------------------


@pytest.fixture(scope="module")
def six(tmp_path_factory, mnist_dir) -> Path:
    """A finished 6-epoch run on the real MNIST, keyframes every 2 epochs."""
    return trained_run(
        tmp_path_factory.mktemp("plot") / "six", mnist_dir, "--epochs", 6, "--keyframe-every", 2
    )


def test_epoch_figures_of_a_real_run(six, reference_data):
    run_ = Run.open(six)
    params = run_.load_keyframe(6).params
    figures = epoch_figures(
        History.from_rows(run_.rows()), params, reference_data.x_test, reference_data.y_test, "six"
    )
    assert set(figures) == {"training", "confusion", "per-class", "weights", "misclassified"}
    (counts,) = figures["confusion"].axes[0].get_images()
    assert counts.get_array().sum() == len(reference_data.y_test) == 7000
    guesses = forward(params, reference_data.x_test).argmax(1)
    assert np.trace(counts.get_array()) == np.count_nonzero(guesses == reference_data.y_test)
    tiles = [a for ax in figures["weights"].axes for a in ax.get_images()]
    assert (
        len(tiles) == 1 and sum(t.get_text().startswith("unit") for t in tiles[0].axes.texts) == 10
    )
    loss = lines_by_label(figures["training"])["loss (train)"]
    assert list(loss.get_xdata()) == list(range(7))


@pytest.mark.slow
def test_purenet_plot_writes_every_figure_for_a_replayed_epoch(six, mnist_dir, tmp_path):
    result = run(["plot", six, "--epoch", 3, "--out", tmp_path / "e3"], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    written = [Path(line) for line in result.stdout.splitlines()]
    names = ["training", "confusion", "per-class", "weights", "misclassified"]
    assert [p.name for p in written] == [f"{n}.png" for n in names]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 300
    default = run(["plot", six], tmp_path, data=mnist_dir)
    assert default.returncode == 0, default.stderr
    last = six / "figures" / "epoch-000006"
    assert sorted(p.name for p in last.iterdir()) == sorted(f"{n}.png" for n in names)
    # Epoch 3 is between keyframes: its figures differ from the last epoch's.
    early = np.asarray(Image.open(tmp_path / "e3" / "weights.png").convert("L"))
    late = np.asarray(Image.open(last / "weights.png").convert("L"))
    assert early.shape == late.shape and not np.array_equal(early, late)


def test_purenet_plot_refuses_an_epoch_outside_the_run(six, mnist_dir, tmp_path):
    line = assert_one_error_line(run(["plot", six, "--epoch", 9], tmp_path, data=mnist_dir))
    assert "epochs are 0..6" in line


def test_params_at_reads_keyframes_and_folds_between_them_exactly(six, reference_data, tmp_path):
    run_ = Run.open(six)

    def no_data():
        raise AssertionError("every epoch asked has a keyframe: no data needed")

    on_keyframes = dict(params_at(run_, [0, 2, 4, 6], no_data))
    assert on_keyframes[4] == run_.load_keyframe(4).params
    loads = []
    between = dict(params_at(run_, [1, 3, 4, 5], lambda: loads.append(1) or reference_data))
    assert len(loads) == 1
    for epoch in (1, 3, 5):
        assert between[epoch] == replay(run_, epoch, reference_data).params
    copy = tmp_path / "copy"
    shutil.copytree(six, copy)
    (copy / "snapshots" / "epoch-000000.npz").unlink()
    with pytest.raises(RunError, match="no snapshot at or before epoch 1"):
        list(params_at(Run.open(copy), [1], no_data))


def test_frame_epochs_and_default_stride():
    assert frame_epochs(6, 2) == [0, 2, 4, 6]
    assert frame_epochs(7, 3) == [0, 3, 6, 7]
    assert frame_epochs(0, 5) == [0]
    assert default_stride(2500, 25) == 25 and len(frame_epochs(2500, 25)) == 101
    assert default_stride(2500, 1) == 25
    assert default_stride(2500, 50) == 50
    assert default_stride(6, 2) == 2


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
        return frames


@pytest.mark.slow
def test_replay_animate_writes_one_frame_per_stride_and_the_last(six, mnist_dir, tmp_path):
    gif = tmp_path / "six.gif"
    result = run(
        ["replay", six, "--animate", gif, "--stride", 4, "--fps", 5], tmp_path, data=mnist_dir
    )
    assert result.returncode == 0, result.stderr
    assert "3 frames, one every 4 epochs" in result.stdout
    frames = gif_frames(gif)
    assert len(frames) == len(frame_epochs(6, 4)) == 3  # epochs 0, 4, 6
    assert all(f.shape == frames[0].shape for f in frames)
    assert not np.array_equal(frames[0], frames[-1])
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left
    default = run(["replay", six, "--epoch", 5, "--animate", gif], tmp_path, data=mnist_dir)
    assert default.returncode == 0, default.stderr
    assert len(gif_frames(gif)) == len(frame_epochs(5, 2)) == 4  # 0, 2, 4 and 5


def test_write_animation_draws_the_curves_up_to_each_frame(history, tmp_path):
    w = [(e, np.full((784, 6), e, dtype=np.float32)) for e in (0, 3, 9)]
    assert write_animation(tmp_path / "a.gif", history, w, "t", fps=4) == 3
    frames = gif_frames(tmp_path / "a.gif")
    red = [
        np.count_nonzero((f[..., 0] > 200) & (f[..., 1] < 80) & (f[..., 2] < 80)) for f in frames
    ]
    assert red[0] < red[1] < red[2]  # the loss curve grows


@pytest.mark.parametrize(
    "args, message",
    [
        (["--animate", "clip.mp4"], "ending in .gif"),
        (["--animate", "a.gif", "--stride", "0"], "--stride"),
        (["--animate", "a.gif", "--fps", "0"], "--fps"),
    ],
)
def test_replay_animate_bad_options_exit_2(six, tmp_path, args, message):
    result = run(["replay", six, *args], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_replay_animate_into_a_missing_folder_is_one_error_line(six, mnist_dir, tmp_path):
    result = run(
        ["replay", six, "--animate", tmp_path / "no" / "such" / "a.gif"], tmp_path, data=mnist_dir
    )
    line = assert_one_error_line(result)
    assert re.search(r"cannot write .*a\.gif", line)


def test_help_of_the_new_commands(tmp_path):
    for command, options in (
        (["plot"], ["--epoch", "--out", "--data", "RUN"]),
        (["predict"], ["--epoch", "--json", "--data", "RUN", "{IMAGE}..."]),
        (["replay"], ["--animate", "--stride", "--fps"]),
    ):
        result = run([*command, "--help"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"Usage: purenet {' '.join(command)}" in result.stdout
        for option in options:
            assert option in result.stdout


def test_the_distortions_figure_shows_each_row_of_digits_under_its_label():
    rng = np.random.default_rng(0)
    rows = [("original", rng.random((4, 784))), ("elastic", rng.random((4, 784)))]
    fig = distortions_figure(rows, "some digits")
    axes = fig.get_axes()
    assert len(axes) == 8
    assert [axes[0].get_ylabel(), axes[4].get_ylabel()] == ["original", "elastic"]
    shown = axes[5].get_images()[0].get_array()
    assert np.array_equal(shown, rows[1][1][1].reshape(28, 28))
    assert fig.get_suptitle() == "some digits"
