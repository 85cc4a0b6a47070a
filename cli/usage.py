"""Bad options and help in the user's words.

Click (inside typer) reports a bad option with a three-line usage block and, in typer's
newer versions, the wording of the validation library typer uses ("Input should be
greater than or equal to 1"); its help shows Python type names (``<list[Path]>``, ``<int
range>``). Here a usage error becomes one line, ``purenet: error: --hidden: must be ...
(got 0)``, and the help shows each value's metavar (``N``, ``DIR``) and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import typer

USAGE_EXIT = 2


def _shown(value) -> str:
    """What the user typed, as the error quotes it: bare unless empty or spaced."""
    text = str(value)
    return text if text and not any(c.isspace() for c in text) else repr(text)


def _choices(text: str) -> str | None:
    """``'foo' is not one of 'a', 'b'.`` -> ``one of a, b``; None for other texts."""
    match = re.fullmatch(r"'?(.*?)'? is not one of (.*?)\.?", text)
    if match is None:
        return None
    return "one of " + ", ".join(c.strip().strip("'\"") for c in match[2].split(","))


def validation_words(error: dict) -> str:
    """One validation error of the library typer validates with (a dict with ``type``,
    ``msg``, ``input`` and maybe ``ctx``, as pydantic's ``errors()`` gives them) in
    purenet's words: ``must be at least 1 (got 0)``."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds and bounds[kind][1] in ctx:
        words, key = bounds[kind]
        problem = f"must be {words} {ctx[key]}"
    elif kind.startswith("int_"):
        problem = "must be a whole number"
    elif kind.startswith("float_") or kind == "finite_number":
        problem = "must be a number"
    elif kind.startswith("bool_"):
        problem = "must be true or false"
    elif kind in ("enum", "literal_error") and "expected" in ctx:
        problem = f"must be one of {ctx['expected']}".replace("'", "")
    else:
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        choices = _choices(message)
        if choices is not None:
            problem = f"must be {choices}"
        else:
            problem = re.sub(r"^Input should be", "must be", message).rstrip(".")
    if "input" in error:
        problem += f" (got {_shown(error['input'])})"
    return problem


def _name(param) -> str:
    """How the user names a parameter: its long option, or an argument's metavar."""
    opts = getattr(param, "opts", None) or []
    if getattr(param, "param_type_name", "") == "option" and opts:
        return max(opts, key=len)
    return getattr(param, "metavar", None) or (param.name or "").upper()


def _first_lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def usage_words(exc) -> str:
    """A click usage error (``typer``'s ``UsageError`` and its kinds) as one line in the
    user's words, without the ``purenet: error:`` prefix."""
    kind = type(exc).__name__
    param = getattr(exc, "param", None)
    hint = getattr(exc, "param_hint", None)
    if hint is not None:
        hint = hint if isinstance(hint, str) else " / ".join(hint)
        hint = hint.strip("'\"")
    elif param is not None:
        hint = _name(param)
    if kind == "MissingParameter":
        what = getattr(param, "param_type_name", "value")
        return f"missing {what} {hint}" if hint else "a required value is missing"
    if kind == "NoSuchOption":
        possible = getattr(exc, "possibilities", None)
        unknown = getattr(exc, "option_name", "")
        guess = f" (did you mean {', '.join(sorted(possible))}?)" if possible else ""
        return f"no such option {unknown}{guess}"
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            problem = validation_words(errors(include_url=False)[0])
        except Exception:  # another validation library or version: keep its message
            problem = _first_lower(str(exc.message))
    else:
        problem = _first_lower(str(exc.message)).rstrip(".")
    return f"{hint}: {problem}" if hint else problem


def at_least(low: int) -> Callable:
    """An option callback refusing a number below ``low`` in purenet's words (instead of
    typer's ``min=``, whose help and message are the validation library's)."""

    def check(value):
        if value is not None and value < low:
            raise typer.BadParameter(f"must be at least {low} (got {value})")
        return value

    return check


def within(low: int, high: int) -> Callable:
    """An option callback refusing a number outside ``low..high`` in purenet's words."""

    def check(value):
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be from {low} to {high} (got {value})")
        return value

    return check


def plain_help(command) -> None:
    """Show no Python type after an argument's name in ``command``'s help and its
    subcommands' (typer >= 0.20 writes ``IMAGE <list[Path]>``; the metavar and the
    help say what to give)."""
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "argument" and hasattr(
            param, "display_type_rich"
        ):
            param.display_type_rich = lambda ctx: None
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
