"""The per-epoch record of a run: columns of metrics, to and from CSV.

One row per snapshot: ``epoch, train_loss, train_acc, test_loss, test_acc, valid_loss,
valid_acc, seconds``, where ``seconds`` is the wall time since training started and the
validation columns are ``nan`` for a run without a validation set. Floats are written
with ``repr`` so a row read back gives the very same numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
import numpy as np

from purenet.errors import PurenetError

COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "valid_loss",
    "valid_acc",
    "seconds",
)

# More than any row csv_line writes (an epoch and seven float reprs of at most 24
# characters): a bound on the size of a run's metrics file, from its number of epochs.
ROW_LIMIT = 512


@attrs.frozen
class Row:
    """One epoch's metrics, as plain numbers."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    valid_loss: float
    valid_acc: float
    seconds: float

    @classmethod
    def of(cls, snapshot, seconds: float) -> Row:
        """The row of a :class:`purenet.train.Snapshot` taken ``seconds`` into the run."""
        valid = snapshot.valid
        return cls(
            snapshot.epoch,
            snapshot.train.loss,
            snapshot.train.accuracy,
            snapshot.test.loss,
            snapshot.test.accuracy,
            valid.loss if valid is not None else math.nan,
            valid.accuracy if valid is not None else math.nan,
            seconds,
        )

    def csv_fields(self) -> list[str]:
        return [str(self.epoch), *(repr(float(v)) for v in attrs.astuple(self)[1:])]


@attrs.frozen
class History:
    """Metrics of a run as columns; every attribute has shape (n_epochs_recorded,)."""

    epoch: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    valid_loss: np.ndarray
    valid_acc: np.ndarray
    seconds: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> History:
        columns = list(zip(*(attrs.astuple(r) for r in rows), strict=True)) or [()] * len(COLUMNS)
        return cls(
            np.asarray(columns[0], dtype=np.int64),
            *(np.asarray(c, dtype=np.float64) for c in columns[1:]),
        )

    def __len__(self) -> int:
        return len(self.epoch)


def csv_header() -> str:
    return ",".join(COLUMNS) + "\n"


def csv_line(row: Row) -> str:
    return ",".join(row.csv_fields()) + "\n"


def parse_rows(lines: Iterable[str], name: str) -> list[Row]:
    """Rows from CSV text lines (header first).

    Raises:
        PurenetError: naming ``name`` and the line, on a wrong header or a malformed row.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise PurenetError(f"{name}: not a purenet metrics file ({exc})") from None
    if header is None or tuple(header) != COLUMNS:
        raise PurenetError(f"{name}: not a purenet metrics file (header {header!r:.100})")
    rows = []
    number = 1
    try:
        for number, fields in enumerate(reader, start=2):  # noqa: B007 (named in errors)
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{len(fields)} fields")
            rows.append(Row(int(fields[0]), *(float(f) for f in fields[1:])))
    except (ValueError, csv.Error) as exc:
        line = number if isinstance(exc, ValueError) else reader.line_num
        raise PurenetError(f"{name}: line {line} is malformed ({exc})") from None
    return rows


def read_history(path: Path) -> History:
    """Read a metrics CSV written by :func:`csv_line` into a :class:`History`."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            return History.from_rows(parse_rows(fh, str(path)))
    except OSError as exc:
        raise PurenetError(f"{path}: cannot read ({exc.strerror or exc})") from None
