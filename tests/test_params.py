"""Params records: read-only arrays, bitwise equality, validation, initialisation, and
their flat arrays."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from purenet.arrays import readonly_array, same_array
from purenet.flat import flatten, unflatten
from purenet.params import Init, Layer, Params, init_params, zero_params


def test_layer_arrays_are_read_only_copies():
    w = np.ones((3, 2))
    layer = Layer(w, np.zeros(2))
    w[0, 0] = 5.0  # the caller's array is not the record's
    assert layer.w[0, 0] == 1.0
    with pytest.raises(ValueError):
        layer.w[0, 0] = 7.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        layer.w = w


def test_read_only_arrays_are_not_copied_again():
    a = readonly_array(np.arange(3.0))
    assert readonly_array(a) is a
    layer = Layer(np.ones((2, 2)), np.zeros(2))
    assert attrs.evolve(layer, b=np.ones(2)).w is layer.w


def test_equality_is_bitwise_with_dtype_and_shape():
    assert same_array(np.array([np.nan]), np.array([np.nan]))
    assert not same_array(np.array([1.0]), np.array([1.0], dtype=np.float32))
    assert not same_array(np.zeros((2, 1)), np.zeros((1, 2)))
    assert not same_array(np.array([0.0]), np.array([-0.0]))
    one = Layer(np.ones((2, 2)), np.zeros(2))
    assert one == Layer(np.ones((2, 2)), np.zeros(2))
    assert one != Layer(np.nextafter(np.ones((2, 2)), 2), np.zeros(2))


@pytest.mark.parametrize(
    "w, b",
    [
        (np.ones((3, 2)), np.zeros(3)),  # b does not match n_out
        (np.ones(3), np.zeros(3)),  # w not 2-D
        (np.ones((3, 2), np.float32), np.zeros(2)),  # mixed dtypes
        (np.ones((3, 2), np.int64), np.zeros(2, np.int64)),  # not floating
    ],
)
def test_layer_rejects_inconsistent_arrays(w, b):
    with pytest.raises(ValueError):
        Layer(w, b)


def test_params_reject_layers_that_do_not_chain():
    with pytest.raises(ValueError, match="chain"):
        Params((Layer(np.ones((4, 3)), np.zeros(3)), Layer(np.ones((2, 5)), np.zeros(5))))
    with pytest.raises(ValueError):
        Params(())


def test_init_is_a_pure_function_of_sizes_seed_and_scheme():
    a = init_params((784, 10, 10), seed=4)
    assert a == init_params((784, 10, 10), seed=4)
    assert a != init_params((784, 10, 10), seed=5)
    assert a.sizes == (784, 10, 10) and a.dtype == np.float32
    assert init_params((6, 3), seed=1, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    "scheme, std",
    [(Init.HE, np.sqrt(2 / 784)), (Init.XAVIER, np.sqrt(2 / (784 + 256)))],
)
def test_normal_schemes_have_the_documented_spread(scheme, std):
    layer = init_params((784, 256), seed=0, scheme=scheme).layers[0]
    assert layer.w.std() == pytest.approx(std, rel=0.02)
    assert abs(layer.w.mean()) < 0.02 * std * 10
    assert not layer.b.any()


def test_uniform_scheme_matches_the_reference_range():
    layer = init_params((784, 10), seed=0, scheme="uniform", dtype=np.float64).layers[0]
    assert layer.w.min() >= -0.5 and layer.w.max() < 0.5
    assert layer.w.std() == pytest.approx(1 / np.sqrt(12), rel=0.05)
    assert layer.b.any()


def test_flat_arrays_round_trip_and_are_named_as_in_keyframes():
    params = init_params((5, 4, 3), seed=2)
    arrays = flatten(params)
    assert set(arrays) == {"w0", "b0", "w1", "b1"}
    assert unflatten(zero_params((5, 4, 3)), arrays) == params
    assert set(flatten(params, "velocity")) == {
        "velocity.w0",
        "velocity.b0",
        "velocity.w1",
        "velocity.b1",
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("b1"), "no array named b1"),
        (lambda a: a.update(w0=np.zeros((4, 5), np.float32)), r"w0 has shape \(4, 5\)"),
        (lambda a: a.update(w1=a["w1"].astype(np.int32)), "not one floating dtype"),
    ],
)
def test_unflatten_refuses_arrays_that_do_not_fit_naming_them(change, message):
    arrays = dict(flatten(init_params((5, 4, 3), seed=2)))
    change(arrays)
    with pytest.raises(ValueError, match=message):
        unflatten(zero_params((5, 4, 3)), arrays)
