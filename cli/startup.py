"""What the ``purenet`` command does before anything else loads, and undoes after.

Kept free of heavy imports: it runs while NumPy and typer are still loading.
"""

from __future__ import annotations

import os
import sys

BACKEND_VARIABLE = "MPLBACKEND"
# Backends that every matplotlib has (they draw into files, not windows): taken back
# without loading matplotlib to check them, so MPLBACKEND=agg (common on servers and in
# CI) does not cost every command matplotlib's start-up.
FILE_BACKENDS = ("agg", "pdf", "ps", "svg", "template")

_refused_backend: list[tuple[str, str]] = []  # (name, why), when MPLBACKEND was refused


def set_aside_backend() -> str | None:
    """Take ``MPLBACKEND`` out of the environment before matplotlib loads, and return it.

    matplotlib refuses an unknown backend as it is imported, with a traceback, and the
    commands that draw import it (to write figures, which never need a backend): set
    aside, a bad name can only fail the commands that open a window (see
    :func:`refused_backend`).
    """
    return os.environ.pop(BACKEND_VARIABLE, None)


def restore_backend(name: str | None) -> None:
    """Give matplotlib the backend :func:`set_aside_backend` took, if it knows it; else
    remember it as refused. A file backend goes back into the environment, where
    matplotlib reads it when a command first draws; any other name is checked now, which
    loads matplotlib."""
    if name is None:
        return
    if not name.strip():  # matplotlib ignores an empty one too
        os.environ[BACKEND_VARIABLE] = name
        return
    if name.lower() in FILE_BACKENDS and "matplotlib" not in sys.modules:
        os.environ[BACKEND_VARIABLE] = name
        return
    import matplotlib
    from matplotlib import rcsetup

    try:
        rcsetup.validate_backend(name)
    except ValueError as exc:
        _refused_backend.append((name, str(exc)))
        return
    os.environ[BACKEND_VARIABLE] = name  # for child processes, as it was
    matplotlib.rcParams["backend"] = name


def refused_backend() -> str | None:
    """One line saying why ``MPLBACKEND`` was refused, or None when it was not."""
    if not _refused_backend:
        return None
    name, _ = _refused_backend[-1]
    return (
        f"{BACKEND_VARIABLE}={name!r} is not a matplotlib backend; unset it (purenet picks "
        "a window if there is a display, else writes live.png) or name one such as tkagg, "
        "qtagg or agg"
    )
