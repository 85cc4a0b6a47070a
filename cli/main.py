"""The ``purenet`` console script's entry point: start-up without tracebacks.

This module imports nothing heavy, so what :func:`main` installs holds from the first
instants, while NumPy and typer load (matplotlib loads only in commands that draw):

- Ctrl-C while the command loads is one line and exit 130, as Ctrl-C in training is.
- SIGTERM raises :class:`Terminated` (a ``SystemExit``) in the main thread, so that the
  command unwinds: a download in progress removes its temporary file. Training turns
  SIGTERM into an interruption of its own (see ``purenet_cli.train``).
- A ``MPLBACKEND`` that matplotlib does not know is set aside (see
  :mod:`purenet_cli.startup`): ``--version``, ``--help`` and every command that only
  writes figures work; ``train --live`` says what is wrong in one line. Checking a
  name loads matplotlib, except for the file backends every matplotlib has (``agg``...).

The command itself is :mod:`purenet_cli.app`.
"""

from __future__ import annotations

import signal
import sys

from .startup import restore_backend, set_aside_backend

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(SystemExit):
    """SIGTERM arrived: unwind and exit 143."""


def _terminate(signum, frame) -> None:
    raise Terminated(EXIT_TERMINATED)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        backend = set_aside_backend()
        from .app import run

        restore_backend(backend)
        run()
    except KeyboardInterrupt:  # while loading, or in a command with nothing to add
        sys.stderr.write("purenet: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except Terminated:
        sys.stderr.write("purenet: terminated (SIGTERM)\n")
        sys.exit(EXIT_TERMINATED)


def __getattr__(name: str):
    if name == "app":  # the typer application, loaded on demand (tests use it)
        from .app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
