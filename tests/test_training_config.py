"""TrainingConfig: every training setting chosen in one place, recorded and derived from there."""

from __future__ import annotations

import json

import keras_tuner
import pytest

from flatnas_tf import SAMModel, SupernetSettings, TrainingSettings
from flatnas_tf.app import models
from flatnas_tf.cli.main import main
from flatnas_tf.training.config import RANGES, UNRECORDED, TrainingConfig, TrainingConfigError
from flatnas_tf.training.regime import TrainingRegime, WarmupCosine

SPACE = {"input_shape": [8, 8, 1], "num_classes": 10, "widths": [0.25]}


@pytest.mark.parametrize(
    ("training", "sam"),
    [
        (TrainingConfig(sam="sam", rho=0.3, learning_rate=0.05), True),
        (TrainingConfig(momentum=0.5, weight_decay=0.0, label_smoothing=0.2), True),
        (TrainingConfig.from_settings({"sam": "off"}), False),
    ],
)
def test_every_setting_reaches_the_compiled_candidate(training, sam):
    recorded = TrainingConfig.from_settings(json.loads(json.dumps(training.to_settings())))
    assert recorded == training
    model = models.hypermodel(SPACE, recorded).build(keras_tuner.HyperParameters())
    assert isinstance(model, SAMModel) == sam
    if sam:
        assert (model.rho, model.adaptive) == (training.rho, training.sam == "asam")
    optimizer = model.optimizer
    assert float(optimizer.learning_rate) == pytest.approx(training.learning_rate)
    assert optimizer.momentum == pytest.approx(training.momentum)
    assert (optimizer.weight_decay or 0.0) == pytest.approx(training.weight_decay)
    assert model.loss.label_smoothing == pytest.approx(training.label_smoothing)
    regime = training.regime()
    assert (regime.schedule, regime.warmup) == (training.schedule, training.warmup)


def test_a_default_is_stated_once_for_the_library_and_the_cli():
    config = TrainingConfig()
    compiled = TrainingSettings()
    assert config.compile_settings() == compiled
    supernet = SupernetSettings()
    for name in ("learning_rate", "momentum", "weight_decay", "label_smoothing"):
        assert getattr(supernet, name) == getattr(config, name), name
    search = {p.name: p.default for p in main.commands["search"].params}
    train = {p.name: p.default for p in main.commands["train"].params}
    for name in TrainingConfig.names():
        # --learning-rate's default depends on --supernet; train's defaults are the search's.
        expected = None if name == "learning_rate" else getattr(config, name)
        assert search[name] == expected, name
        assert train[name] is None, name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sam": "adam"}, "`sam` must be one of .*received sam='adam'"),
        ({"schedule": "linear"}, "`schedule` must be one of"),
        ({"learning_rate": 0.0}, "`learning_rate` must be a finite number > 0"),
        ({"momentum": float("nan")}, "`momentum`"),
        ({"weight_decay": -1e-4}, "`weight_decay`"),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must be a number in \[0, 1\)"),
        ({"rho": -1.0}, "`rho`"),
        ({"warmup": 1.0}, "`warmup`"),
        ({"rho": True}, "`rho`"),
    ],
)
def test_a_setting_out_of_range_is_refused_with_its_name(values, message):
    with pytest.raises(TrainingConfigError, match=message):
        TrainingConfig(**values)
    with pytest.raises(TrainingConfigError, match=message):
        TrainingConfig.from_settings(values)  # as a damaged run.json would hold it


@pytest.mark.parametrize("name", sorted(RANGES))
def test_the_derived_settings_refuse_what_the_config_refuses(name):
    """TrainingSettings, TrainingRegime, WarmupCosine and SupernetSettings share RANGES."""
    bad = {"learning_rate": 0.0, "label_smoothing": 1.0, "warmup": 1.0}.get(name, -1.0)
    with pytest.raises(TrainingConfigError):
        TrainingConfig(**{name: bad})
    owners = [TrainingSettings] if name != "warmup" else [TrainingRegime, SupernetSettings]
    if name in ("learning_rate", "momentum", "weight_decay", "label_smoothing"):
        owners.append(SupernetSettings)
    for owner in owners:
        with pytest.raises(ValueError, match=f"`{name}`"):
            owner(**{name: bad})
    if name == "warmup":
        with pytest.raises(ValueError, match="`warmup`"):
            WarmupCosine(100, bad)


def test_a_record_from_before_a_setting_existed_reads_back_with_its_default():
    older = {"learning_rate": 0.05, "sam": "sam", "rho": 0.05, "schedule": "cosine"}
    config = TrainingConfig.from_settings({**older, "alpha": 0.5})  # other run.json keys ignored
    assert config == TrainingConfig(**older)
    # What every candidate trained with before they were recorded, whatever the defaults are.
    assert {name: getattr(config, name) for name in UNRECORDED} == UNRECORDED
    assert UNRECORDED == {"momentum": 0.9, "weight_decay": 5e-4, "label_smoothing": 0.1}
    assert config.override(momentum=None, rho=0.1).to_settings() == {
        **config.to_settings(), "rho": 0.1,
    }  # fmt: skip
