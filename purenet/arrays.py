"""Read-only arrays for immutable records.

``attrs.frozen`` stops ``record.w = ...`` but not ``record.w[0] = 1``. The records of
purenet (params, datasets) therefore hold arrays marked read-only, compare them bit for
bit, and never hash them: :func:`array_field` declares such a field.
"""

from __future__ import annotations

import attrs
import numpy as np


def readonly_array(value) -> np.ndarray:
    """A read-only ndarray holding ``value``: copied once unless already read-only."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return value
    array = np.array(value, copy=True)
    array.setflags(write=False)
    return array


def frozen_result(array: np.ndarray) -> np.ndarray:
    """Mark a freshly computed array (one that owns its data and that nobody else holds)
    read-only in place, so a record can take it without another copy."""
    if array.base is None and array.flags.owndata:
        array.setflags(write=False)
    return array


def sealed(fresh: np.ndarray) -> np.ndarray:
    """A freshly made array (held by nobody else), C-contiguous and read-only: copied only
    if it is not C-contiguous (a fancy-indexed column selection may not be)."""
    out = np.ascontiguousarray(fresh)
    out.setflags(write=False)
    return out


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical: same dtype, same shape and same bytes (so NaN equals the same NaN)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def array_field(**kwargs):
    """An attrs field holding a read-only array (see :func:`readonly_array`), compared
    with :func:`same_array` and left out of the record's hash."""
    return attrs.field(
        converter=readonly_array, eq=attrs.cmp_using(eq=same_array), hash=False, **kwargs
    )
