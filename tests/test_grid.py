"""A grid of settings: the Cartesian product, refusals naming the setting, run names."""

from __future__ import annotations

import re

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from purenet.config import SETTING_NAMES, Config
from purenet.grid import GridError, grid, parse_axis, parse_value, run_name, run_names
from purenet.sweep import thread_budget

BASE = Config(epochs=30)


def test_the_issue_example_is_nine_runs_the_first_setting_varying_slowest():
    axes = {"lr": [0.05, 0.1, 0.5], "hidden": [10, 32, 128]}
    configs = grid(BASE, axes)
    assert [(c.lr, c.hidden) for c in configs] == [
        (lr, (h,)) for lr in (0.05, 0.1, 0.5) for h in (10, 32, 128)
    ]
    assert all(attrs.evolve(c, lr=0.1, hidden=(10,)) == BASE for c in configs)
    assert run_names(configs, list(axes))[1] == "lr=0.05,hidden=32"


def test_values_from_text_take_each_kind_of_setting():
    axes = dict(
        [
            parse_axis("lr=0.05,1e-3"),
            parse_axis("hidden=10,256-128"),
            parse_axis("batch-size=full,32"),
            parse_axis("nesterov=on,off"),
            parse_axis("activation=relu,tanh"),
        ]
    )
    configs = grid(BASE, axes)
    assert len(configs) == 32
    assert {c.hidden for c in configs} == {(10,), (256, 128)}
    assert {c.batch_size for c in configs} == {"full", 32}
    assert {c.nesterov for c in configs} == {True, False}
    names = run_names(configs, list(axes))
    assert "lr=0.001,hidden=256-128,batch-size=full,nesterov=on,activation=tanh" in names


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"foo": [1]}, "unknown setting 'foo'"),
        ({"lr": []}, "lr: no values"),
        ({"lr": [0.1, 0.10]}, "lr: 0.1 is given twice"),
        ({"lr": ["0.1", 0.1]}, "lr: 0.1 is given twice"),
        ({"lr": [-1.0]}, "lr: must be a finite number, greater than 0 (got -1.0)"),
        ({"lr": [float("nan")]}, "lr: must be a finite number"),
        ({"lr": ["x"]}, "lr: 'x' is not a finite number, greater than 0"),
        ({"hidden": ["10,20"]}, "hidden: '10,20' is not one or more layer widths"),
        ({"hidden": [0]}, "hidden: must be one or more layer widths, each at least 1"),
        ({"activation": ["relu", "foo"]}, "activation: must be one of relu, tanh, sigmoid"),
        ({"lr": [0.1], "lr ": [0.2]}, "lr is in the grid twice"),
        ({"batch_size": [1], "batch-size": [2]}, "batch-size is in the grid twice"),
        ({"patience": [3]}, "patience: early stopping needs a validation set"),
    ],
)
def test_a_bad_grid_is_refused_naming_the_setting(axes, message):
    with pytest.raises(GridError, match=re.escape(message)):
        grid(BASE, axes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr", "'lr' is not SETTING=VALUE"),
        ("=1", "'=1' is not SETTING=VALUE"),
        ("lr=", "lr: an empty value"),
        ("lr=0.1,,0.2", "lr: an empty value"),
        ("nesterov=maybe", "nesterov: 'maybe' is not on or off"),
        ("epochs=1.5", "epochs: '1.5' is not a whole number"),
    ],
)
def test_a_bad_axis_text_is_refused_naming_the_setting(text, message):
    with pytest.raises(GridError, match=re.escape(message)):
        parse_axis(text)


def test_a_combination_the_config_refuses_is_named_whole():
    with pytest.raises(GridError, match=r"patience: .* \(in validation=0,patience=2\)"):
        grid(BASE, {"validation": [0, 100], "patience": [2]})
    assert len(grid(BASE, {"validation": [100, 200], "patience": [2, 3]})) == 4


@given(
    lrs=st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=4, unique=True),
    hidden=st.lists(
        st.lists(st.integers(1, 999), min_size=1, max_size=3).map(tuple),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    seeds=st.lists(st.integers(0, 2**31), min_size=1, max_size=3, unique=True),
)
def test_names_are_unique_safe_and_spell_values_the_grid_reads_back(lrs, hidden, seeds):
    axes = {"lr": lrs, "hidden": hidden, "seed": seeds}
    configs = grid(BASE, axes)
    assert len(configs) == len(lrs) * len(hidden) * len(seeds)
    names = run_names(configs, list(axes))
    assert len(set(names)) == len(names)
    for name, config in zip(names, configs, strict=True):
        assert re.fullmatch(r"[A-Za-z0-9._+=,-]+", name)
        assert name not in (".", "..")
        read = {}
        for part in name.split(","):
            field, value = part.split("=")
            read[field] = parse_value(field, value)
        assert attrs.evolve(BASE, **read) == config


def test_names_default_to_the_settings_that_vary():
    configs = [Config(lr=0.1, seed=1), Config(lr=0.5, seed=1)]
    assert run_names(configs) == ["lr=0.1", "lr=0.5"]
    assert run_name(configs[0], []) == "run"
    with pytest.raises(GridError, match="same settings"):
        run_names([configs[0], configs[0]])


def test_every_setting_can_be_swept_by_its_option_name():
    for field in SETTING_NAMES:
        option = field.replace("_", "-")
        value = getattr(BASE, field)
        assert len(grid(BASE, {option: [value]})) == 1


def test_the_thread_budget_shares_the_cores_and_caps_the_jobs(monkeypatch):
    import purenet.sweep as sweep

    monkeypatch.delenv("PURENET_THREADS", raising=False)
    monkeypatch.setattr(sweep, "available_cores", lambda: 8)
    assert thread_budget(1) == (1, 8)
    assert thread_budget(2) == (2, 4)
    assert thread_budget(3) == (3, 2)
    assert thread_budget(20) == (8, 1)
    monkeypatch.setenv("PURENET_THREADS", "2")  # the user's cap is the budget
    assert thread_budget(1) == (1, 2)
    assert thread_budget(4) == (2, 1)
    monkeypatch.setenv("PURENET_BLAS_THREADS", "4")
    assert sweep._thread_environment(1) == {"PURENET_THREADS": "1", "PURENET_BLAS_THREADS": "1"}
