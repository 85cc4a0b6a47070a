"""A grid of settings: the Cartesian product of a few settings' values over a base config,
and the name of each combination's run folder.

Pure functions of their arguments. A grid is checked whole before anything trains: an
unknown setting, a value its setting refuses, an empty list or a value given twice raises
:class:`GridError` naming the setting.

```python
from purenet import Config
from purenet.grid import grid, run_name

axes = {"lr": [0.05, 0.1, 0.5], "hidden": [10, 32, 128]}
configs = grid(Config(epochs=30), axes)  # 9 configs, lr varying slowest
run_name(configs[1], axes)  # 'lr=0.05,hidden=32'
```
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Mapping, Sequence

import attrs

from purenet.config import SETTING_NAMES, Config, setting_of
from purenet.errors import ConfigError, PurenetError
from purenet.settings import FULL_BATCH, Kind

# Between a multi-layer width list's widths in a grid value (commas separate the values):
# hidden=10,256-128 is two networks, one with 10 hidden units, one with 256 then 128.
WIDTH_SEPARATOR = "-"
_FLAGS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
_SAFE = re.compile(r"[A-Za-z0-9._+-]+")  # what a value may be spelled with in a folder name


class GridError(PurenetError):
    """A grid that cannot be trained; the message names the setting at fault."""


def option_name(field: str) -> str:
    """A setting as its option spells it: ``batch_size`` -> ``batch-size``."""
    return field.replace("_", "-")


def setting_name(text: str) -> str:
    """The :class:`Config` field a grid names (``batch-size`` or ``batch_size``).

    Raises:
        GridError: for a name that is not a setting.
    """
    field = text.strip().replace("-", "_")
    if field not in SETTING_NAMES:
        known = ", ".join(option_name(n) for n in SETTING_NAMES)
        raise GridError(f"unknown setting {text.strip()!r} (the settings are: {known})")
    return field


def parse_value(field: str, text: str):
    """One value of setting ``field`` from its text in a grid, e.g. ``0.05``, ``relu``,
    ``full``, ``on``, ``256-128`` (the widths of two hidden layers).

    Raises:
        GridError: naming the setting and what it allows.
    """
    kind = setting_of(field).kind
    value = text.strip()
    try:
        if kind is Kind.WHOLE or (kind is Kind.WHOLE_OR_NONE and value.lower() != "none"):
            return int(value)
        if kind is Kind.WHOLE_OR_NONE:
            return None
        if kind is Kind.NUMBER:
            return float(value)
        if kind is Kind.FLAG:
            return _FLAGS[value.lower()]
        if kind is Kind.WIDTHS:
            return tuple(int(w) for w in value.split(WIDTH_SEPARATOR))
        if kind is Kind.BATCH:
            return FULL_BATCH if value == FULL_BATCH else int(value)
    except (ValueError, KeyError):
        allowed = setting_of(field).allowed()
        if kind is Kind.WIDTHS:
            allowed += f", several layers joined by {WIDTH_SEPARATOR!r} (e.g. 256-128)"
        elif kind is Kind.FLAG:
            allowed = "on or off"
        raise GridError(f"{option_name(field)}: {value!r} is not {allowed}") from None
    return value  # a choice: Config's converter checks it


def parse_axis(text: str) -> tuple[str, list]:
    """``SETTING=V1,V2,...`` (as ``--grid`` takes it) -> (field, values).

    Raises:
        GridError: for text without ``=``, an unknown setting, no value or a bad one.
    """
    name, equals, values = text.partition("=")
    if not equals or not name.strip():
        raise GridError(f"{text!r} is not SETTING=VALUE,VALUE,... (e.g. lr=0.05,0.1,0.5)")
    field = setting_name(name)
    parts = values.split(",")
    if not values.strip() or any(not p.strip() for p in parts):
        raise GridError(f"{option_name(field)}: an empty value in {text!r}; list one or more")
    return field, [parse_value(field, p) for p in parts]


def _evolved(base: Config, values: Mapping[str, object]) -> Config:
    try:
        return attrs.evolve(base, **values)
    except ConfigError as exc:
        shown = ",".join(f"{option_name(k)}={shown_value(v)}" for k, v in values.items())
        if exc.field in values and len(values) > 1:
            raise GridError(f"{option_name(exc.field)}: {exc.problem} (in {shown})") from None
        if exc.field in values:
            raise GridError(f"{option_name(exc.field)}: {exc.problem}") from None
        raise GridError(f"the combination {shown}: {exc}") from None


def grid(base: Config, axes: Mapping[str, Sequence]) -> list[Config]:
    """Every combination of ``axes`` (setting -> its values) applied to ``base``, the first
    setting varying slowest (as nested loops in the order given). ``axes`` may name a
    setting by its field (``batch_size``) or option (``batch-size``); values are what
    :class:`Config` takes, or their text.

    Raises:
        GridError: naming the setting, for an unknown setting, one named twice, an empty
            list, a value the setting refuses (alone or combined with the others), or
            the same value twice.
    """
    fields: dict[str, list] = {}
    for name, values in axes.items():
        field = setting_name(name)
        if field in fields:
            raise GridError(f"{option_name(field)} is in the grid twice; list its values once")
        values = list(values)
        if not values:
            raise GridError(f"{option_name(field)}: no values; list one or more")
        fields[field] = values
    for field, values in fields.items():  # each value as the config takes it, once
        seen: dict[object, object] = {}
        for value in values:
            kind = setting_of(field).kind
            if isinstance(value, str) and kind is not Kind.CHOICE:
                value = parse_value(field, value)
            elif kind is Kind.WIDTHS and isinstance(value, int):
                value = (value,)  # one hidden layer
            try:
                checked = getattr(_evolved(base, {field: value}), field)
            except GridError:  # maybe only with the base's other settings: see below
                checked = value
            if checked in seen:
                raise GridError(
                    f"{option_name(field)}: {shown_value(checked)} is given twice; "
                    "list each value once"
                )
            seen[checked] = None
        fields[field] = list(seen)
    return [
        _evolved(base, dict(zip(fields, combination, strict=True)))
        for combination in itertools.product(*fields.values())
    ]


def shown_value(value) -> str:
    """A setting's value as a grid (and a run's name) spells it: ``0.05``, ``256-128``,
    ``relu``, ``on``, ``none``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return WIDTH_SEPARATOR.join(map(str, value))
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def varying(configs: Sequence[Config]) -> list[str]:
    """The settings whose values differ among ``configs``, in :class:`Config`'s order."""
    return [n for n in SETTING_NAMES if len({getattr(c, n) for c in configs}) > 1]


def run_name(config: Config, fields: Sequence[str]) -> str:
    """The folder name of ``config``'s run in a sweep over ``fields``:
    ``lr=0.05,hidden=32``. Only letters, digits and ``._+-=,`` (safe on any file system);
    ``run`` when no setting varies."""
    if not fields:
        return "run"
    parts = []
    for name in fields:
        field = setting_name(name)
        value = shown_value(getattr(config, field))
        parts.append(f"{option_name(field)}={value if _SAFE.fullmatch(value) else '_'}")
    return ",".join(parts)


def run_names(configs: Sequence[Config], fields: Sequence[str] | None = None) -> list[str]:
    """The folder name of each config (:func:`run_name` over ``fields``, default the
    settings that vary among them).

    Raises:
        GridError: if two configs would share a name (the same config twice).
    """
    fields = varying(configs) if fields is None else list(fields)
    names = [run_name(c, fields) for c in configs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise GridError(f"two runs of the sweep have the same settings ({name})")
    return names
