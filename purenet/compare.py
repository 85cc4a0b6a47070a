"""Runs side by side: the settings that tell them apart and one summary row per run.

The public API, shared by ``purenet compare``, ``purenet sweep`` and notebooks:

- :func:`expand` ``(paths) -> list[Run | (Path, RunError)]``: run folders and folders of
  runs to runs (the unreadable ones kept with their error);
- :func:`differing_settings` ``(configs) -> (common, per_run)`` and :func:`labels`
  ``(configs) -> list[str]`` (``lr=0.5, hidden=32``);
- :func:`summarise` ``(runs) -> list[Summary]``: a row per run, whatever its state;
- :func:`caveats` ``(summaries, runs) -> list[str]``: why some runs are not comparable;
- :func:`purenet.plot_compare.compare_figure` ``(runs) -> Figure``: the curves overlaid;
- ``purenet_cli.compare.report(runs, out, fmt)``: the table (or CSV, JSON) and the figure,
  exactly what ``purenet compare`` prints and writes.

Nothing here writes a file or takes a run's writer lock: a run that is training is read as
it is, and shown as running.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from purenet.config import SETTING_NAMES, Config
from purenet.errors import PurenetError
from purenet.history import Row
from purenet.runs import (
    CONFIG_FILE,
    FINISHED,
    INTERRUPTED,
    Run,
    RunError,
    last_sound_epoch,
    list_runs,
)

# The image formats of a comparison figure, by the suffix of its file name.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
EARLY_STOPPED = "early-stopped"
UNREADABLE = "unreadable"

Entry = Run | tuple[Path, PurenetError]
"""A run, or a folder that looks like one with the error that stops it being read."""


# -- which runs ------------------------------------------------------------------------------


def expand(paths: Iterable[Path]) -> list[Entry]:
    """The runs ``paths`` name, in order: a run folder (it has a config.json) is itself;
    any other folder stands for the runs directly under it (see
    :func:`purenet.runs.list_runs`), including those that cannot be read, as ``(folder,
    error)``. A run named twice (or by its folder and its parent) is kept once.

    Raises:
        RunError: for a path that does not exist, a named run that cannot be opened, or a
            folder that is not a run and holds none.
    """
    found: list[Entry] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise RunError(f"{path} {what}; give run folders or folders of runs")
        if (path / CONFIG_FILE).exists():
            entries: list[Entry] = [Run.open(path)]
        else:
            entries = list_runs(path)
            if not entries:
                raise RunError(f"{path} is not a run folder and holds no runs")
        for entry in entries:
            folder = entry.folder if isinstance(entry, Run) else entry[0]
            key = folder.resolve()
            if key not in seen:
                seen.add(key)
                found.append(entry)
    return found


# -- what differs ----------------------------------------------------------------------------


def setting_values(config: Config) -> dict[str, object]:
    """Every setting of ``config`` by field name, in :class:`Config`'s order."""
    return {name: getattr(config, name) for name in SETTING_NAMES}


def differing_settings(
    configs: Sequence[Config],
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Split the settings of ``configs`` into those all share and those that differ.

    Returns:
        ``(common, per_run)``: ``common`` maps each setting every config has the same
        value of to that value; ``per_run[i]`` maps each other setting to
        ``configs[i]``'s value. Every setting is in exactly one of the two; settings keep
        :class:`Config`'s order. With no configs, both are empty.
    """
    values = [setting_values(c) for c in configs]
    if not values:
        return {}, []
    differ = [name for name in SETTING_NAMES if any(v[name] != values[0][name] for v in values)]
    common = {name: value for name, value in values[0].items() if name not in differ}
    return common, [{name: v[name] for name in differ} for v in values]


def option_name(name: str) -> str:
    """A setting's name as the command line spells it (``batch_size`` -> ``batch-size``)."""
    return name.replace("_", "-")


def shown_value(value: object) -> str:
    """A setting's value in a label: short, and different for different values (a float
    is written with ``:g`` when that reads back exactly, else in full)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return "none" if value is None else str(value)


def json_value(value: object) -> object:
    """A setting's value as JSON holds it: a choice as its name, widths as a list,
    numbers, flags and None (no patience) as themselves, full batch as ``"full"``."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def label(settings: dict[str, object]) -> str:
    """``lr=0.5, hidden=32``: each setting as ``name=value`` (see :func:`shown_value`)."""
    return ", ".join(f"{option_name(k)}={shown_value(v)}" for k, v in settings.items())


def labels(configs: Sequence[Config]) -> list[str]:
    """A label per config naming what sets it apart from the others (empty when all are
    the same). Configs that differ get different labels."""
    return [label(settings) for settings in differing_settings(configs)[1]]


def common_words(common: dict[str, object]) -> str:
    """The settings all runs share, in a few words for a title: the network, optimizer,
    learning rate, batch, split, seed and epochs when shared, and any other shared setting
    that is not at its default (``784-10-10 relu, SGD, lr 0.1, full batch, reference
    split, seed 0, 300 epochs``). A setting that differs is left out."""
    defaults = setting_values(Config())
    network = []
    if "hidden" in common:
        network.append("784-" + "".join(f"{w}-" for w in common["hidden"]) + "10")
    if "activation" in common:
        network.append(shown_value(common["activation"]))
    words = [" ".join(network)] if network else []
    main = {"hidden", "activation", "optimizer", "lr", "batch_size", "split", "seed", "epochs"}
    if "optimizer" in common:
        words.append(
            {"sgd": "SGD", "momentum": "momentum", "adam": "Adam"}[common["optimizer"].value]
        )
    if "lr" in common:
        words.append(f"lr {shown_value(common['lr'])}")
    if "batch_size" in common:
        batch = common["batch_size"]
        words.append("full batch" if batch == defaults["batch_size"] else f"batch {batch}")
    for name, value in common.items():
        if name not in main and value != defaults[name]:
            words.append(f"{option_name(name)} {shown_value(value)}")
    if "split" in common:
        words.append(f"{shown_value(common['split'])} split")
    if "seed" in common:
        words.append(f"seed {common['seed']}")
    if "epochs" in common:
        words.append(f"{common['epochs']} epochs")
    return ", ".join(words)


# -- a row per run ---------------------------------------------------------------------------


@attrs.frozen
class Summary:
    """One run in a comparison. Epochs and accuracies are None where the run has none.

    ``final_*`` describe the run's result: its last sound epoch (the last recorded one,
    or after a divergence the one before it), or with early stopping the best validation
    epoch it kept. ``best_*`` is the highest test accuracy over its sound epochs (the
    earliest on ties): shown, not chosen on. ``seconds`` is the training time recorded in
    its metrics (the last row's). ``settings`` holds the settings that tell it apart from
    the other runs compared, ``label`` the same in words.
    """

    name: str
    folder: str
    status: str
    label: str = ""
    settings: dict = attrs.field(factory=dict)
    split: str | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None
    final_epoch: int | None = None
    final_test_acc: float | None = None
    final_test_loss: float | None = None
    best_epoch: int | None = None
    best_test_acc: float | None = None
    seconds: float | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict:
        """A JSON-ready dict: settings by their command-line names (see
        :func:`json_value`), numbers as numbers (NaN as null)."""
        value = attrs.asdict(self, recurse=False)
        value["settings"] = {option_name(k): json_value(v) for k, v in self.settings.items()}
        value["notes"] = list(self.notes)
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                value[key] = None
        return value


def _unreadable(folder: Path, error: PurenetError) -> Summary:
    return Summary(folder.name, str(folder), UNREADABLE, notes=(str(error),))


def _summary_of(run: Run, settings: dict[str, object]) -> Summary:
    """The summary of an opened run; raises PurenetError if its records cannot be read."""
    record = run.status()
    status = record["status"]
    rows = run.rows(tolerate_cut_last_line=True)  # a running run may be mid-line
    by_epoch = {row.epoch: row for row in rows}
    sound = last_sound_epoch(rows)
    notes = []
    final: Row | None = by_epoch.get(sound) if sound is not None else None
    if rows and sound != rows[-1].epoch:  # the row after the last sound one diverged
        bad = 0 if sound is None else sound + 1
        notes.append(
            f"loss diverged at epoch {bad}"
            + (f"; shown: epoch {sound}, the last sound one" if sound is not None else "")
        )
    if status == FINISHED and record.get("stopped_early"):
        status = EARLY_STOPPED
        if rows:
            notes.append(f"stopped early at epoch {rows[-1].epoch}")
    result = run.result_epoch()
    if result is not None and result in by_epoch:
        final = by_epoch[result]
        notes.append(f"result: epoch {result}, the best validation one")
    resume = f"purenet train --resume {run.folder}"
    if record.get("killed"):
        notes.append(f"killed while running; resume with: {resume}")
    elif status == INTERRUPTED:
        notes.append(f"resume with: {resume}")
    sound_rows = [row for row in rows if sound is not None and row.epoch <= sound]
    best = max(sound_rows, key=lambda r: r.test_acc, default=None)  # max keeps the first
    if best is not None and math.isnan(best.test_acc):
        best = None
    return Summary(
        name=run.name,
        folder=str(run.folder),
        status=status,
        label=label(settings),
        settings=settings,
        split=run.config.split.value,
        epochs_done=sound,
        epochs_planned=run.config.epochs,
        final_epoch=final.epoch if final else None,
        final_test_acc=final.test_acc if final else None,
        final_test_loss=final.test_loss if final else None,
        best_epoch=best.epoch if best else None,
        best_test_acc=best.test_acc if best else None,
        seconds=rows[-1].seconds if rows else None,
        notes=tuple(notes),
    )


def summarise(entries: Sequence[Entry]) -> list[Summary]:
    """A :class:`Summary` per entry, in order: every run is shown, whatever its state
    (finished, early-stopped, interrupted, running, diverged, or unreadable, with the
    error in its notes). Labels name what differs between the runs whose config was read.
    """
    runs = [e for e in entries if isinstance(e, Run)]
    _, per_run = differing_settings([r.config for r in runs])
    settings = {id(r): s for r, s in zip(runs, per_run, strict=True)}
    summaries = []
    for entry in entries:
        if not isinstance(entry, Run):
            summaries.append(_unreadable(*entry))
            continue
        try:
            summaries.append(_summary_of(entry, settings[id(entry)]))
        except PurenetError as exc:
            summaries.append(
                attrs.evolve(
                    _unreadable(entry.folder, exc),
                    label=label(settings[id(entry)]),
                    settings=settings[id(entry)],
                    split=entry.config.split.value,
                    epochs_planned=entry.config.epochs,
                )
            )
    return summaries


def caveats(summaries: Sequence[Summary], runs: Sequence[Entry] = ()) -> list[str]:
    """Why some of the runs compared cannot be compared fairly, one line each: they were
    tested on different splits (different test sets), or trained on different data files
    (pass the runs as ``runs`` for that check), or some could not be read."""
    lines = []
    splits: dict[str, list[str]] = {}
    for s in summaries:
        if s.split is not None:
            splits.setdefault(s.split, []).append(s.name)
    if len(splits) > 1:
        groups = "; ".join(f"{split}: {', '.join(names)}" for split, names in splits.items())
        lines.append(
            f"runs on different splits are not comparable, their test sets differ ({groups})"
        )
    hashes = {
        tuple(sorted(r.data_sha256.items())) for r in runs if isinstance(r, Run) and r.data_sha256
    }
    if len(hashes) > 1:
        lines.append("the runs were trained on different data files: they are not comparable")
    unreadable = [s.name for s in summaries if s.status == UNREADABLE]
    if unreadable:
        lines.append(f"cannot read {len(unreadable)} run(s): {', '.join(unreadable)} (see notes)")
    return lines
