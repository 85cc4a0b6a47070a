"""What ``purenet predict`` gives back: an entry per picture, warnings for several digits,
and the figure of the inputs the network was given."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run, trained_run
from matplotlib.image import AxesImage
from PIL import Image

from purenet.digit_count import digits_side_by_side
from purenet.plot import inputs_figure
from purenet.prepare import prepare_digit


def digit(x: np.ndarray, i: int) -> np.ndarray:
    """Test digit ``i`` as a 28x28 array in [0, 1], cropped to its inked columns."""
    image = x[i].reshape(28, 28)
    columns = np.flatnonzero(image.any(axis=0))
    return image[:, columns[0] : columns[-1] + 1]


def side_by_side(parts: list[np.ndarray], gap: int) -> np.ndarray:
    """The parts (28, w_i) in a row, ``gap`` blank columns apart, with a margin, as
    dark ink on white paper (uint8)."""
    width = sum(p.shape[1] for p in parts) + gap * (len(parts) - 1) + 8
    sheet = np.zeros((36, width))
    left = 4
    for part in parts:
        sheet[4:32, left : left + part.shape[1]] = part
        left += part.shape[1] + gap
    return np.round(255 * (1 - sheet)).astype(np.uint8)


def test_digits_side_by_side_counts_separated_digits(reference_data):
    x = reference_data.x_test
    for i in range(20):
        assert digits_side_by_side(side_by_side([digit(x, i)], 0)) == 1
    for i in range(0, 40, 2):
        assert digits_side_by_side(side_by_side([digit(x, i), digit(x, i + 1)], 1 + i % 5)) == 2
    assert digits_side_by_side(side_by_side([digit(x, 0), digit(x, 1), digit(x, 2)], 3)) == 3


def test_a_speck_or_a_hairline_beside_a_digit_is_not_a_second_digit(reference_data):
    one = digit(reference_data.x_test, 3)
    speck = np.zeros((28, 3))
    speck[20:23] = 1.0
    hairline = np.zeros((28, 1))
    hairline[4:24] = 1.0
    assert digits_side_by_side(side_by_side([one, speck], 2)) == 1
    assert digits_side_by_side(side_by_side([one, hairline], 2)) == 1
    assert digits_side_by_side(np.full((30, 30), 255, np.uint8)) == 0  # blank paper


def test_the_inputs_figure_shows_each_picture_and_the_input_it_became(reference_data):
    x = reference_data.x_test
    pictures = [side_by_side([digit(x, i)], 0) for i in range(3)]
    inputs = np.stack([prepare_digit(p) for p in pictures])
    probabilities = np.eye(10)[[7, 2, 1]] * 0.9 + 0.01
    fig = inputs_figure(
        ["a.png", "b.png", "c.png"],
        pictures,
        inputs,
        probabilities,
        notes=["", "2 digits side by side?", ""],
    )
    shown = [ax for ax in fig.axes if any(isinstance(a, AxesImage) for a in ax.get_children())]
    assert len(shown) == 6
    for i, picture in enumerate(pictures):
        top = next(ax for ax in shown if ax.get_title().startswith(f"{'abc'[i]}.png"))
        assert np.allclose(top.get_images()[0].get_array(), picture / 255)
        bottom = next(
            ax
            for ax in shown
            if np.array_equal(ax.get_images()[0].get_array(), inputs[i].reshape(28, 28))
        )
        assert f"read as {[7, 2, 1][i]} (91.0%)" in bottom.get_title()
    assert any("2 digits side by side?" in ax.get_title() for ax in shown)


# -- through the command -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    return trained_run(
        tmp_path_factory.mktemp("output") / "run", mnist_dir, "--epochs", 1, "--batch-size", 500
    )


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, reference_data):
    folder = tmp_path_factory.mktemp("pictures")
    x = reference_data.x_test
    paths = {
        "one": folder / "one.png",
        "missing": folder / "missing.png",
        "fortytwo": folder / "fortytwo.png",
        "text": folder / "notes.png",
    }
    Image.fromarray(side_by_side([digit(x, 0)], 0)).save(paths["one"])
    Image.fromarray(side_by_side([digit(x, 1), digit(x, 2)], 4)).resize((300, 150)).save(
        paths["fortytwo"]
    )
    paths["text"].write_text("not a picture")
    return paths


@pytest.mark.slow
def test_json_has_an_entry_for_every_input_in_order_with_its_error(trained, pictures, tmp_path):
    order = ["one", "missing", "fortytwo", "text"]
    result = run(["predict", trained, *(pictures[k] for k in order), "--json"], tmp_path)
    assert result.returncode == 1  # some pictures could not be read
    entries = json.loads(result.stdout)["predictions"]
    assert [e["image"] for e in entries] == [str(pictures[k]) for k in order]
    one, missing, fortytwo, text = entries
    assert one["error"] is None and one["warnings"] == [] and 0 <= one["digit"] <= 9
    assert len(one["probabilities"]) == 10 and len(one["top3"]) == 3
    for failed, words in ((missing, "no such file"), (text, "not a PNG, JPEG")):
        assert str(failed["image"]) in failed["error"] and words in failed["error"]
        assert "digit" not in failed and "probabilities" not in failed
    assert fortytwo["error"] is None and "2 digits side by side" in fortytwo["warnings"][0]
    stderr = result.stderr.splitlines()
    assert len(stderr) == 3 and "Traceback" not in result.stderr
    assert stderr[1].startswith(f"purenet: warning: {pictures['fortytwo']}: looks like 2 digits")


@pytest.mark.slow
def test_show_input_writes_the_figure_of_what_the_network_was_given(trained, pictures, tmp_path):
    out = tmp_path / "inputs.png"
    result = run(
        ["predict", trained, pictures["one"], pictures["fortytwo"], "--show-input", out], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2  # the readings, as without --show-input
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 300
    assert f"inputs drawn in {out}" in result.stderr
    missing_folder = run(
        ["predict", trained, pictures["one"], "--show-input", tmp_path / "no" / "f.png"], tmp_path
    )
    assert missing_folder.returncode == 1
    assert missing_folder.stderr.splitlines()[-1].startswith(
        f"purenet: error: cannot write {tmp_path / 'no' / 'f.png'}"
    )
