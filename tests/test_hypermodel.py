import json
import random

import keras
import keras_tuner as kt
import numpy as np
import pytest

from flatnas_tf import SAMModel
from flatnas_tf.space.hypermodel import (
    BlockSpec,
    FlatNASHyperModel,
    ResNetHyperModel,
    TrainingSettings,
)


def _fixed(hypermodel, **values):
    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(values)
    for parameter in hp.space:  # choices that became active take their defaults
        if hp.is_active(parameter) and parameter.name not in hp.values:
            hp.values[parameter.name] = parameter.default
    return hp


def _one_training_step(model, shape, classes):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, *shape)).astype("float32")
    y = rng.integers(0, classes, 4)
    # Eager: one step per architecture, not worth tracing each.
    model.compile(
        optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], run_eagerly=True
    )
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def _active_values(hp):
    return {(p.name, repr(hp.values[p.name])) for p in hp.space if hp.is_active(p)}


def _covering_candidates(hypermodel, seed, draws=300):
    """Few random candidates that together hold every value `draws` random ones hold.

    Each (hyperparameter, value) pair active in any of `draws` seeded draws is
    active in at least one chosen candidate (greedy set cover: 8-9 candidates
    for the default space), so building these covers what building all the
    draws would, at a thirtieth of the cost.
    """
    rng = random.Random(seed)
    pool = [hypermodel.random_hyperparameters(rng.randrange(2**31)) for _ in range(draws)]
    needed = set().union(*(_active_values(hp) for hp in pool))
    chosen = []
    while needed:
        best = max(pool, key=lambda hp: len(_active_values(hp) & needed))
        chosen.append(best)
        needed -= _active_values(best)
    return chosen


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3)], ids=["8x8x1", "32x32x3"])
def test_candidates_covering_every_value_build_count_and_train(shape):
    hypermodel = FlatNASHyperModel(shape, num_classes=10)
    candidates = _covering_candidates(hypermodel, f"flatnas-{shape}")
    assert 2 <= len(candidates) <= 15
    for hp in candidates:
        model = hypermodel.build(hp)
        assert isinstance(model, SAMModel)
        assert model.rho == TrainingSettings().rho and model.adaptive
        assert model.output_shape == (None, 10)
        params = model.count_params()
        assert params > 0
        assert hypermodel.count_params(hp) == params, hp.values
        _one_training_step(model, shape, 10)
        keras.backend.clear_session()


def test_stage_of_depth_two_has_no_active_deeper_choices():
    hypermodel = FlatNASHyperModel((32, 32, 3), num_classes=10)
    hp = _fixed(hypermodel, width_mult=1.0, stage1_depth=2, stage2_depth=4)
    assert hp.is_active("stage1_layer2_kernel")
    assert not hp.is_active("stage1_layer3_kernel")
    assert not hp.is_active("stage1_layer4_expand")
    assert hp.is_active("stage2_layer4_expand")
    arch = hypermodel.architecture(hp)
    out_channels = [spec.out_channels for spec in arch.blocks[1:]]
    assert out_channels.count(24) == 2
    assert out_channels.count(40) == 4


@pytest.mark.parametrize("size, halvings", [(8, 1), (16, 2), (24, 2), (32, 3), (64, 4), (224, 5)])
def test_strides_adapt_to_the_input_size(size, halvings):
    hypermodel = FlatNASHyperModel((size, size, 3), num_classes=10, resolutions=[size])
    arch = hypermodel.architecture(kt.HyperParameters())
    strides = [arch.stem_stride] + [spec.stride for spec in arch.blocks]
    assert strides.count(2) == halvings
    assert size // 2**halvings >= 4 or size < 16


def test_non_square_images_build_without_a_resolution_choice():
    hypermodel = FlatNASHyperModel((12, 20, 3), num_classes=3)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    assert "resolution" not in hp.values
    assert model.output_shape == (None, 3)
    assert hypermodel.count_params(hp) == model.count_params()


def test_resolution_choice_resizes_inside_the_model():
    hypermodel = FlatNASHyperModel((32, 32, 3), num_classes=10)
    hp = _fixed(hypermodel, resolution=24)
    model = hypermodel.build(hp)
    assert model.get_layer("resize").output.shape[1:3] == (24, 24)
    assert model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape == (2, 10)


def test_training_settings_reach_the_compiled_model():
    settings = TrainingSettings(learning_rate=0.05, rho=0.5, adaptive=False, label_smoothing=0.0)
    model = FlatNASHyperModel((8, 8, 1), 4, training=settings).build(kt.HyperParameters())
    assert (model.rho, model.adaptive) == (0.5, False)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert model.loss.label_smoothing == 0.0
    baseline = FlatNASHyperModel((8, 8, 1), 4, training=TrainingSettings(sam=False))
    plain = baseline.build(kt.HyperParameters())
    assert not isinstance(plain, SAMModel)


def test_smallest_and_largest_parameter_counts_for_cifar():
    hypermodel = FlatNASHyperModel((32, 32, 3), num_classes=10)
    stage_names = [f"stage{i}" for i in range(1, 6)]

    def config(width, depth, kernel, expand):
        values = {"width_mult": width}
        for stage in stage_names:
            values[f"{stage}_depth"] = depth
            for layer in range(1, 5):
                values[f"{stage}_layer{layer}_kernel"] = kernel
                values[f"{stage}_layer{layer}_expand"] = expand
        return _fixed(hypermodel, **values)

    smallest = hypermodel.count_params(config(0.5, 2, 3, 3))
    largest = hypermodel.count_params(config(1.0, 4, 7, 6))
    # The figures quoted in README.md.
    assert smallest == 559_050
    assert largest == 6_438_394
    assert largest == hypermodel.build(config(1.0, 4, 7, 6)).count_params()


def test_block_parameter_count_matches_keras():
    spec = BlockSpec(16, 24, kernel=5, expand=4, stride=2, activation="relu", squeeze_excite=True)
    inputs = keras.Input((8, 8, 16))
    hypermodel = FlatNASHyperModel((8, 8, 1), num_classes=2)
    block = keras.Model(inputs, hypermodel.build_block(inputs, spec))
    assert spec.count_params() == block.count_params()


class _TinyBackbone(FlatNASHyperModel):
    def build_backbone(self, hp, x):
        filters = hp.Choice("filters", [4, 8])
        return keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)


def test_subclass_overriding_only_the_backbone_builds_and_trains():
    hypermodel = _TinyBackbone((8, 8, 1), num_classes=3, width_multipliers=[0.5])
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    assert set(hp.values) == {"filters", "width_mult"}  # no MobileNet choices leak in
    assert isinstance(model, SAMModel)
    assert hypermodel.count_params(hp) == model.count_params()
    x = np.random.default_rng(0).integers(0, 17, (32, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 8).astype(int)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_resnet_example_space_builds_and_counts():
    hypermodel = ResNetHyperModel((32, 32, 3), num_classes=10)
    hp = _fixed(hypermodel, base_filters=16, blocks_per_stage=2, kernel=5)
    model = hypermodel.build(hp)
    assert hypermodel.count_params(hp) == model.count_params()
    assert not any(name.startswith("stage") for name in hp.values)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (8, 8)}, "input_shape"),
        ({"num_classes": 1}, "num_classes"),
        ({"depths": [2, 5]}, "depths"),
        ({"kernels": []}, "kernels"),
        ({"input_shape": (8, 16, 3), "resolutions": [8]}, "square"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    arguments = {"input_shape": (8, 8, 1), "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        FlatNASHyperModel(**arguments)


def test_bad_training_settings_are_rejected():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainingSettings(learning_rate=-1)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainingSettings(label_smoothing=1.0)


def test_random_hyperparameters_are_seeded_and_cover_the_active_space():
    hypermodel = FlatNASHyperModel((32, 32, 3), num_classes=10)
    first, again = hypermodel.random_hyperparameters(7), hypermodel.random_hyperparameters(7)
    assert first.values == again.values
    draws = [hypermodel.random_hyperparameters(seed).values for seed in range(20)]
    assert len({json.dumps(d, sort_keys=True) for d in draws}) == 20
    assert {d["width_mult"] for d in draws} == {0.5, 0.75, 1.0}
    for values in draws:
        hp = _fixed(hypermodel, **values)
        active = {p.name for p in hp.space if hp.is_active(p)}
        assert set(values) == active  # every active choice drawn, no inactive one


def test_random_hyperparameters_refuse_a_space_known_only_by_building():
    with pytest.raises(NotImplementedError, match="replaces build_backbone"):
        ResNetHyperModel((32, 32, 3), num_classes=10).random_hyperparameters(0)
