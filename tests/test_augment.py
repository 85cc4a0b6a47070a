"""Random distortions of training images: exact shifts, bounded affine maps, purity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purenet.augment import affine_images, augment, shift_images

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
