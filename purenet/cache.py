"""Download folders: the cache, a folder of verified MNIST files that repairs itself, and
a user's folder that ``purenet data download --to DIR`` fills.

The cache is ``$XDG_CACHE_HOME/purenet/mnist`` (else ``~/.cache/purenet/mnist``). It is
checked each time it is used, and any file that is missing or damaged is downloaded again
from the mirrors (see :mod:`purenet.mirrors`). A user's folder only gets the files it
lacks: a file there with other content is refused, never replaced.

One process at a time downloads into a folder: it holds an OS lock on the folder (taken
by every use of the cache, released by the kernel however the process ends), so any
temporary download found there under the lock was left by a process that was killed,
and is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from purenet.data import find_file
from purenet.errors import DataError, IdxFormatError
from purenet.mirrors import (
    DEFAULT_TIMEOUT,
    PART_SUFFIX,
    ProgressCallback,
    fetch_from_mirrors,
    mirror_list,
)
from purenet.mnist_files import FILES, MnistFile, is_good, verify_file


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/purenet/mnist``, else ``~/.cache/purenet/mnist`` (not created)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "purenet" / "mnist"


def part_files(folder: Path) -> list[Path]:
    """The temporary downloads in ``folder`` (see :func:`purenet.atomic.atomic_path`)."""
    return sorted(folder.glob(f".*{PART_SUFFIX}"))


@contextlib.contextmanager
def downloading_into(folder: Path) -> Iterator[None]:
    """Be the one process that downloads into ``folder`` (waiting for another to finish),
    and remove the temporary downloads that killed processes left there.

    The lock is ``flock`` on the folder itself: no lock file to leave behind, and the
    kernel releases it when the process ends, even by ``kill -9``.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            leftovers = part_files(folder)
        except OSError:  # a file system without locks: no telling whose files they are
            leftovers = []
        for part in leftovers:
            with contextlib.suppress(OSError):  # a read-only folder keeps them
                part.unlink()
        yield
    finally:
        os.close(fd)  # releases the lock


def _repair_needed(cache: Path, spec: MnistFile) -> bool:
    """Whether ``spec`` must be downloaded; removes a bad raw copy that would shadow it."""
    raw = cache / spec.stem
    if raw.is_file():
        if is_good(raw, spec.key):
            return False
        raw.unlink()  # load_mnist prefers the raw file: a bad one must not hide a good .gz
    gz = cache / spec.gz_name
    return not (gz.is_file() and is_good(gz, spec.key))


def _missing_from(folder: Path, spec: MnistFile) -> bool:
    """Whether a user's ``folder`` lacks ``spec``.

    Raises:
        DataError: naming the file, if one is there with other content.
    """
    try:
        path = find_file(folder, spec.stem)
    except DataError:
        return True
    try:
        ok, actual = verify_file(path, spec.key)
    except IdxFormatError as exc:
        raise DataError(f"{exc}; remove it to download it again") from None
    if not ok:
        raise DataError(
            f"{path}: not the MNIST {spec.stem} file (content SHA-256 {actual}, expected "
            f"{spec.sha256}); remove it to download it again"
        )
    return False


def _fill(
    folder: Path,
    repair: bool,
    mirrors: Sequence[str] | None,
    progress: ProgressCallback | None,
    timeout: float,
    deadline: float | None,
) -> None:
    """Download into ``folder`` what it lacks (see :func:`ensure_cache`, :func:`fill_folder`).

    Raises:
        DataError: as they say; OSError if the folder cannot be made, read or written.
    """
    if not folder.is_dir():
        mirror_list(mirrors)  # a wrong mirror is refused before anything is made
        folder.mkdir(parents=True, exist_ok=True)
    with downloading_into(folder):
        needed = _repair_needed if repair else _missing_from
        pending = [spec for spec in FILES.values() if needed(folder, spec)]
        if not pending:
            return
        tried_mirrors = mirror_list(mirrors)
        unreachable: dict[str, str] = {}
        for spec in pending:
            fetch_from_mirrors(
                folder, spec, tried_mirrors, unreachable, progress, timeout, deadline
            )


def ensure_cache(
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
) -> Path:
    """Make the cache hold the four verified files; download what is missing or damaged.

    Args:
        mirrors: base URLs tried in order (see :func:`purenet.mirrors.mirror_list`).
        progress: called as ``progress(file_name, bytes_done, bytes_total_or_None)`` while
            a file downloads.
        timeout: seconds of silence from a mirror (connecting or reading) before moving on.
        deadline: seconds for one file from one mirror before moving on (default:
            :func:`purenet.mirrors.download_deadline`).

    Returns:
        The cache folder, ready for ``purenet.data.load_mnist``.

    Raises:
        DataError: one line, when every mirror failed for a file (saying what was tried
            and how to supply the files by hand) or the cache cannot be used.
    """
    cache = cache_dir()
    try:
        _fill(cache, True, mirrors, progress, timeout, deadline)
    except OSError as exc:
        raise DataError(f"cannot use the MNIST cache {cache}: {exc.strerror or exc}") from None
    return cache


def fill_folder(
    folder: Path,
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
) -> Path:
    """Download into a user's ``folder`` (made if missing) the MNIST files it lacks,
    verified; files already there are checked and kept, never replaced.

    Arguments as :func:`ensure_cache`'s.

    Raises:
        DataError: one line naming a file there that is not MNIST's, the folder if it
            cannot be made or written, or what was tried when every mirror failed.
    """
    folder = Path(folder).expanduser()
    try:
        _fill(folder, False, mirrors, progress, timeout, deadline)
    except OSError as exc:
        raise DataError(f"cannot download into {folder}: {exc.strerror or exc}") from None
    return folder
