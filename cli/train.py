"""``purenet train``: train a network, or resume an interrupted run.

Each training setting is an option whose help, allowed values and default come from its
field of :class:`purenet.config.Config` (:func:`setting`); a value the library refuses is
a usage error naming the option of the field at fault.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from purenet._engine.threads import default_workers, wide_blas_threads
from purenet.config import SETTING_NAMES, Config, Optimizer, default_of, setting_of
from purenet.data import Dataset, Split
from purenet.errors import ConfigError, PurenetError, WriteError
from purenet.memory import check_memory
from purenet.optim import Schedule
from purenet.params import Activation, Init
from purenet.presets import PRESETS, Preset, describe, preset_config
from purenet.runlock import writing
from purenet.runner import Outcome, check_resumable, prepare_resume, record_training
from purenet.runs import (
    CONFIG_FILE,
    DEFAULT_KEYFRAME_EVERY,
    DIVERGED,
    INTERRUPTED,
    Run,
    RunError,
    check_no_run,
)
from purenet.settings import Kind
from purenet.train import TrainState

from .common import DataOption, fail, load_run_data
from .data import training_data
from .live import chain, live_view
from .progress import TrainingProgress
from .resume import differing_options, given_on_command_line, refusal
from .startup import refused_backend
from .usage import at_least

EXIT_INTERRUPTED = 130

# typer reads these annotations at run time, hence Optional (noqa: UP045)
MaybeInt = Optional[int]  # noqa: UP045
MaybeFloat = Optional[float]  # noqa: UP045
MaybeText = Optional[str]  # noqa: UP045
MaybeBool = Optional[bool]  # noqa: UP045


METAVARS = {  # what each kind of setting takes, as its help shows it
    Kind.WHOLE: "N",
    Kind.WHOLE_OR_NONE: "N",
    Kind.NUMBER: "X",
    Kind.WIDTHS: "N[,N...]",
    Kind.BATCH: "N|full",
}


def _shown(default) -> str:
    """A default as the help shows it."""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return str(getattr(default, "value", default))


def setting(name: str, *flags: str):
    """The typer option of :class:`Config` field ``name``: the field's help, allowed values
    and default. Left out, the option keeps the preset's value."""
    default = default_of(name)
    shown = "" if default is None else f"  [default: {_shown(default)}]"
    described = setting_of(name)
    return typer.Option(
        *flags,
        help=described.describe() + shown,
        show_default=False,
        metavar=METAVARS.get(described.kind),
    )


PRESET_HELP = "Starting settings; explicit options override them. " + "; ".join(
    f"{name}: {describe(name)}" for name in PRESETS
)


OutOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        help="Run folder to write (default: runs/<UTC time>).", metavar="DIR", file_okay=False
    ),
]
KeyframeEveryOption = Annotated[
    int,
    typer.Option(
        metavar="K",
        callback=at_least(1),
        help="Save the params every K epochs (and the first and last); at least 1.",
    ),
]
ResumeOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        help="Continue this interrupted run from its last snapshot, with its own "
        "settings: other options are refused unless they equal the run's, except --data, "
        "--quiet and --live. With --epochs larger than the run's, extend it (a finished "
        "run too), exactly as if it had been asked for that many epochs from the start; "
        "not with the cosine schedule, whose learning rates depend on the total.",
        metavar="RUN",
        file_okay=False,
    ),
]
VerifyOption = Annotated[
    bool,
    typer.Option(
        "--verify/--no-verify",
        help="Check that the data files are MNIST by the SHA-256 of their content. "
        "--no-verify uses a --data folder as it is, with a warning.",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
LiveOption = Annotated[
    bool,
    typer.Option(
        "--live",
        help="Redraw the training figure while training: in a window when a display "
        "is available, else by rewriting RUN/live.png (watch it in an image viewer).",
    ),
]
LiveEveryOption = Annotated[
    MaybeInt,
    typer.Option(
        metavar="N",
        callback=at_least(1),
        help="Epochs between --live redraws (default: about 100 per run); implies --live.",
    ),
]


def train_command(
    ctx: typer.Context,
    preset: Annotated[Preset, typer.Option(help=PRESET_HELP)] = Preset.REFERENCE,
    hidden: Annotated[MaybeText, setting("hidden")] = None,
    activation: Annotated[Optional[Activation], setting("activation")] = None,  # noqa: UP045
    init: Annotated[Optional[Init], setting("init")] = None,  # noqa: UP045
    epochs: Annotated[MaybeInt, setting("epochs")] = None,
    lr: Annotated[MaybeFloat, setting("lr")] = None,
    seed: Annotated[MaybeInt, setting("seed")] = None,
    split: Annotated[Optional[Split], setting("split")] = None,  # noqa: UP045
    batch_size: Annotated[MaybeText, setting("batch_size")] = None,
    optimizer: Annotated[Optional[Optimizer], setting("optimizer")] = None,  # noqa: UP045
    momentum: Annotated[MaybeFloat, setting("momentum")] = None,
    nesterov: Annotated[MaybeBool, setting("nesterov", "--nesterov/--no-nesterov")] = None,
    adam_beta1: Annotated[MaybeFloat, setting("adam_beta1")] = None,
    weight_decay: Annotated[MaybeFloat, setting("weight_decay")] = None,
    schedule: Annotated[Optional[Schedule], setting("schedule")] = None,  # noqa: UP045
    step_every: Annotated[MaybeInt, setting("step_every")] = None,
    step_gamma: Annotated[MaybeFloat, setting("step_gamma")] = None,
    dropout: Annotated[MaybeFloat, setting("dropout")] = None,
    shift: Annotated[MaybeInt, setting("shift")] = None,
    rotate: Annotated[MaybeFloat, setting("rotate")] = None,
    scale: Annotated[MaybeFloat, setting("scale")] = None,
    elastic_alpha: Annotated[MaybeFloat, setting("elastic_alpha")] = None,
    elastic_sigma: Annotated[MaybeFloat, setting("elastic_sigma")] = None,
    validation: Annotated[MaybeInt, setting("validation")] = None,
    patience: Annotated[MaybeInt, setting("patience")] = None,
    data: DataOption = None,
    out: OutOption = None,
    keyframe_every: KeyframeEveryOption = DEFAULT_KEYFRAME_EVERY,
    resume: ResumeOption = None,
    verify: VerifyOption = True,
    quiet: QuietOption = False,
    live: LiveOption = False,
    live_every: LiveEveryOption = None,
) -> None:
    """Train a network on MNIST, recording every epoch in a run folder.

    The defaults (--preset reference, each option shows its own) are the reference
    experiment: one small hidden ReLU layer trained by full-batch gradient descent.
    --preset fast and --preset best go much further (about 98% and 99% on the standard
    test set), and --preset record, with elastic distortions, about 99.4% in about ten
    minutes of CPU time. The run folder gets config.json, metrics.csv (a row per epoch),
    snapshots/ (params every K epochs), figure.png and status.json. It uses every core;
    PURENET_THREADS=N caps that (the results are the same).
    """
    given = {k: v for k, v in ctx.params.items() if k in SETTING_NAMES and v is not None}
    # The run folder's writer lock is held from before anything is read or written there
    # until this process ends (see purenet.runlock).
    with contextlib.ExitStack() as held:
        with reported_errors():
            default_workers()  # a bad PURENET_THREADS (or PURENET_BLAS_THREADS) fails here,
            wide_blas_threads()  # before any work
            if live and (why := refused_backend()) is not None:
                raise PurenetError(why)  # a bad MPLBACKEND, likewise
            if resume is not None:
                held.enter_context(writing(resume))
                run, dataset, start, seconds = resumed_run(ctx, resume, data)
            else:
                config = preset_config(preset, given)
                folder, made = new_run_folder(out)
                held.enter_context(writing(folder))  # refused: the folder is another's
                try:
                    run, dataset = new_run(config, data, folder, keyframe_every, verify, quiet)
                except BaseException:
                    if made:  # leave no empty folder behind
                        with contextlib.suppress(OSError):
                            folder.rmdir()
                    raise
                start, seconds = None, 0.0
        if not quiet:
            announce(run, dataset, start, resume is not None)
        with terminating_as_interrupt(), reported_errors():
            outcome = train_on_terminal(run, dataset, start, seconds, quiet, live, live_every)
        report(run, outcome)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """A setting the library refuses is a usage error (exit 2) naming its option; any
    other purenet error is one line on stderr and exit 1."""
    try:
        yield
    except ConfigError as exc:
        if exc.field is None:
            raise fail(str(exc)) from None
        option = f"--{exc.field.replace('_', '-')}"
        raise typer.BadParameter(exc.problem, param_hint=option) from None
    except PurenetError as exc:
        raise fail(str(exc)) from None


def default_run_folder() -> Path:
    """A new, empty ``runs/<UTC time>``, made here (with a number added if that folder
    exists: two runs started in the same second get a folder each)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    parent = Path("runs")
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create folder {parent}: {exc.strerror or exc}") from None
    n = 1
    while True:
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1
        except OSError as exc:
            raise RunError(f"cannot create run folder {folder}: {exc.strerror or exc}") from None


def new_run_folder(out: Path | None) -> tuple[Path, bool]:
    """The folder of a new run (``out``, else :func:`default_run_folder`), made if it was
    missing, and whether this call made it."""
    if out is None:
        return default_run_folder(), True
    try:
        out.mkdir(parents=True)
        return out, True
    except FileExistsError:
        if not out.is_dir():
            raise RunError(f"--out {out} is a file; pass a folder") from None
        return out, False
    except OSError as exc:
        raise RunError(f"cannot create run folder {out}: {exc.strerror or exc}") from None


def new_run(
    config: Config,
    data: Path | None,
    folder: Path,
    keyframe_every: int,
    verify: bool,
    quiet: bool,
) -> tuple[Run, Dataset]:
    """A new run in ``folder`` (whose writer lock this process holds) for ``config``, and
    its data (checked to fit the settings). Nothing is written before the data is loaded."""
    check_no_run(folder)
    data_folder, dataset = training_data(data, config.split, config.seed, quiet, verify)
    config.check_fits(len(dataset.y_train))
    check_memory(config, len(dataset.y_train))
    try:
        run = Run.create(folder, config, dataset.sha256, data_folder, keyframe_every)
    except WriteError as exc:
        raise RunError(f"{exc}; {exc.remedy(folder)} and train again") from None
    return run, dataset


def resumed_run(
    ctx: typer.Context, folder: Path, data: Path | None
) -> tuple[Run, Dataset, TrainState | None, float]:
    """An interrupted run (or a finished one extended by --epochs), whose writer lock this
    process holds, its data, the state to resume from (None: from the start) and the
    seconds on record. Options that contradict the run's own settings are refused by name
    (exit 2)."""
    if not (folder / CONFIG_FILE).exists():
        raise RunError(
            f"{folder} holds no run to resume: it was stopped before its settings were "
            f"saved; start it again with: purenet train --out {folder} (and its options)"
        )
    run = Run.open(folder)
    differing = differing_options(ctx, run, folder)
    if differing:
        raise fail(refusal(differing, folder), 2)
    epochs = ctx.params["epochs"] if "epochs" in given_on_command_line(ctx) else None
    check_resumable(run, epochs)  # before the data is loaded: a refusal is quick
    dataset = load_run_data(run, data)  # before prepare_resume changes anything
    run.check_data(dataset)
    check_memory(run.config, len(dataset.y_train))
    try:
        start, seconds = prepare_resume(run, epochs)
    except WriteError as exc:
        raise RunError(
            f"{exc}; nothing recorded is lost: {exc.remedy(folder)}, then resume it again"
        ) from None
    return run, dataset, start, seconds


def announce(run: Run, dataset: Dataset, start: TrainState | None, resuming: bool) -> None:
    if start is not None:
        what = f"resuming {run.folder} at epoch {start.epoch} of {run.config.epochs}"
    elif resuming:
        what = f"resuming {run.folder} from the start (it stopped before its first snapshot)"
    else:
        what = f"run folder {run.folder}"
    typer.echo(
        f"training {'-'.join(map(str, run.config.sizes))} on {len(dataset.y_train)} images, "
        f"testing on {len(dataset.y_test)}; {what}",
        err=True,
    )


@contextlib.contextmanager
def terminating_as_interrupt() -> Iterator[None]:
    """SIGTERM ends training as Ctrl-C does (keeping a snapshot to resume from)."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_on_terminal(
    run: Run,
    dataset: Dataset,
    start: TrainState | None,
    seconds: float,
    quiet: bool,
    live: bool,
    live_every: int | None,
) -> Outcome:
    """:func:`record_training`, showing progress on stderr and, with ``live``, the figure."""
    config = run.config
    every = live_every or max(1, config.epochs // 100)
    live = live or live_every is not None  # --live-every N implies --live
    # where the live figure is goes to stderr even with --quiet: it was asked for
    notify = lambda message: typer.echo(message, err=True)  # noqa: E731
    first = start.epoch if start else 0
    mode = TrainingProgress.choose_mode(quiet)
    with (
        live_view(run.folder, every, live, notify) as show_live,
        TrainingProgress(config.epochs, first, mode) as progress,
    ):
        return record_training(run, dataset, start, seconds, chain(progress.update, show_live))


def report(run: Run, outcome: Outcome) -> None:
    """Tell the user how the session ended and exit with the matching code."""
    last = outcome.last
    if outcome.status == DIVERGED:
        row = outcome.bad_row
        kept = f"params of epoch {last.epoch}" if last else "no params"
        raise fail(
            f"training diverged: the loss became {row.train_loss} at epoch {row.epoch} "
            f"(try a smaller --lr); {kept} and all metrics kept in {run.folder}"
        )
    if outcome.status == INTERRUPTED:
        when = f"after epoch {last.epoch}" if last is not None else "before its first epoch"
        typer.echo(
            f"purenet: interrupted {when}; resume with: purenet train --resume {run.folder}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)  # not typer.Exit: see purenet_cli.app.run
    if outcome.best_epoch is not None:
        stopped = " stopped early;" if outcome.stopped_early else ""
        best = run.rows()[outcome.best_epoch].valid_acc
        kept = (
            "kept as the run's result"
            if outcome.result_epoch is not None
            else f"replay it with: purenet replay {run.folder} --epoch {outcome.best_epoch}"
        )
        typer.echo(
            f"validation:{stopped} best accuracy {best:.2%} at epoch {outcome.best_epoch} ({kept})",
            err=True,
        )
    if outcome.result_epoch is not None and outcome.result_epoch != last.epoch:
        row = run.rows()[outcome.result_epoch]
        typer.echo(
            f"epoch {row.epoch} (the best validation epoch; training ran to epoch "
            f"{last.epoch}): train loss {row.train_loss:.4f}, train accuracy "
            f"{row.train_acc:.2%}, test accuracy {row.test_acc:.2%} ({outcome.seconds:.1f} s); "
            f"results in {run.folder}"
        )
        return
    typer.echo(
        f"epoch {last.epoch}: train loss {last.train.loss:.4f}, "
        f"train accuracy {last.train.accuracy:.2%}, test accuracy {last.test.accuracy:.2%} "
        f"({outcome.seconds:.1f} s); results in {run.folder}"
    )
