"""Settings declared once: a default, a line of help and the values allowed.

:func:`setting` and :func:`choice` declare an attrs field whose metadata holds a
:class:`Setting`; the field's validator checks each value against it and raises
:class:`~purenet.errors.ConfigError` naming the field. Whoever shows the settings (the
command line) reads the same :class:`Setting`, so help, bounds and checks cannot drift.
"""

from __future__ import annotations

import enum
import math
import reprlib
from typing import Final

import attrs

from purenet.errors import ConfigError

FULL_BATCH: Final = "full"  # the batch size of full-batch training: the whole training set


@attrs.frozen
class Interval:
    """The numbers from ``low`` to ``high``; an open end leaves its bound out."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low = f"{self.low:g}"
        if self.high == math.inf:
            return f"> {low}" if self.low_open else f">= {low}"
        opening, closing = "(["[not self.low_open], ")]"[not self.high_open]
        return f"in {opening}{low}, {self.high:g}{closing}"

    def words(self) -> str:
        """The interval in words: ``at least 1``, ``greater than 0``, ``from 0 to 8``,
        ``at least 0 and less than 1``."""
        low, high = f"{self.low:g}", f"{self.high:g}"
        above = f"greater than {low}" if self.low_open else f"at least {low}"
        if self.high == math.inf:
            return above
        if not self.low_open and not self.high_open:
            return f"from {low} to {high}"
        return f"{above} and {'less than' if self.high_open else 'at most'} {high}"


class Kind(enum.Enum):
    """What sort of value a setting takes."""

    WHOLE = "a whole number"
    NUMBER = "a finite number"
    CHOICE = "one of"
    FLAG = "true or false"
    WIDTHS = "one or more layer widths"
    BATCH = f"'{FULL_BATCH}' or a whole number"
    WHOLE_OR_NONE = "none or a whole number"


@attrs.frozen
class Setting:
    """What a user needs to know about a setting: what it does, what values it takes."""

    help: str
    kind: Kind
    bounds: Interval | None = None

    def allowed(self) -> str:
        """The values allowed, in words: e.g. ``a finite number, at least 0 and less than
        1`` or ``one or more layer widths, each at least 1``."""
        if self.bounds is None:
            return self.kind.value
        each = "each " if self.kind is Kind.WIDTHS else ""
        return f"{self.kind.value}, {each}{self.bounds.words()}"

    def describe(self) -> str:
        """The help, with the values allowed when they are not a list of choices (a setting
        that may be None is described by its other values)."""
        if self.kind in (Kind.CHOICE, Kind.FLAG):
            return self.help
        kind = Kind.WHOLE if self.kind is Kind.WHOLE_OR_NONE else self.kind
        return f"{self.help.rstrip('.')}; {attrs.evolve(self, kind=kind).allowed()}."


SETTING = "purenet.setting"  # attrs field metadata key

_short = reprlib.Repr()  # values in messages, cut short
_short.maxstring = _short.maxother = _short.maxlong = 60


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float (e.g. read from a crafted file)
        return False


def _valid(setting: Setting, value) -> bool:
    bounds = setting.bounds or Interval(-math.inf)
    if setting.kind is Kind.WHOLE:
        return _whole(value) and value in bounds
    if setting.kind is Kind.NUMBER:
        return _number(value) and value in bounds
    if setting.kind is Kind.FLAG:
        return isinstance(value, bool)
    if setting.kind is Kind.WIDTHS:
        return bool(value) and all(_whole(w) and w in bounds for w in value)
    if setting.kind is Kind.BATCH:
        return value == FULL_BATCH or (_whole(value) and value in bounds)
    if setting.kind is Kind.WHOLE_OR_NONE:
        return value is None or (_whole(value) and value in bounds)
    return True  # a choice: its converter has checked it


def _label(field: attrs.Attribute) -> str:
    return field.name.replace("_", " ")


def _shown(value) -> str:
    """A value as the user would have written it (layer widths comma-separated)."""
    if isinstance(value, (tuple, list)):
        text = ",".join(map(str, value))
        return text if len(text) <= 60 else text[:57] + "..."
    return _short.repr(value)  # cut short: a value may come from a crafted file


def refusal(field: attrs.Attribute, problem: str) -> ConfigError:
    """The error for a value of ``field``: ``<field> <problem>``, the field and the
    problem kept apart (see :class:`ConfigError`)."""
    return ConfigError(f"{_label(field)} {problem}", field.name, problem)


def _check(instance, field: attrs.Attribute, value) -> None:
    setting = field.metadata[SETTING]
    if not _valid(setting, value):
        raise refusal(field, f"must be {setting.allowed()} (got {_shown(value)})")


def _choice(enum_type: type[enum.Enum]) -> attrs.Converter:
    def convert(value, field: attrs.Attribute) -> enum.Enum:
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(c.value for c in enum_type)
            raise refusal(field, f"must be one of {allowed} (got {_shown(value)})") from None

    return attrs.Converter(convert, takes_field=True)


def widths_converter(value, field: attrs.Attribute) -> tuple:
    """Layer widths from a sequence, or from their comma-separated text (``"256,128"``)."""
    try:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(","))
        return tuple(value)
    except (TypeError, ValueError):
        raise refusal(
            field,
            f"must be layer widths separated by commas, e.g. 10 or 256,128 (got {value!r})",
        ) from None


def batch_size_converter(value, field: attrs.Attribute):
    """``'full'``, a whole number, or its text. (None is refused by the check that follows;
    config.json spells full batch ``null``, which only ``Config.from_json`` reads.)"""
    if isinstance(value, str) and value != FULL_BATCH:
        try:
            return int(value)
        except ValueError:
            setting = field.metadata[SETTING]
            raise refusal(field, f"must be {setting.allowed()} (got {value!r})") from None
    return value


def setting(default, help: str, kind: Kind, bounds: Interval | None = None, converter=None):
    """A :class:`Config` field: its default, and a :class:`Setting` that checks its values.
    ``converter`` (value, field) -> value, if given, runs first."""
    return attrs.field(
        default=default,
        converter=attrs.Converter(converter, takes_field=True) if converter else None,
        validator=_check,
        metadata={SETTING: Setting(help, kind, bounds)},
    )


def choice(enum_type: type[enum.Enum], default: enum.Enum, help: str):
    """A :class:`Config` field whose value is one of ``enum_type``'s (or its value)."""
    return attrs.field(
        default=default,
        converter=_choice(enum_type),
        metadata={SETTING: Setting(help, Kind.CHOICE)},
    )


AT_LEAST_0, AT_LEAST_1 = Interval(0), Interval(1)
FRACTION = Interval(0, 1, high_open=True)


def field_setting(record: type, name: str) -> Setting:
    """The :class:`Setting` of field ``name`` of the attrs class ``record``."""
    return attrs.fields_dict(record)[name].metadata[SETTING]
