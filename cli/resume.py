"""``purenet train --resume``: a resumed run keeps its own settings.

Options given on the command line with ``--resume`` must agree with the run's record,
or the command refuses them by name: a run continues exactly as it was asked for, or
not at all. ``--epochs`` may be larger than the run's, to extend it (see
:func:`purenet.runner.prepare_resume`). Options that only choose how training is shown
or where the data is read from are free.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import typer

from purenet.config import SETTING_NAMES, Config
from purenet.errors import ConfigError
from purenet.presets import preset_config
from purenet.runs import Run

# What changes neither what is learned nor what is recorded.
FREE_ON_RESUME = frozenset({"resume", "data", "quiet", "live", "live_every"})


def given_on_command_line(ctx: typer.Context) -> set[str]:
    """The names of the parameters the user gave (not left to their defaults)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.add(name)
    return given


def shown(value) -> str:
    """A setting's value as an option takes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    return str(getattr(value, "value", value))


def _flag(ctx: typer.Context, name: str) -> str:
    """The option's name as the user would type it, e.g. ``--batch-size``."""
    for param in ctx.command.params:
        if param.name == name:
            value = ctx.params[name]
            if value is False and param.secondary_opts:
                return param.secondary_opts[0]
            return param.opts[0]
    return "--" + name.replace("_", "-")


def _setting_differs(config: Config, name: str, value) -> bool:
    """Whether option value ``value`` of setting ``name`` differs from ``config``'s."""
    try:
        return getattr(attrs.evolve(config, **{name: value}), name) != getattr(config, name)
    except ConfigError:
        return True  # not a value the run could have had


def differing_options(ctx: typer.Context, run: Run, resume: Path) -> list[str]:
    """Each option given with ``--resume`` that the run's record contradicts, as
    ``--option value (the run's: value)``; ``--epochs`` is left to
    :func:`purenet.runner.prepare_resume`."""
    params = ctx.params
    given = given_on_command_line(ctx) - FREE_ON_RESUME - {"epochs"}
    config = run.config
    differing = []
    for name in sorted(given & set(SETTING_NAMES), key=SETTING_NAMES.index):
        value = params[name]
        if _setting_differs(config, name, value):
            flag = (
                _flag(ctx, name)
                if isinstance(value, bool)
                else f"{_flag(ctx, name)} {shown(value)}"
            )
            differing.append(f"{flag} (the run's: {shown(getattr(config, name))})")
    if "preset" in given:
        settings = {n: params[n] for n in given & set(SETTING_NAMES)}
        preset = params["preset"]
        try:
            wanted = attrs.evolve(preset_config(preset, settings), epochs=config.epochs)
        except ConfigError:
            wanted = None
        if wanted != config:
            fields = [
                n.replace("_", "-")
                for n in SETTING_NAMES
                if n != "epochs" and (wanted is None or getattr(wanted, n) != getattr(config, n))
            ]
            differing.append(
                f"--preset {shown(preset)} (it differs from the run in: {', '.join(fields)})"
            )
    if "keyframe_every" in given and params["keyframe_every"] != run.keyframe_every:
        differing.append(
            f"--keyframe-every {params['keyframe_every']} (the run's: {run.keyframe_every})"
        )
    if "out" in given and Path(params["out"]).resolve() != Path(resume).resolve():
        differing.append(f"--out {params['out']} (a resumed run stays in {resume})")
    if "verify" in given and not params["verify"]:
        differing.append(
            "--no-verify (a resumed run checks its data against the hashes it recorded)"
        )
    return differing


def refusal(differing: list[str], resume: Path) -> str:
    """The one line that refuses ``differing`` options."""
    return (
        f"--resume continues run {resume} with its own settings, and "
        f"{'this option differs' if len(differing) == 1 else 'these options differ'} "
        f"from them: {'; '.join(differing)}. Leave {'it' if len(differing) == 1 else 'them'} "
        "out, or train a new run"
    )
