"""``purenet compare``: runs side by side, a table and one figure.

:func:`report` is what the command prints and writes once it has its runs; ``purenet
sweep`` calls it at the end of a sweep, so the two show the same.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import attrs
import typer

from purenet.compare import (
    FIGURE_FORMATS,
    Entry,
    Summary,
    caveats,
    differing_settings,
    expand,
    json_value,
    option_name,
    shown_value,
    summarise,
)
from purenet.errors import PurenetError
from purenet.runs import Run

from .common import check_output, fail
from .runs import print_table

FORMATS = ("table", "csv", "json")
DEFAULT_FIGURE = Path("compare.png")
TABLE_COLUMNS = (
    "run", "settings", "status", "epochs", "final test acc", "best test acc", "best epoch",
    "time", "split", "notes",
)  # fmt: skip
CSV_COLUMNS = (
    "run", "folder", "label", "status", "split", "epochs_done", "epochs_planned",
    "final_epoch", "final_test_acc", "final_test_loss", "best_epoch", "best_test_acc",
    "seconds", "notes",
)  # fmt: skip


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2%}"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return (
        f"{minutes} min {rest:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


def table_cells(s: Summary) -> list[str]:
    """The cells of one run in the table (see :data:`TABLE_COLUMNS`)."""
    done = "-" if s.epochs_done is None else str(s.epochs_done)
    planned = "-" if s.epochs_planned is None else str(s.epochs_planned)
    final = _percent(s.final_test_acc)
    if s.final_epoch is not None and s.final_epoch != s.epochs_done:
        final += f" (epoch {s.final_epoch})"
    return [
        s.name,
        s.label or "-",
        s.status,
        f"{done}/{planned}",
        final,
        _percent(s.best_test_acc),
        "-" if s.best_epoch is None else str(s.best_epoch),
        _time(s.seconds),
        s.split or "-",
        "; ".join(s.notes),
    ]


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # reads back as the very number on record
    if isinstance(value, tuple):
        return "; ".join(value)
    return str(value)


def csv_text(summaries: Sequence[Summary]) -> str:
    """The summaries as CSV: :data:`CSV_COLUMNS`, then one column per differing setting
    (named as on the command line); floats written exactly, unknowns empty."""
    names = list(dict.fromkeys(k for s in summaries for k in s.settings))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *map(option_name, names)])
    for s in summaries:
        fields = {**attrs.asdict(s, recurse=False), "run": s.name}
        row = [_csv_value(fields[column]) for column in CSV_COLUMNS]
        shown = [shown_value(s.settings[n]) if n in s.settings else "" for n in names]
        writer.writerow([*row, *shown])
    return out.getvalue()


def json_text(summaries: Sequence[Summary], common: dict, notes: Sequence[str]) -> str:
    """The comparison as one JSON object: the settings all runs share, a record per run
    (see :meth:`purenet.compare.Summary.to_json`) and the warnings."""
    value = {
        "common": {option_name(k): json_value(v) for k, v in common.items()},
        "runs": [s.to_json() for s in summaries],
        "warnings": list(notes),
    }
    return json.dumps(value, indent=2) + "\n"


def report(runs: Sequence[Entry], out: Path | None, fmt: str = "table") -> None:
    """Print the comparison of ``runs`` on stdout as a table (``fmt`` "table"), CSV or
    JSON, its warnings on stderr, and write the figure to ``out`` (none if None).

    ``runs`` are :class:`purenet.runs.Run` objects, or ``(folder, error)`` pairs for
    folders that could not be read (as :func:`purenet.compare.expand` gives them).

    Raises:
        PurenetError: if the figure cannot be written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    summaries = summarise(runs)
    notes = caveats(summaries, runs)
    common, _ = differing_settings([r.config for r in runs if isinstance(r, Run)])
    if fmt == "csv":
        typer.echo(csv_text(summaries), nl=False)
    elif fmt == "json":
        typer.echo(json_text(summaries, common, notes), nl=False)
    else:
        print_table(
            TABLE_COLUMNS,
            [table_cells(s) for s in summaries],
            right={"epochs", "final test acc", "best test acc", "best epoch", "time"},
        )
    for line in notes:
        typer.echo(f"purenet: warning: {line}", err=True)
    if out is not None and not any(isinstance(r, Run) for r in runs):
        typer.echo("purenet: warning: no run could be read: no figure written", err=True)
    elif out is not None:
        from purenet.plot_compare import compare_figure, save_compare_figure  # loads matplotlib

        save_compare_figure(compare_figure(runs), out)
        typer.echo(f"figure written to {out}", err=fmt != "table")


def check_figure_name(value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() not in FIGURE_FORMATS:
        raise typer.BadParameter(
            f"{value}: the figure is written as PNG, SVG or PDF; give a name ending in "
            + ", ".join(FIGURE_FORMATS)
        )
    return value


def compare_command(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN",
            help="Run folders, or folders of runs (each run directly under one is compared).",
        ),
    ],
    out: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
        typer.Option(
            metavar="FILE",
            callback=check_figure_name,
            help=f"Write the figure here: .png, .svg or .pdf (default: {DEFAULT_FIGURE} in "
            "the current folder).",
        ),
    ] = None,
    no_figure: Annotated[
        bool, typer.Option("--no-figure", help="Write no figure, only the table.")
    ] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV instead of the table (floats exact).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of the table (floats exact).")
    ] = False,
) -> None:
    """Compare runs: their curves overlaid in one figure, and a table of each run's final
    and best test accuracy, epochs, training time and status.

    Each run is named by the settings that set it apart (lr=0.5, hidden=32); the settings
    all share go in the figure's title. Unfinished, diverged and early-stopped runs are
    shown and marked, never left out; runs on different splits are marked as not
    comparable. A run still training is read as it is.
    """
    if as_csv and as_json:
        raise typer.BadParameter("give --csv or --json, not both", param_hint="--csv")
    if no_figure and out is not None:
        raise typer.BadParameter("--out and --no-figure contradict each other", param_hint="--out")
    figure = None if no_figure else (out if out is not None else DEFAULT_FIGURE)
    try:
        if figure is not None:
            check_output(figure, "--out")
        found = expand(runs)
        report(found, figure, "csv" if as_csv else "json" if as_json else "table")
    except PurenetError as exc:
        raise fail(str(exc)) from None
