"""Random distortions of training images: exact shifts, bounded affine maps, purity."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purenet.augment import (
    SIDE,
    affine_images,
    augment,
    elastic_field,
    gaussian_matrix,
    shift_images,
)

images = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.just(784)),
    elements=st.floats(0, 1, width=32),
)


@given(images)
def test_nothing_to_do_is_the_identity(x):
    assert augment(x, (0, 1, 2)) is x
    zero = np.zeros(len(x), dtype=int)
    assert np.array_equal(shift_images(x, zero, zero), x)
    ones = np.ones(len(x))
    assert np.array_equal(affine_images(x, ones * 0, ones, ones * 0, ones * 0), x)


@given(images, st.integers(-3, 3), st.integers(-3, 3))
def test_shifts_move_the_ink_that_stays_in_frame_exactly(x, dy, dx):
    n = len(x)
    out = shift_images(x, np.full(n, dy), np.full(n, dx)).reshape(n, 28, 28)
    src = x.reshape(n, 28, 28)
    rows_out = slice(max(dy, 0), 28 + min(dy, 0))
    rows_in = slice(max(-dy, 0), 28 + min(-dy, 0))
    cols_out = slice(max(dx, 0), 28 + min(dx, 0))
    cols_in = slice(max(-dx, 0), 28 + min(-dx, 0))
    assert np.array_equal(out[:, rows_out, cols_out], src[:, rows_in, cols_in])
    # everything else moved in from outside and is blank
    assert out.sum(dtype=np.float64) == pytest.approx(
        out[:, rows_out, cols_out].sum(dtype=np.float64)
    )


def _shifted_by_slicing(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """One 28 x 28 image moved by (dy, dx), written the obvious way."""

    def span(d: int) -> tuple[slice, slice]:  # (where it lands, where it comes from)
        return slice(max(d, 0), max(0, 28 + min(d, 0))), slice(max(-d, 0), max(0, 28 - max(d, 0)))

    (rows_out, rows_in), (cols_out, cols_in) = span(dy), span(dx)
    out = np.zeros_like(image)
    out[rows_out, cols_out] = image[rows_in, cols_in]
    return out


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float32, (n, 784), elements=st.floats(0, 1, width=32)),
            st.lists(st.integers(-30, 30), min_size=n, max_size=n),
            st.lists(st.integers(-30, 30), min_size=n, max_size=n),
        )
    )
)
def test_each_image_moves_by_its_own_shift(case):
    x, dy, dx = case
    out = shift_images(x, np.array(dy), np.array(dx))
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(len(x)):
        expected = _shifted_by_slicing(x[i].reshape(28, 28), dy[i], dx[i])
        assert out[i].tobytes() == expected.ravel().tobytes()


def test_shifts_must_be_whole_pixels():
    x = np.zeros((2, 784), np.float32)
    with pytest.raises(TypeError, match="whole numbers"):
        shift_images(x, np.array([1.5, 0.0]), np.array([0, 0]))
    big = np.array([100, -100], dtype=np.int8)  # far out of frame, and no int8 overflow
    assert not shift_images(np.ones((2, 784), np.float32), big, big).any()


@given(images, st.integers(0, 1000))
def test_same_key_same_images_and_values_stay_in_unit_range(x, epoch):
    for kwargs in ({"max_shift": 2}, {"max_shift": 2, "max_rotate": 15, "max_scale": 0.15}):
        a = augment(x, (7, 5, epoch, 0), **kwargs)
        b = augment(x.copy(), (7, 5, epoch, 0), **kwargs)
        assert np.array_equal(a, b) and a.dtype == x.dtype and a.shape == x.shape
        assert a.min() >= 0 and a.max() <= 1


def test_different_keys_give_different_distortions():
    x = np.random.default_rng(0).random((32, 784), dtype=np.float32)
    a = augment(x, (1, 5, 0, 0), max_shift=2)
    assert not np.array_equal(a, augment(x, (1, 5, 1, 0), max_shift=2))


def test_affine_translation_by_whole_pixels_equals_the_exact_shift():
    x = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    dy, dx = np.array([2, -1, 0, 3, -2]), np.array([-1, 0, 2, 1, -3])
    n = len(x)
    moved = affine_images(x, np.zeros(n), np.ones(n), dy.astype(float), dx.astype(float))
    np.testing.assert_allclose(moved, shift_images(x, dy, dx), atol=1e-6)


def test_a_quarter_turn_rotates_the_image():
    image = np.zeros((28, 28), dtype=np.float32)
    image[3:10, 13:15] = 1  # a bar above the centre
    turned = affine_images(
        image.reshape(1, -1), np.array([np.pi / 2]), np.ones(1), np.zeros(1), np.zeros(1)
    )
    turned = turned.reshape(28, 28)
    ink = np.argwhere(turned > 0.5)
    assert ink[:, 0].min() >= 12 and ink[:, 0].max() <= 15  # now a horizontal bar
    assert turned.sum() == pytest.approx(image.sum(), rel=0.05)


# -- elastic distortions ---------------------------------------------------------------------

KEY, ELASTIC_KEY = (7, 5, 2, 3), (7, 7, 2, 3)
alphas = st.floats(0.01, 60)
sigmas = st.floats(0.5, 10)


def test_distortions_without_elastic_keep_the_bits_of_0_5_0():
    """Recorded runs replay only if the shift and affine paths keep their bits: digests
    of purenet 0.5.0's output (before elastic distortions and the one-gather corners)."""
    x = np.random.default_rng(2026).random((64, 784), dtype=np.float32)
    expected = {
        "9667af2acc0622af654cd3f93e678b2bb48a3b82235d31e9d598096ac2f5fbf1": {"max_shift": 2},
        "5b817213d9d69d2ae84654c4df64600cc746c4b28c4fef1c2a0a0064e770e766": {
            "max_shift": 2,
            "max_rotate": 15,
            "max_scale": 0.15,
        },
        "b6151099c2c656e3b98ac431bb482629456deef225d2b5b7c028ec90dc880283": {
            "max_rotate": 45,
            "max_scale": 0.4,
        },
    }
    for digest, kwargs in expected.items():
        out = augment(x, (11, 5, 3, 7), **kwargs)
        assert hashlib.sha256(out.tobytes()).hexdigest() == digest, kwargs


def _corners_by_four_gathers(x, y0, x0):
    """The bilinear corners written the obvious way, one fancy index each."""
    n = len(x)
    i = np.arange(n)[:, None, None]
    return x[i, y0, x0], x[i, y0, x0 + 1], x[i, y0 + 1, x0], x[i, y0 + 1, x0 + 1]


@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_the_one_gather_corners_equal_four_plain_gathers(n, seed):
    from purenet.augment import _corners

    rng = np.random.default_rng(seed)
    padded = rng.random((n, 32, 32), dtype=np.float32)
    y0, x0 = rng.integers(0, 31, size=(2, n, 28, 28), dtype=np.int32)
    for got, want in zip(
        _corners(padded, y0, x0), _corners_by_four_gathers(padded, y0, x0), strict=True
    ):
        assert got.tobytes() == want.tobytes()


@given(images, st.integers(0, 3), st.floats(0, 20), st.floats(0, 0.3), alphas, sigmas)
def test_elastic_output_is_a_bounded_image_batch_and_a_pure_function_of_its_keys(
    x, shift, rotate, scale, alpha, sigma
):
    a = augment(x, KEY, shift, rotate, scale, alpha, sigma, ELASTIC_KEY)
    b = augment(x.copy(), KEY, shift, rotate, scale, alpha, sigma, ELASTIC_KEY)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert a.tobytes() == b.tobytes()


@given(images, st.integers(0, 3), st.floats(0, 20), st.floats(0, 0.3), sigmas)
def test_alpha_zero_is_the_affine_path_bit_for_bit(x, shift, rotate, scale, sigma):
    alone = augment(x, KEY, shift, rotate, scale)
    assert augment(x, KEY, shift, rotate, scale, 0.0, sigma, ELASTIC_KEY).tobytes() == (
        alone.tobytes()
    )


def test_elastic_distortions_need_their_own_key():
    with pytest.raises(ValueError, match="elastic_key"):
        augment(np.zeros((1, 784), np.float32), KEY, elastic_alpha=1.0)


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_each_batch_gets_its_own_field(epoch, batch):
    field = elastic_field((1, 7, epoch, batch), 4, 34, 4)
    assert field.shape == (4, 2, 28, 28) and field.dtype == np.float32
    assert field.tobytes() == elastic_field((1, 7, epoch, batch), 4, 34, 4).tobytes()
    assert not np.array_equal(field, elastic_field((1, 7, epoch, batch + 1), 4, 34, 4))
    assert not np.array_equal(field, elastic_field((1, 7, epoch + 1, batch), 4, 34, 4))
    assert not np.array_equal(field[0], field[1])  # and each image its own


@given(st.integers(1, 4), alphas, sigmas, st.integers(0, 2**32 - 1))
def test_the_field_is_uniform_noise_smoothed_by_a_gaussian_and_scaled(n, alpha, sigma, seed):
    """The oracle: the same draws, smoothed by the 2-D Gaussian written as one sum over
    every pixel, in float64."""
    key = (seed, 7, 0, 0)
    noise = np.random.default_rng(key).random((SIDE, n * 2 * SIDE), dtype=np.float32) * 2 - 1
    noise = np.moveaxis(noise.reshape(SIDE, n, 2, SIDE), 0, 2).astype(np.float64)
    radius = max(1, int(4 * sigma + 0.5))
    d = np.arange(SIDE)[:, None] - np.arange(SIDE)[None, :]
    weights = np.where(np.abs(d) <= radius, np.exp(-0.5 * (d / sigma) ** 2), 0)
    weights /= np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum()
    kernel = weights[:, None, :, None] * weights[None, :, None, :]  # (y, x, source y, x)
    expected = alpha * np.einsum("yxij,nkij->nkyx", kernel, noise)
    np.testing.assert_allclose(elastic_field(key, n, alpha, sigma), expected, atol=2e-6 * alpha)


@given(sigmas)
def test_the_gaussian_keeps_a_constant_away_from_the_ends(sigma):
    g = gaussian_matrix(sigma).astype(np.float64)
    radius = max(1, int(4 * sigma + 0.5))
    inner = slice(radius, SIDE - radius)  # rows whose window lies inside the line
    np.testing.assert_allclose(g.sum(axis=1)[inner], 1, rtol=1e-6)
    assert (g >= 0).all() and np.allclose(g, g.T)


@given(st.floats(0, 1, width=32), alphas, sigmas, st.integers(0, 1000))
def test_a_constant_image_stays_constant_away_from_the_edges(value, alpha, sigma, batch):
    """Elastic distortions alone move where each pixel is read from; where that point and
    its neighbours lie inside the image, a constant image reads the same constant."""
    x = np.full((3, 784), value, np.float32)
    key = (4, 7, 0, batch)
    out = augment(x, (4, 5, 0, batch), elastic_alpha=alpha, elastic_sigma=sigma, elastic_key=key)
    field = elastic_field(key, 3, alpha, sigma)
    grid = np.arange(SIDE)
    sy = grid[None, :, None] + field[:, 0]
    sx = grid[None, None, :] + field[:, 1]
    inside = (sy >= 0) & (sy <= SIDE - 1) & (sx >= 0) & (sx <= SIDE - 1)
    np.testing.assert_allclose(out.reshape(3, SIDE, SIDE)[inside], value, atol=1e-6)


@given(images, st.floats(0.001, 0.5), sigmas, st.integers(0, 1000))
def test_a_small_alpha_moves_little(x, alpha, sigma, batch):
    """Bilinear resampling at points moved by at most d pixels changes no pixel by more
    than 2 d (each of the two interpolations by at most d), ink being in [0, 1]."""
    key = (4, 7, 0, batch)
    out = augment(x, (4, 5, 0, batch), elastic_alpha=alpha, elastic_sigma=sigma, elastic_key=key)
    reach = np.abs(elastic_field(key, len(x), alpha, sigma)).max()
    assert reach <= alpha * (1 + 1e-5)
    assert np.abs(out - x).max() <= 2 * reach + 1e-6


def test_elastic_distortions_move_ink_but_keep_a_digit_whole():
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 6:22, 12:16] = 1  # a thick bar
    out = augment(
        image.reshape(1, -1), KEY, elastic_alpha=34, elastic_sigma=4, elastic_key=ELASTIC_KEY
    )
    assert not np.array_equal(out, image.reshape(1, -1))
    assert out.sum() == pytest.approx(image.sum(), rel=0.25)
