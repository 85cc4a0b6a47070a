"""The project's own exceptions.

Every failure a user can cause (bad files, bad settings, a missing folder) raises a
subclass of :class:`PurenetError` whose message is one line that says what is wrong
and, where possible, how to fix it. The CLI prints that line and exits non-zero.
"""

import contextlib
import errno
import os
from collections.abc import Iterator


class PurenetError(Exception):
    """Base class of every error purenet raises on purpose."""


class DataError(PurenetError):
    """The MNIST files are missing, unreadable or malformed."""


class IdxFormatError(DataError):
    """A file is not a well-formed IDX file of the kind expected."""


class ConfigError(PurenetError, ValueError):
    """A training setting is out of range or inconsistent.

    ``field`` names the setting at fault (a :class:`purenet.config.Config` field), when
    there is one, so that a caller can point at the option that set it; ``problem`` is
    what is wrong with its value, in words that do not name it (``must be a whole
    number, at least 1 (got 0)``), for a caller that names the setting its own way.
    """

    def __init__(self, message: str, field: str | None = None, problem: str | None = None):
        super().__init__(message)
        self.field = field
        self.problem = problem if problem is not None else message


class FileError(PurenetError):
    """A file cannot be read safely: missing, not a regular file, larger than what it
    should hold, or malformed (see :mod:`purenet.reading`). The message names the file."""


class WriteError(PurenetError):
    """A file could not be written: a full disk, a read-only or missing folder, no right.

    ``errno`` is the operating system's error number, ``path`` the file.
    """

    def __init__(self, path, exc: OSError):
        self.path = path
        self.errno = exc.errno
        super().__init__(f"cannot write {path}: {_reason(path, exc)}")

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

    def remedy(self, folder) -> str:
        """What to do about it, for a file in ``folder``."""
        if self.disk_full:
            return "free some disk space"
        return f"make {folder} writable"


def _reason(path, exc: OSError) -> str:
    reasons = {
        errno.ENOSPC: "the disk is full (no space left on device)",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: f"folder {os.path.dirname(path) or '.'} does not exist",
    }
    return reasons.get(exc.errno, exc.strerror or str(exc))


@contextlib.contextmanager
def write_failures(path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into a :class:`WriteError`."""
    try:
        yield
    except OSError as exc:
        raise WriteError(path, exc) from None
