"""The ``purenet`` command: a thin shell over the library.

This folder (``cli/``) is installed as the package ``purenet_cli``; its modules import
each other relatively, so they do not depend on that name. The console script's entry
point, :func:`purenet_cli.main.main`, imports this module only after it has made start-up
safe (see :mod:`purenet_cli.main`).

Bad arguments print one line ``purenet: error: --option: what is wrong (got VALUE)`` and
exit 2: click refuses what does not parse (reworded by :mod:`.usage`), and a value the
library's :class:`purenet.config.Config` refuses (``--lr nan``, say) is named through
:attr:`purenet.errors.ConfigError.field` (see ``train.reported_errors``). Failures at run
time print one line starting with ``purenet: error:`` to stderr and exit 1. Results go
to stdout, progress to stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer._click.exceptions import ClickException, UsageError

from purenet import __version__
from purenet.errors import PurenetError

from .compare import compare_command
from .data import data_app
from .plot import plot_command
from .predict import predict_command
from .runs import evaluate_command, replay_command, runs_command
from .sweep import sweep_command
from .train import EXIT_INTERRUPTED, train_command
from .usage import USAGE_EXIT, plain_help, usage_words

app = typer.Typer(
    name="purenet",
    help="A from-scratch NumPy network that learns to read handwritten digits (MNIST).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)
app.command("train")(train_command)
app.command("replay")(replay_command)
app.command("evaluate")(evaluate_command)
app.command("runs")(runs_command)
app.command("sweep")(sweep_command)
app.command("plot")(plot_command)
app.command("compare")(compare_command)
app.command("predict")(predict_command)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"purenet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A from-scratch NumPy network that learns to read handwritten digits (MNIST).

    Every result is a pure function of the settings and the seed: the same command gives
    bit-identical numbers, and any epoch of a run can be replayed exactly.
    """


def command():
    """The click command of :data:`app`, with help that shows no Python type names."""
    built = typer.main.get_command(app)
    plain_help(built)
    return built


def run() -> None:
    """Run the command line ``sys.argv`` names: every failure is one ``purenet: error:``
    line; a bad option (or argument) exits 2, naming it in the user's words."""
    try:
        code = command().main(prog_name="purenet", standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help
            exc.show()
            sys.exit(USAGE_EXIT)
        typer.echo(f"purenet: error: {usage_words(exc)}", err=True)
        sys.exit(USAGE_EXIT)
    except ClickException as exc:
        typer.echo(f"purenet: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("purenet: error: aborted", err=True)
        sys.exit(1)
    except PurenetError as exc:  # any library failure not caught nearer: one line, exit 1
        typer.echo(f"purenet: error: {exc}", err=True)
        sys.exit(1)
    if code == EXIT_INTERRUPTED:
        # typer turns Ctrl-C in a command into a silent exit 130: given back to
        # purenet_cli.main, which says it. Commands that say something of their own on
        # Ctrl-C (train, sweep) exit with SystemExit instead.
        raise KeyboardInterrupt
    sys.exit(code if isinstance(code, int) else 0)
