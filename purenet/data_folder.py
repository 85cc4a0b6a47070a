"""Where MNIST is read from, and getting it ready to load.

Every command finds its data folder through :func:`locate`, in this order: the folder
passed in (``--data``), else ``$PURENET_DATA``, else (for a recorded run) the folder the
run was trained from if it still exists, else the download cache
(:func:`purenet.cache.cache_dir`). A folder given by the user is checked by content and
refused if a file is wrong, never changed; the cache is checked and repaired from the
mirrors (see :mod:`purenet.cache`).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from purenet.cache import cache_dir, ensure_cache
from purenet.data import DATA_ENV, HOW_TO_PROVIDE, Dataset, Split, load_dataset
from purenet.errors import DataError
from purenet.mirrors import DEFAULT_TIMEOUT, ProgressCallback
from purenet.mnist_files import check_content_hashes, check_folder


class Source(enum.Enum):
    """How a data folder was chosen; the value names it as a user would."""

    OPTION = "--data"
    ENV = f"${DATA_ENV}"
    RUN = "the folder the run was trained from"
    CACHE = "the download cache"


@attrs.frozen
class DataFolder:
    """A data folder and how it was chosen (the cache folder may not exist yet)."""

    path: Path
    source: Source

    @property
    def is_cache(self) -> bool:
        return self.source is Source.CACHE


def _existing_folder(path: str | Path, source: Source) -> Path:
    """``path`` with ``~`` expanded, if it is a folder.

    Raises:
        DataError: if it is not, saying how to fill it or give another.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        if source is Source.ENV:
            why = f" (from ${DATA_ENV}): run `purenet data download` to download MNIST into "
            why += f"it, unset {DATA_ENV} to use the download cache,"
        else:
            why = f": run `purenet data download --to {folder}` to download MNIST into it,"
        raise DataError(f"MNIST data folder {folder} does not exist{why} or {HOW_TO_PROVIDE}")
    return folder


def locate(option: Path | None = None, recorded: str | Path | None = None) -> DataFolder:
    """The data folder: ``option`` (``--data``), else ``$PURENET_DATA``, else ``recorded``
    (the folder a run was trained from) if it is still a folder, else the download cache.

    Raises:
        DataError: if ``option`` or ``$PURENET_DATA`` names no existing folder.
    """
    if option is not None:
        return DataFolder(_existing_folder(option, Source.OPTION), Source.OPTION)
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return DataFolder(_existing_folder(env, Source.ENV), Source.ENV)
    if recorded and Path(recorded).is_dir():
        return DataFolder(Path(recorded), Source.RUN)
    return DataFolder(cache_dir(), Source.CACHE)


def ready(
    where: DataFolder,
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
) -> Path:
    """The folder ``where``, ready to load.

    The cache is always checked, and repaired from the mirrors (see
    :func:`purenet.cache.ensure_cache`). Any other folder is checked, never changed: a
    wrong file is refused. With ``verify=False`` it is used as it is (the caller should
    warn loudly).

    Raises:
        DataError: one line naming the file (with expected and actual SHA-256) or, for the
            cache, what was tried and how to supply the files by hand.
    """
    if where.is_cache:
        return ensure_cache(mirrors, progress, timeout, deadline)
    if verify:
        check_folder(where.path)
    return where.path


def load_from(
    where: DataFolder,
    split: Split | str,
    seed: int,
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    verify: bool = True,
) -> Dataset:
    """Make ``where`` ready as :func:`ready` does, load the split, and check its content.

    A user's folder is checked through the hashes that loading computes anyway, so each
    file is decompressed once. ``verify=False`` skips that check (the cache is always
    checked).

    Raises:
        DataError: as :func:`ready` and :func:`purenet.data.load_dataset` do.
    """
    folder = ready(where, mirrors, progress, verify=False)
    dataset = load_dataset(folder, split, seed)
    if verify:
        check_content_hashes(folder, dataset.sha256)
    return dataset


def ensure_mnist(
    folder: Path | None = None,
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
) -> Path:
    """The folder of verified MNIST files: ``folder``, else ``$PURENET_DATA``, else the
    cache (:func:`locate`, then :func:`ready`)."""
    return ready(locate(folder), mirrors, progress, verify, timeout, deadline)
