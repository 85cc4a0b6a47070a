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
instant leaves the previous complete state. One process at a time writes a run folder: it
holds the folder's writer lock (:mod:`purenet.runlock`) from before its first write to its
end, and a run marked running whose lock nobody holds was killed. Nothing is ever
unpickled: ``.npz`` files are read with ``allow_pickle=False`` and metadata is JSON. Any
file that is missing, truncated or malformed raises :class:`RunError` naming it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import reprlib
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs
import numpy as np

from purenet import __version__
from purenet._engine.threads import blas_description
from purenet.atomic import atomic_save, atomic_write_text
from purenet.config import Config
from purenet.errors import ConfigError, FileError, PurenetError, write_failures
from purenet.flat import flatten, unflatten
from purenet.history import ROW_LIMIT, Row, csv_header, csv_line, parse_rows
from purenet.params import Params
from purenet.reading import read_json, read_npz, read_text
from purenet.runlock import being_written
from purenet.train import DIVERGED_LOSS, TrainState, state_template

if TYPE_CHECKING:
    from purenet.data import Dataset

SCHEMA_VERSION = 1
DEFAULT_KEYFRAME_EVERY = 25

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
STATUS_FILE = "status.json"
FIGURE_FILE = "figure.png"
LIVE_FILE = "live.png"
SNAPSHOT_DIR = "snapshots"
# The files a run's training writes; no other command writes over them.
RUN_FILES = frozenset({CONFIG_FILE, METRICS_FILE, STATUS_FILE, FIGURE_FILE, LIVE_FILE})
KEYFRAME_PATTERN = re.compile(r"epoch-(\d{6,})\.npz")

RUNNING, FINISHED, INTERRUPTED, DIVERGED = "running", "finished", "interrupted", "diverged"
STATUSES = (RUNNING, FINISHED, INTERRUPTED, DIVERGED)
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
PID_LIMIT = 2**31  # process ids are positive C ints

_short = reprlib.Repr()
_short.maxstring = _short.maxother = _short.maxlong = 40


class RunError(PurenetError):
    """A run folder or one of its files is missing, corrupt, or not what it should be."""


def keyframe_name(epoch: int) -> str:
    return f"epoch-{epoch:06d}.npz"


def save_params(path: Path, params: Params, **extra: np.ndarray) -> None:
    """Write ``params`` (w0, b0, w1, ...) and ``extra`` arrays as ``.npz``, atomically."""
    with write_failures(path):
        atomic_save(Path(path), lambda fh: np.savez(fh, **flatten(params), **extra))


def _before_0_4(epoch: int) -> dict[str, np.ndarray]:
    """What keyframes written before purenet 0.4 leave out: a learning-rate schedule's
    position in training, which at a keyframe (an epoch boundary) is the epoch's step 0."""
    return {"opt.schedule.epoch": np.int64(epoch), "opt.schedule.step": np.int64(0)}


def last_sound_epoch(rows: list[Row]) -> int | None:
    """The last epoch before the first row whose training loss shows divergence (NaN,
    infinite or above :data:`purenet.train.DIVERGED_LOSS`, where training stops); the
    last row's epoch if none does; None if there is no row or the first one diverged."""
    last = None
    for row in rows:
        if not row.train_loss <= DIVERGED_LOSS:
            break
        last = row.epoch
    return last


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
        value = read_json(path)
    except FileError as exc:
        raise RunError(str(exc)) from None
    if not isinstance(value, dict):
        raise RunError(f"{path}: expected a JSON object")
    return value


def _whole(value) -> bool:
    """An int that is not a bool (JSON's true must not pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_meta(meta: dict) -> tuple[Config, int, dict[str, str], str | None]:
    """The config, keyframe interval, data hashes and data folder of a run's config.json,
    each checked for its type.

    Raises:
        ConfigError: naming the field at fault.
    """
    if not isinstance(meta.get("config"), dict):
        raise ConfigError(f"config must be an object, got {_short.repr(meta.get('config'))}")
    config = Config.from_json(meta["config"])
    every = meta.get("keyframe_every")
    if not _whole(every) or every < 1:
        raise ConfigError(f"keyframe_every must be a whole number >= 1, got {_short.repr(every)}")
    data = meta.get("data")
    if not isinstance(data, dict):
        raise ConfigError(f"data must be an object, got {_short.repr(data)}")
    sha256 = data.get("sha256")
    # An empty record passes here but matches no real data (see Run.check_data).
    if not isinstance(sha256, dict) or not all(
        isinstance(v, str) and SHA256_PATTERN.fullmatch(v) for v in sha256.values()
    ):
        raise ConfigError(
            "data.sha256 must map each data file to its SHA-256 (64 hex digits), got "
            f"{_short.repr(sha256)}"
        )
    extended = meta.get("extended_from", [])
    if not isinstance(extended, list) or not all(_whole(e) and e >= 1 for e in extended):
        raise ConfigError(
            f"extended_from must be a list of earlier epoch counts, got {_short.repr(extended)}"
        )
    folder = data.get("folder")
    if folder is not None and (not isinstance(folder, str) or not folder or "\0" in folder):
        raise ConfigError(f"data.folder must be a path or null, got {_short.repr(folder)}")
    return config, every, sha256, folder


def _write_json(path: Path, value: dict) -> None:
    with write_failures(path):
        atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


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

    @classmethod
    def _checked(cls, folder: Path, meta: dict) -> Run:
        """A run of the folder and meta read from its config.json, every field checked."""
        _checked_meta(meta)
        return cls(folder, meta)

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
        check_no_run(folder)
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
        with write_failures(folder / METRICS_FILE):
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
            return cls._checked(folder, meta)
        except ConfigError as exc:
            raise RunError(f"{path}: invalid run config ({exc})") from None

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
        if data.sha256 != self.data_sha256:
            if not self.data_sha256:
                raise RunError(
                    f"{self.folder / CONFIG_FILE}: records no hashes of the data the run "
                    "was trained on (data.sha256 is empty), so the data cannot be checked"
                )
            differing = sorted(
                k
                for k in self.data_sha256.keys() | data.sha256.keys()
                if data.sha256.get(k) != self.data_sha256.get(k)
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
        limit = len(csv_header()) + (self.config.epochs + 1) * ROW_LIMIT
        try:
            text = read_text(path, limit, f"the metrics of {self.config.epochs} epochs")
        except FileError as exc:
            raise RunError(str(exc)) from None
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
        with write_failures(self.folder / METRICS_FILE):
            return open(self.folder / METRICS_FILE, "a", encoding="utf-8", newline="")

    def rewrite_rows(self, rows: list[Row]) -> None:
        """Replace the metrics file with exactly ``rows`` (atomically)."""
        with write_failures(self.folder / METRICS_FILE):
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
        path = self.keyframe_path(state.epoch)
        with write_failures(path):
            atomic_save(path, lambda fh: np.savez(fh, **flatten(state)))

    def load_keyframe(self, epoch: int) -> TrainState:
        """The training state saved at ``epoch``.

        Raises:
            RunError: if the file is unreadable, holds another epoch, or arrays that do
                not fit the run's network and optimizer.
        """
        path = self.keyframe_path(epoch)
        template = self._state_template()
        expected = {name: (a.shape, a.dtype) for name, a in flatten(template).items()}
        try:
            arrays = read_npz(path, expected)  # each member's shape and dtype as expected
        except FileError as exc:
            raise RunError(str(exc)) from None
        stored = arrays.get("epoch")
        if stored is None or int(stored) != epoch:
            raise RunError(f"{path}: does not hold epoch {epoch}")
        try:
            return unflatten(template, {**_before_0_4(epoch), **arrays})
        except ValueError as exc:
            raise RunError(f"{path}: does not fit run {self.name}: {exc}") from None

    def _state_template(self) -> TrainState:
        try:
            return state_template(self.config)
        except (MemoryError, ValueError):
            raise RunError(
                f"{self.folder / CONFIG_FILE}: the network {'-'.join(map(str, self.config.sizes))} "
                "does not fit in this machine's memory"
            ) from None

    def should_keyframe(self, epoch: int) -> bool:
        return epoch % self.keyframe_every == 0 or epoch == self.config.epochs

    # -- status --------------------------------------------------------------------------

    def mark(self, status: str, epoch: int | None, **extra) -> None:
        """Write the status file (the last write of each phase of a run). A running run's
        record names its process and host, for people: whether it still runs is told by
        its writer lock (see :meth:`status`)."""
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
        if record.get("status") == FINISHED and epoch is not None:
            return epoch  # a whole number >= 0: status() checks it
        return None

    def status(self) -> dict:
        """The status record. A run marked running whose folder no process holds the writer
        lock of (see :mod:`purenet.runlock`) was killed: it is reported as interrupted.

        Raises:
            RunError: if the file is unreadable, or its status, epoch or pid malformed.
        """
        path = self.folder / STATUS_FILE
        record = _read_json(path)
        status, pid = record.get("status"), record.get("pid")
        if not isinstance(status, str) or status not in STATUSES:
            raise RunError(
                f"{path}: status {_short.repr(status)} is not one of {', '.join(STATUSES)}"
            )
        for field in ("epoch", "result_epoch"):
            value = record.get(field)
            if value is not None and not (_whole(value) and value >= 0):
                raise RunError(f"{path}: {field} {_short.repr(value)} is not a whole number >= 0")
        if pid is not None and not (_whole(pid) and 0 < pid < PID_LIMIT):
            raise RunError(f"{path}: pid {_short.repr(pid)} is not a process id")
        if status == RUNNING and not being_written(self.folder):
            record = {**record, "status": INTERRUPTED, "killed": True}
        return record


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like a run folder (it has metrics.csv and snapshots/)."""
    return (folder / METRICS_FILE).is_file() and (folder / SNAPSHOT_DIR).is_dir()


def run_owning(path: Path) -> Path | None:
    """The run folder ``path`` is one of the files of, if any: its config, metrics,
    status or figures (:data:`RUN_FILES`), or anything under its snapshots folder.
    Symbolic links are followed."""
    path = Path(path).resolve()
    if path.name in RUN_FILES and is_run_folder(path.parent):
        return path.parent
    for folder in path.parents:
        if folder.name == SNAPSHOT_DIR and is_run_folder(folder.parent):
            return folder.parent
    return None


def check_no_run(folder: Path) -> None:
    """Refuse a folder that already holds a run (its config.json is written).

    A folder whose run was stopped before its config was written holds no run: it may be
    used again.

    Raises:
        RunError: saying how to continue the run that is there, if it can be.
    """
    folder = Path(folder)
    if not (folder / CONFIG_FILE).exists():
        return
    try:
        status = Run.open(folder).status().get("status")
    except PurenetError:
        status = None
    if status in (INTERRUPTED, RUNNING):
        raise RunError(
            f"{folder} already holds a run that was interrupted; continue it with: "
            f"purenet train --resume {folder} (or pass another --out folder)"
        )
    raise RunError(f"{folder} already holds a run; pass another --out folder")


def list_runs(parent: Path) -> list[Run | tuple[Path, RunError]]:
    """Every run folder directly under ``parent``: opened runs, or the error for each
    folder that looks like a run but cannot be read."""
    parent = Path(parent)
    if not parent.is_dir():
        raise RunError(f"runs folder {parent} does not exist")
    try:
        entries = sorted(parent.iterdir())
    except OSError as exc:
        raise RunError(f"cannot list runs folder {parent}: {exc.strerror or exc}") from None
    found: list[Run | tuple[Path, RunError]] = []
    for folder in entries:
        try:
            if not (folder / CONFIG_FILE).exists():
                continue
        except OSError as exc:  # e.g. a folder we may not look into
            found.append((folder, RunError(f"cannot look into {folder}: {exc.strerror or exc}")))
            continue
        try:
            found.append(Run.open(folder))
        except PurenetError as exc:
            found.append((folder, RunError(str(exc))))
    return found
