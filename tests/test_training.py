"""train_architecture: one architecture trained as a trial is, measured, saved with its split."""

from __future__ import annotations

import json

import keras
import pytest

from flatnas_tf.app.training import train_architecture
from flatnas_tf.training.config import TrainingConfig


def test_an_architecture_is_trained_measured_and_saved_with_its_split(digits_split, tmp_path):
    split, data = digits_split
    # Without its search (settings None): stage depth 1 is not the default space's, but a
    # search with --depths 1 could have chosen it, so the space is widened to hold it.
    values = {"stage1_depth": 3, "stage1_layer3_expand": 6, "stage2_depth": 1, "width_mult": 0.25}
    trained = train_architecture(
        values, data, tmp_path / "out", split=split, epochs=1,
        training=TrainingConfig(sam="off"), verbose=0,
    )  # fmt: skip
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(trained.manifest))
    assert {k: manifest[k] for k in ("data", "seed", "validation_fraction", "data_dir")} == (
        split.to_settings()
    )
    assert manifest["hyperparameters"]["stage1_depth"] == 3  # given, and the rest filled in
    assert manifest["hyperparameters"]["stage1_layer3_expand"] == 6
    assert manifest["hyperparameters"]["stage1_layer3_kernel"] == 3
    assert manifest["hyperparameters"]["stage2_depth"] == 1
    assert manifest["hyperparameters"]["stage3_depth"] == 2  # not given: the default's default
    assert manifest["training"]["sam"] == "off" and manifest["epochs"] == 1
    assert 0.1 < trained.val_accuracy <= 1 and 0.1 < trained.test_accuracy <= 1  # above chance
    reloaded = keras.models.load_model(trained.model_file)
    assert reloaded.count_params() == trained.model.count_params()


def test_a_hyperparameter_the_space_lacks_is_refused_before_training(digits_split, tmp_path):
    split, data = digits_split
    for values, message in (
        ({"depth": 3}, r"unknown hyperparameters \['depth'\]"),
        ({"stage1_depth": 5}, r"`stage1_depth` must be an integer in 1..4"),
        ({"width_mult": 9.0}, r"`width_mult` must be"),
        ({"stage1_layer1_kernel": 4}, r"stage1_layer1_kernel=4 is not in the search space"),
    ):
        with pytest.raises(ValueError, match=message):
            train_architecture(values, data, tmp_path / "out", split=split)
    assert not (tmp_path / "out").exists()
