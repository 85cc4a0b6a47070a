"""Reading digits from pictures: the MNIST preparation, the image reader, ``purenet predict``."""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import attrs
import numpy as np
import pytest
from cli_helpers import assert_one_error_line, run, trained_run
from PIL import Image

from purenet.images import MAX_PIXELS, ImageReadError, format_names, formats, read_image
from purenet.params import init_params
from purenet.predict import class_probabilities, top_classes
from purenet.prepare import (
    EmptyImageError,
    centre_of_mass,
    ink_box,
    prepare_digit,
    resample_matrix,
    to_grey,
)
from purenet.runs import Run

N_DIGITS = 150  # test digits used; the first 60 are written out as they are


def as_uint8(row: np.ndarray) -> np.ndarray:
    """A (784,) row in [0, 1] as the 28x28 uint8 image it was made from."""
    return np.round(row * 255).astype(np.uint8).reshape(28, 28)


# -- the preparation, a pure function -------------------------------------------------------------


def test_an_mnist_digit_comes_out_bit_for_bit(reference_data):
    changed = []
    for row in reference_data.x_test[:1000]:
        image = as_uint8(row)
        top, bottom, left, right = ink_box(image / 255.0)
        outside = image.copy()
        outside[max(0, top - 4) : bottom + 4, max(0, left - 4) : right + 4] = 0
        if max(bottom - top, right - left) != 20 or outside.any():
            changed.append(row)  # scaled to 20, or specks away from the strokes dropped
        else:
            assert np.array_equal(prepare_digit(image), row)
    assert len(changed) <= 5


def test_inverted_and_padded_digits_prepare_identically(reference_data):
    for row in reference_data.x_test[:40]:
        image = as_uint8(row)
        expected = prepare_digit(image)
        paper = np.pad(255 - image, ((13, 2), (40, 7)), constant_values=255)
        assert np.array_equal(prepare_digit(paper), expected)
        rgb = np.repeat(paper[..., None], 3, axis=2)
        assert np.array_equal(prepare_digit(rgb), expected)
        sixteen = paper.astype(np.uint16) * 257
        assert np.array_equal(prepare_digit(sixteen), expected)
        assert np.array_equal(prepare_digit(paper / 255.0), expected)


def test_a_digit_repeated_k_fold_prepares_back_to_itself(reference_data):
    for row in reference_data.x_test[:20]:
        image = as_uint8(row)
        big = np.kron(image, np.ones((3, 3), dtype=np.uint8))
        assert np.allclose(prepare_digit(big), prepare_digit(image), atol=1e-6)


def test_output_is_a_centred_784_row_in_0_1_with_strokes_fitting_20x20():
    rng = np.random.default_rng(0)
    for h, w in ((300, 120), (50, 400), (7, 9), (1000, 1000)):
        picture = np.full((h, w), 230, dtype=np.uint8)
        top, left = rng.integers(0, h // 3 + 1), rng.integers(0, w // 3 + 1)
        picture[top : top + h // 2 + 1, left : left + w // 2 + 1] = 20  # a dark block of ink
        x = prepare_digit(picture)
        assert x.shape == (784,) and x.dtype == np.float32
        assert x.min() == 0 and 0.9 < x.max() <= 1
        field = x.reshape(28, 28)
        top_, bottom, left_, right = ink_box(field.astype(np.float64))
        assert max(bottom - top_, right - left_) == 20
        row, col = centre_of_mass(field.astype(np.float64))
        assert abs(row - 14) <= 0.5 + 1e-9 and abs(col - 14) <= 0.5 + 1e-9


def test_transparent_background_takes_the_colour_that_contrasts_with_the_ink():
    alpha = np.zeros((40, 30), dtype=np.uint8)
    alpha[10:30, 12:18] = 255
    for ink in (0, 255):  # black ink, then white ink, on a transparent background
        rgba = np.zeros((40, 30, 4), dtype=np.uint8)
        rgba[..., :3] = ink
        rgba[..., 3] = alpha
        grey = to_grey(rgba)
        assert grey[20, 15] == ink / 255 and grey[0, 0] == 1 - ink / 255
        assert prepare_digit(rgba).max() > 0.9


@pytest.mark.parametrize(
    "picture",
    [
        np.full((30, 30), 255, np.uint8),
        np.zeros((30, 30), np.uint8),
        np.full((5, 64), 128, np.uint8),
        np.zeros((0, 10), np.uint8),
        np.random.default_rng(0).integers(120, 125, (40, 40)).astype(np.uint8),
    ],
    ids=["white", "black", "grey", "no pixels", "faint noise"],
)
def test_a_picture_without_ink_is_refused(picture):
    with pytest.raises(EmptyImageError):
        prepare_digit(picture)


def test_resampling_matrices():
    assert np.array_equal(resample_matrix(9, 1.0), np.eye(9))
    shrink = resample_matrix(12, 1 / 3)
    assert shrink.shape == (4, 12) and np.allclose(shrink.sum(1), 1)
    assert np.allclose(shrink @ np.arange(12.0), [1, 4, 7, 10])  # means of 3 pixels
    grow = resample_matrix(5, 2.5)
    assert grow.shape == (13, 5) and np.allclose(grow[:12].sum(1), 1)
    assert np.allclose(grow[1:3], [[1, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0]])  # [0.8, 1.2) straddles
    shifted = resample_matrix(6, 1.0, start=-2.0, n_out=5)
    assert np.array_equal(shifted @ np.arange(1.0, 7.0), [0, 0, 1, 2, 3])


def test_prepare_does_not_write_into_its_input(reference_data):
    image = np.pad(255 - as_uint8(reference_data.x_test[0]), 5, constant_values=255)
    before = image.copy()
    prepare_digit(image)
    assert np.array_equal(image, before)


def test_top_classes_ranks_probabilities():
    p = np.array([0.05, 0.5, 0.05, 0.3, 0.0, 0.0, 0.05, 0.05, 0.0, 0.0])
    assert top_classes(p) == [(1, 0.5), (3, 0.3), (0, 0.05)]


# -- reading files ---------------------------------------------------------------------------------


def test_read_image_modes(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for mode, convert in (("L", None), ("RGB", "RGB"), ("P", "P"), ("1", "1"), ("LA", "LA")):
        path = tmp_path / f"{mode}.png"
        image = Image.fromarray(grey)
        (image.convert(convert) if convert else image).save(path)
        array = read_image(path)
        assert array.shape[:2] == (3, 4) and array.dtype == np.uint8
    Image.fromarray(grey).convert("RGB").save(tmp_path / "photo.jpg", quality=95)
    assert read_image(tmp_path / "photo.jpg").shape == (3, 4, 3)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    deep = read_image(tmp_path / "deep.png")
    assert deep.dtype == np.uint16 and deep.max() == 220 * 257


def test_read_image_turns_photos_upright(tmp_path):
    tall = np.zeros((6, 2), dtype=np.uint8)
    image = Image.fromarray(tall).convert("RGB")
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").shape == (2, 6, 3)


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files a user might pass by mistake, and what the error line must say."""
    folder.mkdir(exist_ok=True)
    text = folder / "notes.png"
    text.write_text("not a picture\n")
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    noise = folder / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(noise)
    truncated = folder / "cut.png"
    truncated.write_bytes(noise.read_bytes()[:2000])
    ppm = folder / "digit.ppm"  # a picture, in a format purenet does not read
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(ppm)
    blank = folder / "blank.png"
    Image.fromarray(np.full((50, 40), 255, np.uint8)).save(blank)
    not_read = f"not a {format_names()} image"
    return {
        "text": (text, not_read),
        "empty file": (empty, not_read),
        "missing": (folder / "nope.png", "no such file"),
        "folder": (folder, "is a folder"),
        "truncated": (truncated, "damaged or unreadable"),
        "ppm": (ppm, not_read),
        "blank": (blank, "no ink"),
    }


def test_read_image_refuses_what_is_not_a_picture_it_reads(tmp_path):
    for name, (path, message) in bad_files(tmp_path / "bad").items():
        if name == "blank":
            with pytest.raises(EmptyImageError, match=message):
                prepare_digit(read_image(path))
            continue
        with pytest.raises(ImageReadError, match=message) as caught:
            read_image(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_overflowing_params_give_nan_rows_without_a_warning():
    # A diverged epoch's params: an infinite weight makes every logit inf or NaN, whose
    # softmax NumPy would warn about on stderr (one line too many for the command line).
    params = init_params((784, 8, 10), seed=0)
    w0 = params.layers[0].w.copy()
    w0[:, 0] = np.inf
    params = attrs.evolve(params, layers=(attrs.evolve(params.layers[0], w=w0), *params.layers[1:]))
    x = np.full((3, 784), 0.5, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = class_probabilities(params, x)
    assert probabilities.shape == (3, 10) and np.isnan(probabilities).all()


# -- purenet predict on a trained run ------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir) -> Path:
    """A run trained well enough to be sure of most digits: 3 epochs of mini-batches."""
    return trained_run(
        tmp_path_factory.mktemp("predict") / "run", mnist_dir, "--epochs", 3, "--batch-size", 100
    )


@pytest.fixture(scope="module")
def model_view(trained, reference_data):
    """The first test digits and the run's own probabilities for them."""
    params = Run.open(trained).load_keyframe(3).params
    x = reference_data.x_test[:N_DIGITS]
    return x, class_probabilities(params, x)


def predict_json(trained: Path, paths: list[Path], cwd: Path) -> dict:
    result = run(["predict", trained, *paths, "--json"], cwd)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.mark.slow
def test_predict_on_mnist_digits_written_as_png_recovers_the_models_predictions(
    trained, model_view, tmp_path
):
    x, probabilities = model_view
    x, probabilities = x[:60], probabilities[:60]
    paths = []
    for i, row in enumerate(x):
        paths.append(tmp_path / f"digit-{i:02d}.png")
        Image.fromarray(as_uint8(row)).save(paths[-1])
    out = predict_json(trained, paths, tmp_path)
    assert out["epoch"] == 3 and len(out["predictions"]) == 60
    for entry, path, p in zip(out["predictions"], paths, probabilities, strict=True):
        assert entry["image"] == str(path)
        assert entry["digit"] == int(p.argmax())
        assert [d["digit"] for d in entry["top3"]] == [d for d, _ in top_classes(p)]
        assert np.allclose(entry["probabilities"], p, atol=1e-6)
        assert sum(entry["probabilities"]) == pytest.approx(1)


@pytest.mark.slow
def test_the_same_digit_inverted_padded_and_resized_gets_the_same_answer(
    trained, model_view, tmp_path
):
    x, probabilities = model_view
    # Only digits the model is sure of (99%): resizing moves strokes by up to a pixel,
    # which may fairly tip a digit the model hesitates over.
    sure = np.flatnonzero(probabilities.max(1) >= 0.99)[:40]
    assert len(sure) == 40
    paths = []
    for n, i in enumerate(sure):
        paper = Image.fromarray(255 - as_uint8(x[i]))
        size = (71, 71) if n % 2 else (130, 130)
        big = paper.resize(size, Image.Resampling.LANCZOS)
        sheet = Image.new("L", (size[0] + 60 + n, size[1] + 25), 255)
        sheet.paste(big, (45, 5 + n % 7))
        if n % 2:
            paths.append(tmp_path / f"sheet-{i}.png")
            sheet.save(paths[-1])
        else:
            paths.append(tmp_path / f"photo-{i}.jpg")
            sheet.convert("RGB").save(paths[-1], quality=90)
    out = predict_json(trained, paths, tmp_path)
    got = [entry["digit"] for entry in out["predictions"]]
    assert got == [int(probabilities[i].argmax()) for i in sure]


def test_predict_prints_the_digit_and_the_top_three(trained, model_view, tmp_path):
    x, probabilities = model_view
    path = tmp_path / "one.png"
    Image.fromarray(as_uint8(x[0])).save(path)
    result = run(["predict", trained, path], tmp_path)
    assert result.returncode == 0, result.stderr
    (top1, p1), (top2, p2), (top3, p3) = top_classes(probabilities[0])
    assert result.stdout == (
        f"{path}: {top1}  ({top1}: {p1:.1%}, {top2}: {p2:.1%}, {top3}: {p3:.1%})\n"
    )


@pytest.mark.parametrize(
    "case", ["text", "empty file", "missing", "folder", "truncated", "ppm", "blank"]
)
def test_predict_refuses_a_bad_file_in_one_line(trained, tmp_path, case):
    path, message = bad_files(tmp_path / "bad")[case]
    line = assert_one_error_line(run(["predict", trained, path], tmp_path))
    assert str(path) in line and message in line


def test_predict_reads_the_good_pictures_and_reports_each_bad_one(trained, model_view, tmp_path):
    x, probabilities = model_view
    good = tmp_path / "good-digit.png"
    Image.fromarray(as_uint8(x[1])).save(good)
    bad = bad_files(tmp_path / "bad")
    result = run(["predict", trained, bad["text"][0], good, bad["missing"][0], "--json"], tmp_path)
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("purenet: error: ") for e in errors)
    text, entry, missing = json.loads(result.stdout)["predictions"]  # every input, in order
    assert entry["image"] == str(good) and entry["digit"] == int(probabilities[1].argmax())
    assert entry["error"] is None
    assert text["error"] == errors[0].removeprefix("purenet: error: ") and "digit" not in text
    assert missing["error"] == errors[1].removeprefix("purenet: error: ")


def test_predict_with_a_missing_run_is_one_error_line(tmp_path):
    line = assert_one_error_line(
        run(["predict", tmp_path / "no-run", tmp_path / "x.png"], tmp_path)
    )
    assert "does not exist" in line


# -- hostile pictures and other formats ----------------------------------------------------------


def png_declaring(width: int, height: int, path: Path) -> Path:
    """A valid RGBA PNG of ``width`` x ``height`` black pixels: a small file (about 40
    bytes per 10,000 pixels), written a row at a time."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    packer = zlib.compressobj(9)
    row = bytes(1 + 4 * width)  # filter byte 0, then the pixels
    compressed = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", compressed)
        + chunk(b"IEND", b"")
    )
    return path


def test_a_picture_declaring_too_many_pixels_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    bomb = png_declaring(9000, 9000, tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded the bomb"))
    with pytest.raises(ImageReadError, match=f"9000 x 9000 pixels is more than the {MAX_PIXELS:,}"):
        read_image(bomb)


def test_predict_refuses_a_decompression_bomb_and_a_fifo_and_reads_the_others(
    trained, model_view, tmp_path
):
    x, probabilities = model_view
    good = tmp_path / "good.png"
    Image.fromarray(as_uint8(x[2])).save(good)
    bomb = png_declaring(9000, 9000, tmp_path / "bomb.png")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # nothing will ever write to it: reading it would wait forever
    result = run(["predict", trained, bomb, good, fifo], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("purenet: error: ") for e in errors)
    assert f"{bomb}: 9000 x 9000 pixels is more than" in errors[0]
    assert f"{fifo}: not a regular file" in errors[1]
    assert result.stdout.startswith(f"{good}: {int(probabilities[2].argmax())}  (")


SAVE_AS = {  # lossless ways of saving a grey digit, as a user's program might
    "BMP": lambda image, path: image.save(path),
    "GIF": lambda image, path: image.save(path),  # a palette of greys
    "WEBP": lambda image, path: image.convert("RGB").save(path, lossless=True),
    "TIFF": lambda image, path: image.save(path, compression="tiff_lzw"),
}


def test_predict_reads_bmp_gif_webp_and_tiff_as_it_reads_png(trained, model_view, tmp_path):
    x, probabilities = model_view
    assert {"PNG", "JPEG", "BMP", "GIF", "TIFF"} <= set(formats())
    paths, expected = [], []
    for n, name in enumerate(sorted(set(SAVE_AS) & set(formats()))):
        for i in (3 + n, 10 + n):
            paths.append(tmp_path / f"digit-{i}.{name.lower()}")
            SAVE_AS[name](Image.fromarray(as_uint8(x[i])), paths[-1])
            expected.append(probabilities[i])
    out = predict_json(trained, paths, tmp_path)
    assert [entry["image"] for entry in out["predictions"]] == list(map(str, paths))
    for entry, p in zip(out["predictions"], expected, strict=True):
        assert entry["digit"] == int(p.argmax())
        assert np.allclose(entry["probabilities"], p, atol=1e-6)
