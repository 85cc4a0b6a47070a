"""Settings: declared once in Config, checked there, read by the command line from there."""

from __future__ import annotations

import math

import attrs
import pytest
import typer

from purenet.config import SETTING_NAMES, Config, Optimizer, default_of, setting_of
from purenet.errors import ConfigError
from purenet.optim import Adam, AddDecayedWeights, Chain, Momentum, Scheduled, Sgd
from purenet.presets import PRESETS, preset_config
from purenet.settings import FULL_BATCH, SETTING, Kind
from purenet_cli.main import app


def test_every_setting_declares_its_help_and_the_numbers_their_bounds():
    for field in attrs.fields(Config):
        setting = field.metadata[SETTING]
        assert setting.help.endswith(".")
        if setting.kind in (Kind.WHOLE, Kind.NUMBER, Kind.BATCH, Kind.WIDTHS):
            assert setting.bounds is not None, field.name


@pytest.mark.parametrize(
    "field, value",
    [
        ("hidden", (0,)),
        ("hidden", ()),
        ("hidden", "10,,5"),
        ("epochs", 0),
        ("epochs", 2.5),
        ("lr", 0),
        ("lr", math.nan),
        ("lr", math.inf),
        ("seed", -1),
        ("batch_size", 0),
        ("batch_size", "abc"),
        ("batch_size", None),
        ("optimizer", "rmsprop"),
        ("momentum", 1),
        ("adam_beta1", 1.0),
        ("weight_decay", -1e-4),
        ("step_every", 0),
        ("step_gamma", 0),
        ("step_gamma", 1.5),
        ("dropout", 1),
        ("shift", 9),
        ("rotate", 46),
        ("scale", 0.5),
        ("elastic_alpha", -1),
        ("elastic_alpha", 101),
        ("elastic_alpha", float("nan")),
        ("elastic_sigma", 0.4),
        ("elastic_sigma", 11),
        ("validation", -1),
        ("patience", 0),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_its_field(field, value):
    with pytest.raises(ConfigError) as caught:
        Config(**{field: value, "validation": 10} if field == "patience" else {field: value})
    assert caught.value.field == field
    assert field.replace("_", " ") in str(caught.value) or "layer widths" in str(caught.value)


def test_the_bounds_edges_are_allowed():
    config = Config(dropout=0.999, scale=0.499, shift=8, rotate=45, step_gamma=1, momentum=0)
    assert config.dropout == 0.999 and config.scale == 0.499


def test_elastic_distortions_are_off_by_default_and_in_runs_written_before_them():
    assert Config().elastic_alpha == 0 and not Config().augmenting
    written_by_0_5 = {"hidden": [512], "shift": 2, "rotate": 10, "batch_size": 128}
    config = Config.from_json(written_by_0_5)
    assert config.elastic_alpha == 0 and config.elastic_sigma == 4
    elastic = Config(elastic_alpha=34, elastic_sigma=5, batch_size=8)
    assert elastic.augmenting and elastic.stochastic
    assert Config.from_json(elastic.to_json()) == elastic


def test_patience_needs_a_validation_set():
    with pytest.raises(ConfigError) as caught:
        Config(patience=3)
    assert caught.value.field == "patience"


def test_full_batch_is_an_explicit_value_written_null_as_before():
    assert Config().batch_size == FULL_BATCH and Config().full_batch
    assert Config(batch_size="full") == Config()
    assert Config(batch_size="128").batch_size == 128
    with pytest.raises(ConfigError) as caught:
        Config(batch_size=None)  # None is not "full batch" for a library user
    assert caught.value.field == "batch_size"
    assert Config().to_json()["batch_size"] is None
    assert Config.from_json({"batch_size": None}).batch_size == FULL_BATCH
    assert Config.from_json(Config().to_json()) == Config()
    assert Config.from_json(Config(batch_size=64).to_json()).batch_size == 64


def test_the_optimizer_is_an_enum_written_as_its_name():
    config = Config(optimizer="adam")
    assert config.optimizer is Optimizer.ADAM
    assert config.to_json()["optimizer"] == "adam"


def test_adam_beta1_has_its_own_name_and_old_runs_keep_momentum_as_beta1():
    assert Config(optimizer="adam", momentum=0.5).make_optimizer() == Adam(0.1, beta1=0.9)
    assert Config(optimizer="adam", adam_beta1=0.5).make_optimizer() == Adam(0.1, beta1=0.5)
    written_by_0_3 = {"optimizer": "adam", "momentum": 0.8, "batch_size": None}
    assert Config.from_json(written_by_0_3).adam_beta1 == 0.8
    config = Config(optimizer="adam", momentum=0.8, adam_beta1=0.7)
    assert Config.from_json(config.to_json()) == config


def test_the_optimizer_composes_weight_decay_and_schedule_with_the_rule():
    assert Config().make_optimizer() == Sgd(0.1)
    momentum = Config(optimizer="momentum", nesterov=True, weight_decay=1e-3, schedule="step")
    optimizer = momentum.make_optimizer(steps_per_epoch=7)
    assert isinstance(optimizer, Chain)
    decay, scheduled = optimizer.transformations
    assert decay == AddDecayedWeights(1e-3)
    assert isinstance(scheduled, Scheduled) and scheduled.rule == Momentum(0.1, 0.9, True)
    assert scheduled.schedule.steps_per_epoch == 7


def test_a_config_round_trips_through_json():
    config = Config(hidden=(16, 8), activation="tanh", batch_size=32, schedule="cosine")
    assert Config.from_json(config.to_json()) == config


def test_presets_take_settings_given_on_top():
    assert preset_config("reference") == Config()
    fast = preset_config("fast", {"epochs": 3, "batch_size": FULL_BATCH})
    assert fast.epochs == 3 and fast.full_batch and fast.hidden == (512,)
    for name in PRESETS:
        preset_config(name)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("fastest")


def test_the_train_command_takes_each_settings_help_and_default_from_config():
    train = typer.main.get_command(app).commands["train"]
    options = {param.name: param for param in train.params}
    for name in SETTING_NAMES:
        option = options[name]
        assert option.default is None  # not given: the preset's value stands
        assert option.help.startswith(setting_of(name).describe())
        if default_of(name) is not None:
            assert option.help.endswith("]") and "[default: " in option.help
    assert "--batch-size" in options["batch_size"].opts
