"""Bad options are one ``purenet: error:`` line in the user's words; help shows no
Python type names."""

from __future__ import annotations

import re

import pytest
from cli_helpers import run

from purenet_cli.usage import validation_words

# (command line, the one line purenet must print after "purenet: error: ")
BAD = [
    (
        ["train", "--hidden", "0"],
        "--hidden: must be one or more layer widths, each at least 1 (got 0)",
    ),
    (["train", "--hidden", "10,x"], "--hidden: must be layer widths separated by commas"),
    (["train", "--lr", "nan"], "--lr: must be a finite number, greater than 0 (got nan)"),
    (["train", "--epochs", "abc"], "--epochs: must be a whole number (got abc)"),
    (["train", "--split", "foo"], "--split: must be one of reference, standard (got foo)"),
    (["train", "--dropout", "1"], "--dropout: must be a finite number, at least 0 and less than 1"),
    (["train", "--keyframe-every", "0"], "--keyframe-every: must be at least 1 (got 0)"),
    (["train", "--live-every", "0"], "--live-every: must be at least 1 (got 0)"),
    (["train", "--patience", "3"], "--patience: early stopping needs a validation set"),
    (["train", "--no-such"], "no such option --no-such"),
    (["replay", "r", "--fps", "99"], "--fps: must be from 1 to 50 (got 99)"),
    (["replay", "r", "--stride", "0"], "--stride: must be at least 1 (got 0)"),
    (["replay", "r", "--animate", "a.png"], "--animate: a.png: the animation is a GIF"),
    (["evaluate", "r", "--epoch", "-1"], "--epoch: must be at least 0 (got -1)"),
    (["plot", "r", "--epoch", "x"], "--epoch: must be a whole number (got x)"),
    (["predict", "r"], "missing argument IMAGE"),
    (["runs", "a", "b"], "got unexpected extra argument"),
    (["data", "verify", "--data"], "option '--data' requires an argument"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_option_is_one_line_in_the_users_words_and_exit_2(tmp_path, args, expected):
    result = run(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"purenet: error: {expected}"), lines[0]
    for jargon in ("Usage:", "Invalid value", "Input should", "Value error", "Traceback"):
        assert jargon not in result.stderr


@pytest.mark.parametrize(
    "error, words",
    [
        (
            {"type": "greater_than_equal", "ctx": {"ge": 1}, "input": "0"},
            "must be at least 1 (got 0)",
        ),
        (
            {"type": "greater_than", "ctx": {"gt": 0}, "input": "0"},
            "must be greater than 0 (got 0)",
        ),
        (
            {"type": "less_than_equal", "ctx": {"le": 50}, "input": "99"},
            "must be at most 50 (got 99)",
        ),
        ({"type": "less_than", "ctx": {"lt": 1}, "input": "1"}, "must be less than 1 (got 1)"),
        (
            {"type": "int_parsing", "msg": "Input should be a valid integer", "input": "a"},
            "must be a whole number (got a)",
        ),
        ({"type": "float_parsing", "input": "x"}, "must be a number (got x)"),
        ({"type": "bool_parsing", "input": "maybe"}, "must be true or false (got maybe)"),
        (
            {"type": "enum", "ctx": {"expected": "'a' or 'b'"}, "input": "c"},
            "must be one of a or b (got c)",
        ),
        (
            {
                "type": "value_error",
                "msg": "Value error, 'foo' is not one of 'reference', 'standard'.",
                "input": "foo",
            },
            "must be one of reference, standard (got foo)",
        ),
        (
            {
                "type": "string_too_short",
                "msg": "Input should have at least 1 character",
                "input": "",
            },
            "Input should have at least 1 character (got '')",
        ),
        (
            {"type": "other", "msg": "Input should be shiny.", "input": "dull"},
            "must be shiny (got dull)",
        ),
    ],
)
def test_validation_words(error, words):
    assert validation_words(error) == words


COMMANDS = [[], ["train"], ["replay"], ["evaluate"], ["runs"], ["plot"], ["predict"], ["data"]]
COMMANDS += [["data", "download"], ["data", "verify"], ["data", "info"]]
TYPE_NAMES = re.compile(r"<(int|float|str|bool|path|dir|file)\b|list\[|Path\b|\brange>|x>=|x<=")


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "purenet")
def test_help_shows_no_python_type_names(tmp_path, command):
    result = run([*command, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: purenet" in result.stdout
    assert not TYPE_NAMES.search(result.stdout), TYPE_NAMES.search(result.stdout)
