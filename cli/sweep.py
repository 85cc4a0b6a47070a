"""``purenet sweep``: train a grid of settings, each combination a normal run folder, then
compare them.

The training options are ``purenet train``'s own (the same definitions, help and checks;
see :data:`SHARED`); ``--grid SETTING=V1,V2,...`` names the settings that vary. The grid
is checked whole before anything starts. The work is :func:`purenet.sweep.run_sweep`.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from purenet._engine.threads import default_workers, wide_blas_threads
from purenet.config import SETTING_NAMES
from purenet.data_folder import locate, ready
from purenet.grid import GridError, grid, option_name, parse_axis, run_names
from purenet.presets import preset_config
from purenet.runs import Run
from purenet.sweep import Event, plan, run_sweep, thread_budget, usable_cores

from .compare import report
from .data import download_progress, warn_unverified
from .progress import TrainingProgress
from .train import EXIT_INTERRUPTED, reported_errors, train_command
from .usage import at_least

# purenet train's options that a sweep shares: every setting, the preset, and how the
# runs are written and the data read.
SHARED = ("preset", *SETTING_NAMES, "data", "keyframe_every", "verify", "quiet")

GridOption = Annotated[
    list[str],
    typer.Option(
        "--grid",
        metavar="SETTING=V,V,...",
        help="A setting and the values to try, e.g. --grid lr=0.05,0.1,0.5; repeat it for "
        "more settings (every combination is trained: the first --grid varies slowest). "
        "Layer widths of several layers join with '-', e.g. --grid hidden=10,256-128. A "
        "setting in the grid cannot also be given as an option.",
    ),
]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        metavar="DIR",
        file_okay=False,
        help="Folder of the sweep: each run goes in DIR/<its settings>, e.g. "
        "DIR/lr=0.1,hidden=32, and the comparison figure in DIR/compare.png. Run the same "
        "command again to continue a sweep that was stopped.",
    ),
]
JobsOption = Annotated[
    Optional[int],  # noqa: UP045 (typer reads the annotation at run time)
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        callback=at_least(1),
        help="Runs trained at once on this machine, each in its own process with its share "
        "of the cores (PURENET_THREADS caps the total); at most the number of cores. "
        "[default: 1]",
        show_default=False,
    ),
]
SchedulerOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Train the runs as tasks on a Dask cluster, e.g. tcp://10.0.0.5:8786 (needs "
        "pip install 'purenet[cluster]'). --out must be a folder every worker sees at the "
        "same path; a worker lost mid-run is replaced and its run resumes from its last "
        "snapshot.",
    ),
]


def sweep_command(ctx: typer.Context, **options) -> None:
    """Train every combination of the --grid settings, then compare them.

    Each combination is a normal run folder under --out (what 'purenet train --out' would
    write, bit for bit), named by the settings that vary. The other options are shared by
    every run, as 'purenet train' takes them. Runs already finished are skipped and
    interrupted ones resumed, so the same command continues a sweep that was stopped (by
    Ctrl-C, or even kill -9). At the end it prints a table of the runs (final and best
    test accuracy, time, status) and writes DIR/compare.png with their curves overlaid.
    """
    given = {k: v for k, v in options.items() if k in SETTING_NAMES and v is not None}
    out: Path = options["out"]
    quiet: bool = options["quiet"]
    configs, names = _checked_grid(options["grid"], given, options["preset"])
    jobs = _checked_jobs(options["jobs"], options["scheduler"])
    with reported_errors():
        default_workers()  # a bad PURENET_THREADS (or PURENET_BLAS_THREADS) fails here
        wide_blas_threads()
        data = options["data"]
        if options["scheduler"] is None:
            where = locate(data)
            plan(configs, out, where.path, names)  # refuses a folder of other settings
            with download_progress(quiet) as downloading:  # once, before any run starts
                data = ready(where, progress=downloading, verify=options["verify"])
            if not options["verify"] and not where.is_cache:
                warn_unverified(where.path)
        else:  # the workers read it: --data (a folder they all see), else their own
            plan(configs, out, data, names)
    if not quiet:
        how = (
            f"on the Dask cluster at {options['scheduler']}"
            if options["scheduler"]
            else f"{_count(jobs, 'run')} at a time, {_count(thread_budget(jobs)[1], 'thread')} each"
        )
        typer.echo(f"sweep of {_count(len(configs), 'run')} into {out}, {how}", err=True)
    try:
        with reported_errors(), SweepProgress(len(configs), quiet) as progress:
            folders = run_sweep(
                configs,
                out,
                jobs=jobs,
                data=data,
                keyframe_every=options["keyframe_every"],
                verify=options["verify"] and options["scheduler"] is not None,
                scheduler=options["scheduler"],
                names=names,
                on_event=progress.update,
            )
    except KeyboardInterrupt:
        typer.echo(
            "purenet: sweep interrupted; every run is kept: run the same command again to "
            "continue it",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)  # not typer.Exit: see purenet_cli.app.run
    with reported_errors():
        compare(folders, out / "compare.png")


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def compare(folders: list[Path], figure: Path) -> None:
    """The table of the sweep's runs on stdout and their figure in ``figure``, as
    ``purenet compare`` reports them."""
    report([Run.open(folder) for folder in folders], figure, "table")


def _checked_grid(texts: list[str], given: dict, preset) -> tuple[list, list[str]]:
    """The configs and run names of the grid, or a usage error naming --grid (exit 2)."""
    try:
        axes: dict[str, list] = {}
        for text in texts:
            field, values = parse_axis(text)
            if field in axes:
                raise GridError(f"{option_name(field)} is in --grid twice; list its values once")
            if field in given:
                raise GridError(
                    f"{option_name(field)} is also given as --{option_name(field)}; leave "
                    "one of them out"
                )
            axes[field] = values
    except GridError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grid") from None
    with reported_errors():
        base = preset_config(preset, given)
    try:
        configs = grid(base, axes)
        return configs, run_names(configs, list(axes))
    except GridError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grid") from None


def _checked_jobs(jobs: int | None, scheduler: str | None) -> int:
    """The runs to train at once here: --jobs, capped at the cores with a warning."""
    if scheduler is not None:
        if jobs is not None:
            raise typer.BadParameter(
                "not with --scheduler: the Dask workers decide how many runs train at once",
                param_hint="--jobs",
            )
        return 1
    jobs = jobs or 1
    allowed, _ = thread_budget(jobs)
    if allowed < jobs:
        cores = usable_cores()
        typer.echo(
            f"purenet: warning: --jobs {jobs} is more than the {_count(cores, 'core')} this "
            f"process may use; training {_count(allowed, 'run')} at a time (more would only "
            "take turns on the cores)",
            err=True,
        )
    return allowed


class SweepProgress:
    """One display for the whole sweep on stderr: on a terminal, a bar of the runs done
    and a bar per run in progress; otherwise a line per run as it starts and ends."""

    def __init__(self, runs: int, quiet: bool, console: Console | None = None):
        self.mode = TrainingProgress.choose_mode(quiet)
        self.bars: dict[str, TaskID] = {}
        self.progress: Progress | None = None
        self.console = console or Console(stderr=True)
        if self.mode == "bar":
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[what]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.sweep = self.progress.add_task("sweep", total=runs, what="runs")

    def __enter__(self) -> SweepProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        elif self.mode == "lines":
            typer.echo(line, err=True)

    def update(self, event: Event) -> None:
        if self.mode == "off":
            return
        if event.kind == "skipped":
            self.say(f"{event.name}: already {event.status}, skipped")
            self._advance()
        elif event.kind == "started":
            if self.progress is not None and event.name not in self.bars:
                self.bars[event.name] = self.progress.add_task(
                    event.name, total=event.total, what="epochs"
                )
            elif self.mode == "lines":
                self.say(f"{event.name}: training")
        elif event.kind == "epoch" and self.progress is not None and event.name in self.bars:
            self.progress.update(self.bars[event.name], completed=event.epoch)
        elif event.kind == "waiting":
            self.say(
                f"{event.name}: another purenet process is writing this run; it is taken "
                "up last, once that process has ended"
            )
        elif event.kind == "ended":
            if self.progress is not None and event.name in self.bars:
                self.progress.remove_task(self.bars.pop(event.name))
            self.say(
                f"{event.name}: {event.status}" + (f" ({event.message})" if event.message else "")
            )
            self._advance()

    def _advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.sweep)


def _signature() -> inspect.Signature:
    """The command's parameters: purenet train's shared options (their definitions
    reused, so help, defaults and checks stay the same), then the sweep's own."""
    train = inspect.signature(train_command, eval_str=True).parameters
    keyword = inspect.Parameter.KEYWORD_ONLY

    def own(name: str, annotation, default=inspect.Parameter.empty) -> inspect.Parameter:
        return inspect.Parameter(name, keyword, annotation=annotation, default=default)

    return inspect.Signature(
        [
            own("ctx", typer.Context),
            own("grid", GridOption),
            own("out", OutOption),
            *(train[name].replace(kind=keyword) for name in SHARED),
            own("jobs", JobsOption, None),
            own("scheduler", SchedulerOption, None),
        ]
    )


sweep_command.__signature__ = _signature()
sweep_command.__annotations__ = {
    p.name: p.annotation for p in sweep_command.__signature__.parameters.values()
}
