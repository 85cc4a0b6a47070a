"""A run folder on disk: what a training run leaves behind.

```
<run>/
  config.json    the settings that decide what the run learns, and where its data came from
  metrics.csv    one row per epoch, appended as training goes (see purenet.history)
  params.npz     the params of the last finite epoch (np.savez, no pickle)
  figure.png     the training figure
  status.json    running / finished / interrupted / diverged, with the last epoch
```
Every file except the append-only ``metrics.csv`` is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import numpy as np

from purenet.atomic import atomic_save, atomic_write_text
from purenet.errors import PurenetError
from purenet.history import Row, csv_header, csv_line
from purenet.params import Params

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
PARAMS_FILE = "params.npz"
FIGURE_FILE = "figure.png"
STATUS_FILE = "status.json"


def save_params(path: Path, params: Params) -> None:
    """Write ``params`` as an ``.npz`` of plain arrays (w0, b0, w1, ...), atomically."""
    atomic_save(Path(path), lambda fh: np.savez(fh, **params.arrays()))


def load_params(path: Path) -> Params:
    """Read params written by :func:`save_params`; never unpickles anything."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return Params.from_arrays({k: npz[k] for k in npz.files})
    except (OSError, ValueError, KeyError) as exc:
        raise PurenetError(f"{path}: not a readable purenet params file ({exc})") from None


def write_json(path: Path, value: dict) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


class RunWriter:
    """Appends a run's records to its folder as snapshots arrive (an edge, not the core)."""

    def __init__(self, folder: Path, config: dict):
        self.folder = Path(folder)
        if (self.folder / METRICS_FILE).exists():
            raise PurenetError(f"{self.folder} already holds a run; pass another --out folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PurenetError(f"cannot create run folder {self.folder}: {exc.strerror}") from None
        write_json(self.folder / CONFIG_FILE, config)
        self.write_status("running", None)
        self._metrics: IO[str] = open(self.folder / METRICS_FILE, "w", newline="")
        self._metrics.write(csv_header())
        self._metrics.flush()

    def append(self, row: Row) -> None:
        """Add one epoch's row; flushed at once so a killed run keeps its rows."""
        self._metrics.write(csv_line(row))
        self._metrics.flush()

    def write_status(self, status: str, epoch: int | None, **extra) -> None:
        write_json(self.folder / STATUS_FILE, {"status": status, "epoch": epoch, **extra})

    def close(self) -> None:
        self._metrics.close()
