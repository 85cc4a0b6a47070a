"""Network parameters as immutable records, and their initialisation.

Layout: a layer maps a batch ``x`` of shape ``(m, n_in)`` (one sample per row) to
``x @ w + b`` of shape ``(m, n_out)``, so ``w`` has shape ``(n_in, n_out)`` and ``b`` shape
``(n_out,)``. Arrays held by these records are read-only copies: ``p.layers[0].w[0, 0] = 1``
raises instead of silently changing a snapshot.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Sequence

import attrs
import numpy as np

from purenet.arrays import array_field, frozen_result
from purenet.seeds import Stream


@attrs.frozen
class Layer:
    """One affine layer.

    Attributes:
        w: weights, shape (n_in, n_out), a floating dtype.
        b: biases, shape (n_out,), the same dtype as ``w``.
    """

    w: np.ndarray = array_field()
    b: np.ndarray = array_field()

    def __attrs_post_init__(self) -> None:
        if self.w.ndim != 2 or self.b.shape != (self.w.shape[1],):
            raise ValueError(
                f"layer shapes do not fit: w {self.w.shape} needs b of shape "
                f"({self.w.shape[-1]},), got {self.b.shape}"
            )
        if self.w.dtype != self.b.dtype or self.w.dtype.kind != "f":
            raise ValueError(f"w and b need one floating dtype, got {self.w.dtype}, {self.b.dtype}")


class Activation(str, enum.Enum):
    """The non-linearity of the hidden layers."""

    RELU = "relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"


@attrs.frozen
class Params:
    """The parameters of a feedforward network: one :class:`Layer` per affine map, and
    the name of the hidden layers' activation (plain data, so params stay serialisable)."""

    layers: tuple[Layer, ...] = attrs.field(converter=tuple)
    activation: Activation = attrs.field(default=Activation.RELU, converter=Activation)

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        for before, after in itertools.pairwise(self.layers):
            if before.w.shape[1] != after.w.shape[0]:
                raise ValueError(f"layer sizes do not chain: {before.w.shape} then {after.w.shape}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths from input to output, e.g. (784, 10, 10)."""
        return (self.layers[0].w.shape[0], *(layer.w.shape[1] for layer in self.layers))

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].w.dtype

    def astype(self, dtype) -> Params:
        """The same parameters converted to ``dtype`` (e.g. float64 for gradient checks)."""
        return map_params(lambda a: a.astype(dtype), self)


def map_params(fn: Callable[..., np.ndarray], *trees: Params) -> Params:
    """Apply ``fn`` array-wise across params of identical structure.

    ``fn`` must return new arrays (as NumPy operations do); they become the new record's
    read-only arrays without another copy. The activation of the first tree is kept.
    """

    def apply(*arrays: np.ndarray) -> np.ndarray:
        out = fn(*arrays)
        return out if any(out is a for a in arrays) else frozen_result(out)

    return Params(
        tuple(
            Layer(apply(*(t.layers[i].w for t in trees)), apply(*(t.layers[i].b for t in trees)))
            for i in range(len(trees[0].layers))
        ),
        trees[0].activation,
    )


class Init(str, enum.Enum):
    """Weight initialisation schemes. Biases always start at zero, except ``uniform``."""

    HE = "he"  # N(0, 2 / n_in): keeps ReLU activations' variance steady across layers
    XAVIER = "xavier"  # N(0, 2 / (n_in + n_out)): Glorot's choice for tanh / sigmoid
    UNIFORM = "uniform"  # U(-0.5, 0.5) for weights and biases, as the reference tutorial


def init_params(
    sizes: Sequence[int],
    seed: int,
    scheme: Init | str = Init.HE,
    dtype=np.float32,
    activation: Activation | str = Activation.RELU,
) -> Params:
    """Fresh parameters for a network with layer widths ``sizes`` (input first).

    A pure function of its arguments: the random numbers come from a generator seeded
    with ``(seed, Stream.INIT)``, never from NumPy's global state.
    """
    scheme = Init(scheme)
    rng = np.random.default_rng([seed, Stream.INIT])
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        if scheme is Init.UNIFORM:
            w = rng.uniform(-0.5, 0.5, size=(n_in, n_out))
            b = rng.uniform(-0.5, 0.5, size=n_out)
        else:
            var = 2.0 / n_in if scheme is Init.HE else 2.0 / (n_in + n_out)
            w = rng.standard_normal((n_in, n_out)) * np.sqrt(var)
            b = np.zeros(n_out)
        layers.append(Layer(w.astype(dtype), b.astype(dtype)))
    return Params(tuple(layers), activation)


def zero_params(
    sizes: Sequence[int], dtype=np.float32, activation: Activation | str = Activation.RELU
) -> Params:
    """All-zero parameters for layer widths ``sizes``: the shape of a network, e.g. as the
    template that :func:`purenet.flat.unflatten` fills from saved arrays."""
    layers = (
        Layer(np.zeros((n_in, n_out), dtype), np.zeros(n_out, dtype))
        for n_in, n_out in itertools.pairwise(sizes)
    )
    return Params(tuple(layers), activation)
