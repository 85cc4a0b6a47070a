"""Params and optimizer states as flat dicts of named arrays (the keyframe format).

:func:`flatten` names every array by its path in a tree of records:

- :class:`~purenet.params.Params` give ``w0, b0, w1, b1, ...`` (w: (n_in, n_out),
  b: (n_out,));
- an attrs record gives each field under the field's name (``velocity.w0``), or under
  the name in the field's ``FLAT_NAME`` metadata; the name ``""`` keeps the field's
  arrays at the record's own level;
- a tuple (the states of a chain of transformations) merges its items' arrays;
- an int becomes a 0-d int64 array (a step count, an epoch).

So a training state flattens to ``w0, b0, ..., epoch, opt.velocity.w0, ...``: what
``np.savez`` writes and ``np.load`` reads back. :func:`unflatten` is the inverse: it
rebuilds a tree of the structure and shapes of a template, from arrays it checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import attrs
import numpy as np

from purenet.params import Layer, Params

FLAT_NAME = "purenet.flat_name"  # attrs field metadata: the field's name in flat arrays

Tree = TypeVar("Tree")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _field_names(record) -> list[tuple[str, str]]:
    """(attribute, flat name) of each field of an attrs record."""
    return [
        (field.name, field.metadata.get(FLAT_NAME, field.name))
        for field in attrs.fields(type(record))
    ]


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """The arrays of ``tree`` by name (see the module docstring), each name after
    ``prefix.``; the arrays themselves, not copies."""
    if isinstance(tree, Params):
        out = {}
        for i, layer in enumerate(tree.layers):
            out[_join(prefix, f"w{i}")] = layer.w
            out[_join(prefix, f"b{i}")] = layer.b
        return out
    if isinstance(tree, np.ndarray):
        return {prefix: tree}
    if isinstance(tree, int) and not isinstance(tree, bool):
        return {prefix: np.int64(tree)}
    if isinstance(tree, tuple):
        parts = [flatten(item, prefix) for item in tree]
    elif attrs.has(type(tree)):
        parts = [
            flatten(getattr(tree, attribute), _join(prefix, name))
            for attribute, name in _field_names(tree)
        ]
    else:
        raise TypeError(f"cannot flatten a {type(tree).__name__}")
    out = {}
    for part in parts:
        if out.keys() & part.keys():
            raise ValueError(f"two arrays named {sorted(out.keys() & part.keys())}")
        out.update(part)
    return out


def _array(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = arrays.get(name)
    if value is None:
        raise ValueError(f"no array named {name}")
    if value.shape != shape:
        raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
    return value


def unflatten(like: Tree, arrays: Mapping[str, np.ndarray], prefix: str = "") -> Tree:
    """The tree of ``like``'s structure and shapes holding ``arrays`` (names as
    :func:`flatten` gives them, after ``prefix.``); arrays under other names are ignored.

    Params take the arrays' own floating dtype and ``like``'s activation; ints must be
    stored as integer scalars.

    Raises:
        ValueError: naming the array, if one is missing or has another shape or kind.
    """
    if isinstance(like, Params):
        layers = []
        for i, layer in enumerate(like.layers):
            w = _array(arrays, _join(prefix, f"w{i}"), layer.w.shape)
            b = _array(arrays, _join(prefix, f"b{i}"), layer.b.shape)
            if w.dtype.kind != "f" or b.dtype != w.dtype:
                raise ValueError(
                    f"layer {i} of {prefix or 'the params'} holds {w.dtype} and {b.dtype}, "
                    "not one floating dtype"
                )
            layers.append(Layer(w, b))
        return Params(tuple(layers), like.activation)
    if isinstance(like, np.ndarray):
        return _array(arrays, prefix, like.shape)
    if isinstance(like, int) and not isinstance(like, bool):
        value = _array(arrays, prefix, ())
        if value.dtype.kind not in "iu":
            raise ValueError(f"{prefix} holds {value.dtype}, not an integer")
        return int(value)
    if isinstance(like, tuple):
        return tuple(unflatten(item, arrays, prefix) for item in like)
    if attrs.has(type(like)):
        fields = {
            attribute: unflatten(getattr(like, attribute), arrays, _join(prefix, name))
            for attribute, name in _field_names(like)
        }
        return attrs.evolve(like, **fields)
    raise TypeError(f"cannot unflatten into a {type(like).__name__}")
