"""One writer per run folder: a lock on the folder that the kernel drops when its holder dies.

The process that writes a run (``purenet train --out`` or ``--resume``) holds an
exclusive ``flock`` on the run folder itself from before its first write until it ends.
The kernel releases the lock however the process ends, ``kill -9`` included, so a lock is
never stale. A second writer finds the folder taken and is refused before it writes
anything. Readers never take the lock; :func:`being_written` only tries it (shared, without
waiting) to tell a run whose process is alive from one whose process died.

The lock is on the folder, not on a file in it, so it needs no write access and leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from purenet.errors import PurenetError

# A reader's probe holds the lock (shared) for microseconds; a writer that meets one retries
# for this long before it concludes that another writer holds the folder.
WRITER_WAIT_SECONDS = 1.0
_RETRY_SECONDS = 0.02

# (st_dev, st_ino) of the folders this process holds the writer lock of.
_held: set[tuple[int, int]] = set()


class FolderBusy(PurenetError):
    """Another process is writing the run folder."""


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _open_folder(folder: Path) -> int:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise PurenetError(f"run folder {folder} does not exist") from None
    except NotADirectoryError:
        raise PurenetError(f"{folder} is not a folder") from None
    except OSError as exc:
        raise PurenetError(f"cannot open run folder {folder}: {exc.strerror or exc}") from None


def _try_lock(fd: int, folder: Path, how: int) -> bool:
    """Take the lock ``how`` without waiting; False if another open file holds it."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # e.g. ENOLCK: a file system without locks
        raise PurenetError(
            f"cannot lock run folder {folder} ({exc.strerror or exc}); put the run on a "
            "local file system"
        ) from None
    return True


@contextlib.contextmanager
def writing(folder: Path, wait: float = WRITER_WAIT_SECONDS) -> Iterator[None]:
    """Hold the writer lock of ``folder`` (which must exist) for the body of the ``with``.

    Raises:
        FolderBusy: if another process holds it (after retrying for ``wait`` seconds).
        PurenetError: if the folder does not exist or cannot be locked.
    """
    folder = Path(folder)
    deadline = time.monotonic() + wait
    while True:
        fd = _open_folder(folder)
        try:
            if _try_lock(fd, folder, fcntl.LOCK_EX):
                # The folder may have been removed (and made again) while we waited:
                # the lock must be on the folder that the path names now.
                with contextlib.suppress(OSError):
                    if _identity(os.fstat(fd)) == _identity(os.stat(folder)):
                        break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if time.monotonic() >= deadline:
            raise FolderBusy(
                f"run folder {folder} is being written by another purenet process; "
                "wait for it to end, or write to another folder"
            )
        time.sleep(_RETRY_SECONDS)
    identity = _identity(os.fstat(fd))
    _held.add(identity)
    try:
        yield
    finally:
        _held.discard(identity)
        os.close(fd)  # releases the lock


def holds(folder: Path) -> bool:
    """Whether this process holds the writer lock of ``folder``."""
    try:
        return _identity(os.stat(folder)) in _held
    except OSError:
        return False


def being_written(folder: Path) -> bool:
    """Whether a live process (this one included) holds the writer lock of ``folder``.

    Never waits. False for a folder that cannot be opened or locked (no writer can hold it).
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        if _identity(os.fstat(fd)) in _held:
            return True
        try:
            return not _try_lock(fd, Path(folder), fcntl.LOCK_SH)
        except PurenetError:
            return False
    finally:
        os.close(fd)  # releases the shared lock, if it was taken
