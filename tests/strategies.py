"""Hypothesis strategies for small networks and batches (bounded, no filtering)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purenet.params import Layer, Params


def bounded(dtype, shape, bound: float = 1.0):
    return hnp.arrays(
        dtype,
        shape,
        elements=st.floats(-bound, bound, allow_nan=False, width=np.dtype(dtype).itemsize * 8),
    )


@st.composite
def problems(draw, dtype=np.float64, max_depth: int = 2, max_width: int = 6, max_m: int = 6):
    """(params, x, y): a random small network with 0..max_depth-1 hidden layers and a batch."""
    n_hidden = draw(st.integers(0, max_depth - 1))
    sizes = [draw(st.integers(1, max_width)) for _ in range(n_hidden + 1)]
    sizes.append(draw(st.integers(2, max_width)))
    m = draw(st.integers(1, max_m))
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers.append(Layer(draw(bounded(dtype, (n_in, n_out))), draw(bounded(dtype, n_out))))
    x = draw(bounded(dtype, (m, sizes[0]), 2.0))
    y = draw(hnp.arrays(np.int64, m, elements=st.integers(0, sizes[-1] - 1)))
    return Params(tuple(layers)), x, y


def random_network(rng: np.random.Generator, sizes, activation="relu") -> Params:
    """Float64 params with normal weights and small biases, for gradient checks."""
    return Params(
        tuple(
            Layer(rng.normal(size=(a, b)), rng.normal(size=b) * 0.1)
            for a, b in itertools.pairwise(sizes)
        ),
        activation,
    )
