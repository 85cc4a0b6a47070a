"""The project's own exceptions.

Every failure a user can cause (bad files, bad settings, a missing folder) raises a
subclass of :class:`PurenetError` whose message is one line that says what is wrong
and, where possible, how to fix it. The CLI prints that line and exits non-zero.
"""


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
