"""A run folder on disk: the memory of a training run.

```
<run>/
  config.json          settings, data hashes, purenet version, schema version
  metrics.csv          one row per completed epoch (see purenet.history), appended
  snapshots/
    epoch-000000.npz   keyframes: epoch 0, every K epochs, the last epoch, and the
    epoch-000025.npz   epoch a run was interrupted at: params (w0, b0, ...), the
                       optimizer's state (opt.*) and the epoch
  status.json          running / finished / interrupted / diverged; written last
```

Every file but the append-only ``metrics.csv`` is replaced atomically, so a kill at any
instant leaves the previous complete state. Nothing is ever unpickled: ``.npz`` files are
read with ``allow_pickle=False`` and metadata is JSON. Any file that is missing,
truncated or malformed raises :class:`RunError` naming it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs
import numpy as np

from purenet import __version__
from purenet._engine.threads import blas_description
from purenet.atomic import atomic_save, atomic_write_text
from purenet.config import Config
from purenet.errors import ConfigError, PurenetError
from purenet.flat import flatten, unflatten
from purenet.history import Row, csv_header, csv_line, parse_rows
from purenet.params import Params
from purenet.train import TrainState, state_template

if TYPE_CHECKING:
    from purenet.data import Dataset

SCHEMA_VERSION = 1
DEFAULT_KEYFRAME_EVERY = 25

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
STATUS_FILE = "status.json"
FIGURE_FILE = "figure.png"
SNAPSHOT_DIR = "snapshots"
KEYFRAME_PATTERN = re.compile(r"epoch-(\d{6,})\.npz")

RUNNING, FINISHED, INTERRUPTED, DIVERGED = "running", "finished", "interrupted", "diverged"


class RunError(PurenetError):
    """A run folder or one of its files is missing, corrupt, or not what it should be."""


def keyframe_name(epoch: int) -> str:
    return f"epoch-{epoch:06d}.npz"


def save_params(path: Path, params: Params, **extra: np.ndarray) -> None:
    """Write ``params`` (w0, b0, w1, ...) and ``extra`` arrays as ``.npz``, atomically."""
    atomic_save(Path(path), lambda fh: np.savez(fh, **flatten(params), **extra))


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file; refuses object arrays and never unpickles."""
    try:
        # Open the file here: np.load leaks its own handle when the zip is invalid.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        reason = "holds object arrays" if "allow_pickle" in str(exc) else f"corrupt ({exc})"
        raise RunError(f"{path}: not a readable snapshot: {reason}") from None


def _before_0_4(epoch: int) -> dict[str, np.ndarray]:
    """What keyframes written before purenet 0.4 leave out: a learning-rate schedule's
    position in training, which at a keyframe (an epoch boundary) is the epoch's step 0."""
    return {"opt.schedule.epoch": np.int64(epoch), "opt.schedule.step": np.int64(0)}


def computed_with() -> dict[str, str]:
    """What decides the last bits of this process's results beside the config and data:
    the BLAS, its kernels and the CPU (see :func:`purenet._engine.threads.blas_description`).
    Recorded in every run's config.json, so a replay that rounds differently can say why.
    """
    return {
        "numpy": np.__version__,
        "machine": platform.machine(),
        **blas_description(),
    }


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RunError(f"{path}: expected a JSON object")
    return value


def _write_json(path: Path, value: dict) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    """An existing run folder: its settings, records and keyframes.

    Open one with :meth:`open` (reading) or :meth:`create` (a new run).
    """

    def __init__(self, folder: Path, meta: dict):
        self.folder = Path(folder)
        self.meta = meta
        self.config = Config.from_json(meta["config"])
        self.keyframe_every: int = meta["keyframe_every"]
        self.data_sha256: dict[str, str] = meta["data"]["sha256"]
        self.data_folder: str | None = meta["data"].get("folder")

    # -- creating and opening ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: Path,
        config: Config,
        data_sha256: dict[str, str],
        data_folder: Path | None = None,
        keyframe_every: int = DEFAULT_KEYFRAME_EVERY,
    ) -> Run:
        """Make a new run folder and write its config, an empty metrics file and status."""
        folder = Path(folder)
        if (folder / CONFIG_FILE).exists():
            raise RunError(f"{folder} already holds a run; pass another --out folder")
        try:
            (folder / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create run folder {folder}: {exc.strerror}") from None
        meta = {
            "schema_version": SCHEMA_VERSION,
            "purenet_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": config.to_json(),
            "computed_with": computed_with(),
            "keyframe_every": keyframe_every,
            "data": {
                "folder": str(Path(data_folder).resolve()) if data_folder else None,
                "sha256": dict(data_sha256),
            },
        }
        atomic_write_text(folder / METRICS_FILE, csv_header())
        run = cls(folder, meta)
        run.mark(RUNNING, None)
        _write_json(folder / CONFIG_FILE, meta)  # last: its presence means "a run is here"
        return run

    @classmethod
    def open(cls, folder: Path) -> Run:
        """Open an existing run folder, checking its config.

        Raises:
            RunError: if the folder or its config is missing, unreadable, of an unknown
                schema version, or invalid.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise RunError(f"run folder {folder} does not exist")
        path = folder / CONFIG_FILE
        meta = _read_json(path)
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunError(
                f"{path}: schema version {version!r} is not one this purenet "
                f"({__version__}) reads (it reads {SCHEMA_VERSION})"
            )
        try:
            run = cls(folder, meta)
            if not isinstance(run.keyframe_every, int) or run.keyframe_every < 1:
                raise ConfigError(f"keyframe_every {run.keyframe_every!r} is not >= 1")
        except (KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise RunError(f"{path}: invalid run config ({exc})") from None
        return run

    @property
    def name(self) -> str:
        return self.folder.name

    def set_epochs(self, epochs: int) -> None:
        """Record in config.json (atomically) that the run now trains to ``epochs``; the
        epochs it was asked for before are kept in the list ``extended_from``."""
        config = attrs.evolve(self.config, epochs=epochs)
        meta = {
            **self.meta,
            "config": config.to_json(),
            "extended_from": [*self.meta.get("extended_from", []), self.config.epochs],
        }
        _write_json(self.folder / CONFIG_FILE, meta)
        self.meta, self.config = meta, config

    def check_data(self, data: Dataset) -> None:
        """Refuse data whose content differs from what the run was trained on.

        Raises:
            RunError: naming the files that differ.
        """
        if self.data_sha256 and data.sha256 != self.data_sha256:
            differing = sorted(
                k for k in self.data_sha256 if data.sha256.get(k) != self.data_sha256[k]
            )
            raise RunError(
                f"the MNIST files differ from those run {self.name} was trained on "
                f"({', '.join(differing)}); point --data at the original files"
            )

    # -- metrics -------------------------------------------------------------------------

    def rows(self, tolerate_cut_last_line: bool = False) -> list[Row]:
        """The recorded rows, checked to run 0, 1, 2, ... without gaps.

        A last line without its newline means the file was cut mid-write: an error,
        unless ``tolerate_cut_last_line`` (for resuming, which rewrites the file).
        """
        path = self.folder / METRICS_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunError(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunError(f"{path}: not readable ({exc})") from None
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            if not tolerate_cut_last_line:
                raise RunError(f"{path}: the last line is cut mid-row (line {len(lines)})")
            lines = lines[:-1]
        try:
            rows = parse_rows(lines, str(path))
        except PurenetError as exc:
            raise RunError(str(exc)) from None
        for expected, row in enumerate(rows):
            if row.epoch != expected:
                raise RunError(f"{path}: row {expected + 1} is epoch {row.epoch}, not {expected}")
        return rows

    def rows_up_to(
        self, epoch: int | None, tolerate_cut_last_line: bool = False
    ) -> tuple[list[Row], int]:
        """The recorded rows and the epoch asked for (None: the last recorded one).

        Raises:
            RunError: if the run has no row yet, or ``epoch`` is not among its rows.
        """
        rows = self.rows(tolerate_cut_last_line)
        if not rows:
            raise RunError(f"run {self.name} has no completed epoch yet")
        epoch = rows[-1].epoch if epoch is None else epoch
        if not 0 <= epoch < len(rows):
            raise RunError(
                f"epoch {epoch} is outside run {self.name}: its epochs are 0..{len(rows) - 1}"
            )
        return rows, epoch

    def open_metrics(self) -> IO[str]:
        """The metrics file opened for appending rows."""
        return open(self.folder / METRICS_FILE, "a", encoding="utf-8", newline="")

    def rewrite_rows(self, rows: list[Row]) -> None:
        """Replace the metrics file with exactly ``rows`` (atomically)."""
        atomic_write_text(
            self.folder / METRICS_FILE, csv_header() + "".join(csv_line(r) for r in rows)
        )

    # -- keyframes -----------------------------------------------------------------------

    def keyframe_epochs(self) -> list[int]:
        """Epochs that have a keyframe, ascending."""
        folder = self.folder / SNAPSHOT_DIR
        if not folder.is_dir():
            return []
        found = (KEYFRAME_PATTERN.fullmatch(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def keyframe_path(self, epoch: int) -> Path:
        return self.folder / SNAPSHOT_DIR / keyframe_name(epoch)

    def save_keyframe(self, state: TrainState) -> None:
        """Save the state's arrays: params ``w0, b0, ...``, ``epoch`` and the optimizer's
        state ``opt.*`` (see :func:`purenet.flat.flatten`)."""
        atomic_save(self.keyframe_path(state.epoch), lambda fh: np.savez(fh, **flatten(state)))

    def load_keyframe(self, epoch: int) -> TrainState:
        """The training state saved at ``epoch``.

        Raises:
            RunError: if the file is unreadable, holds another epoch, or arrays that do
                not fit the run's network and optimizer.
        """
        path = self.keyframe_path(epoch)
        arrays = load_npz(path)
        stored = arrays.get("epoch")
        if stored is None or stored.shape != () or int(stored) != epoch:
            raise RunError(f"{path}: does not hold epoch {epoch}")
        try:
            return unflatten(state_template(self.config), {**_before_0_4(epoch), **arrays})
        except ValueError as exc:
            raise RunError(f"{path}: does not fit run {self.name}: {exc}") from None

    def should_keyframe(self, epoch: int) -> bool:
        return epoch % self.keyframe_every == 0 or epoch == self.config.epochs

    # -- status --------------------------------------------------------------------------

    def mark(self, status: str, epoch: int | None, **extra) -> None:
        """Write the status file (the last write of each phase of a run)."""
        record = {"status": status, "epoch": epoch, **extra}
        if status == RUNNING:
            record.update(pid=os.getpid(), host=socket.gethostname())
        _write_json(self.folder / STATUS_FILE, record)

    def result_epoch(self) -> int | None:
        """The epoch whose params are the run's result when it is not the last recorded
        one: the best validation epoch of a finished run trained with ``patience``
        (early stopping keeps the best, as Keras's ``restore_best_weights``). None: the
        last epoch is the result."""
        record = self.status()
        epoch = record.get("result_epoch")
        if record.get("status") == FINISHED and isinstance(epoch, int):
            return epoch
        return None

    def status(self) -> dict:
        """The status record. A run marked running whose process is gone on this host
        was killed: it is reported as interrupted."""
        record = _read_json(self.folder / STATUS_FILE)
        if (
            record.get("status") == RUNNING
            and record.get("host") == socket.gethostname()
            and isinstance(record.get("pid"), int)
            and not _pid_alive(record["pid"])
        ):
            record = {**record, "status": INTERRUPTED, "killed": True}
        return record


def list_runs(parent: Path) -> list[Run | tuple[Path, RunError]]:
    """Every run folder directly under ``parent``: opened runs, or the error for each
    folder that looks like a run but cannot be read."""
    parent = Path(parent)
    if not parent.is_dir():
        raise RunError(f"runs folder {parent} does not exist")
    found: list[Run | tuple[Path, RunError]] = []
    for folder in sorted(p for p in parent.iterdir() if (p / CONFIG_FILE).exists()):
        try:
            found.append(Run.open(folder))
        except RunError as exc:
            found.append((folder, exc))
    return found
