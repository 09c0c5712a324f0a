import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from flatnas_tf import FlatNASHyperModel, ResNetHyperModel, recalibrate_batch_norm
from flatnas_tf.robustness.flatness import PerturbedEvaluator
from flatnas_tf.space.hypermodel import TrainingSettings, make_divisible
from flatnas_tf.space.supernet import SubNetworkModel, Supernet


def _space(**kwargs):
    """A tiny two-resolution space: 16x16 RGB, resolutions 12 and 16, depth 1-2."""
    settings = dict(
        input_shape=(16, 16, 3),
        num_classes=3,
        width_multipliers=(0.25,),
        resolutions=(12, 16),
        depths=(1, 2),
        kernels=(3, 5),
        expands=(2, 3),
    )
    settings.update(kwargs)
    return FlatNASHyperModel(**settings)


def _randomise(supernet, seed=1):
    """Non-trivial BatchNorm statistics and biases, so a mis-mapped weight shows."""
    rng = np.random.default_rng(seed)
    for variable in supernet.weights:
        if variable.path.startswith(f"{supernet.name}/arch_"):
            continue
        if variable.shape.rank == 1:
            low = 0.5 if "variance" in variable.path else -0.5
            variable.assign(rng.uniform(low, 1.5, variable.shape).astype("float32"))


def _images(count=6, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def _dataset(count=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    images = _images(count, seed=seed)
    images[..., 0] += 40.0 * labels[:, None, None]  # learnable from the red channel
    images = np.clip(images, 0, 255)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)


def _random_hps(space, count):
    return [space.random_hyperparameters(seed) for seed in range(count)]


def test_every_candidate_maps_to_a_subnetwork_with_the_same_outputs_and_size():
    space = _space()
    supernet = Supernet(space)
    _randomise(supernet)
    supernet.dropout.rate = 0.0  # training-mode outputs compared too
    x = _images()
    hps = _random_hps(space, 6)
    hps += [supernet.extreme_hyperparameters(max), supernet.extreme_hyperparameters(min)]
    resolutions = set()
    for hp in hps:
        sub = supernet.select(hp)
        resolutions.add(sub.resolution)
        model = supernet.extract(hp)
        model.get_layer("dropout").rate = 0.0
        assert model.count_params() == space.count_params(hp)
        for training in (False, True):
            expected = supernet.forward(x, training=training, resolution=sub.resolution)
            np.testing.assert_allclose(model(x, training=training), expected, atol=1e-5)
    assert resolutions == {12, 16}


def test_mapping_is_one_to_one_on_the_architecture():
    space = _space()
    supernet = Supernet(space)
    largest = supernet.sub_network(supernet.extreme_hyperparameters(max))
    smallest = supernet.sub_network(supernet.extreme_hyperparameters(min))
    assert all(largest.active) and set(largest.kernel) == {5}
    assert smallest.active == (1, 0) * 5 and smallest.resolution == 12
    # Choices of inactive layers do not change the sub-network.
    hp = supernet.extreme_hyperparameters(min)
    other = hp.copy()
    other.values["stage1_layer2_kernel"] = 5
    assert supernet.state(supernet.sub_network(hp))[0].tolist() == (
        supernet.state(supernet.sub_network(other))[0].tolist()
    )


def test_bad_candidates_and_spaces_are_refused():
    space = _space()
    supernet = Supernet(space)
    hp = supernet.extreme_hyperparameters(max)
    hp.values["width_mult"] = 0.5
    with pytest.raises(ValueError, match="width 0.25"):
        supernet.sub_network(hp)
    hp = supernet.extreme_hyperparameters(max)
    hp.values["stage2_layer1_kernel"] = 7
    with pytest.raises(ValueError, match="stage2_layer1_kernel=7 is not in"):
        supernet.sub_network(hp)
    with pytest.raises(TypeError, match="replaces its layers"):
        Supernet(ResNetHyperModel((16, 16, 3), 3))
    with pytest.raises(ValueError, match="expand ratios > 1"):
        Supernet(_space(expands=(1, 3)))
    with pytest.raises(ValueError, match="odd"):
        Supernet(_space(kernels=(3, 4)))
    with pytest.raises(ValueError, match="resolution=20"):
        supernet.forward(_images(), resolution=20)


def test_random_states_are_architectures_of_the_space():
    supernet = Supernet(_space())
    draws = keras.random.SeedGenerator(3)
    seen = set()
    for _ in range(20):
        kernel, mid, squeezed, active = (np.asarray(v) for v in supernet.random_state(draws))
        assert set(kernel) <= {3.0, 5.0}
        for slot, block in enumerate(supernet.blocks[1:]):
            mids = [make_divisible(block.largest.in_channels * e) for e in (2, 3)]
            assert mid[slot] in mids
            if block.largest.squeeze_excite:
                assert squeezed[slot] == make_divisible(int(mid[slot]) // 4)
            else:
                assert squeezed[slot] == 0
        assert (active.reshape(5, 2)[:, 0] == 1).all()  # a stage's first layer is always on
        seen.add((tuple(kernel), tuple(active)))
    assert len(seen) == 20  # the draws differ


def test_a_candidate_borrows_the_weights_and_gives_them_back_without_retracing():
    space = _space(training=TrainingSettings(rho=0.5))
    supernet = Supernet(space)
    train, validation = _dataset(), _dataset(seed=1)
    hps = [hp for hp in _random_hps(space, 8) if hp.get("resolution") == 16][:3]
    assert len(hps) == 3
    evaluators = {}
    traces = []
    for hp in hps:
        before = {v.path: v.numpy().copy() for v in supernet.variables}
        with supernet.candidate(hp) as model:
            assert int(model.optimizer.iterations) == 0  # a fresh optimizer state
            model.fit(train, epochs=1, verbose=0, shuffle=False)
            recalibrate_batch_norm(model, train)
            evaluator = evaluators.setdefault(id(model), PerturbedEvaluator(model, validation))
            accuracy = evaluator.robustness(0.05, samples=2).clean_accuracy
            extracted = supernet.extract(hp)
            assert extracted.evaluate(validation, verbose=0, return_dict=True)["accuracy"] == (
                pytest.approx(accuracy, abs=1e-6)
            )
        for variable in supernet.variables:
            if "/arch_" not in variable.path:  # the selection itself is the candidate's
                np.testing.assert_array_equal(variable.numpy(), before[variable.path])
        traces.append(supernet.traces)
    assert traces[0] > 0 and traces[1:] == [traces[0]] * 2  # no tracing after the first


def test_subnetwork_model_without_sam_and_resolution_checks():
    space = _space(training=TrainingSettings(sam=False))
    supernet = Supernet(space)
    model = SubNetworkModel(supernet, 12)
    assert type(model).__name__ == "_PlainSubNetwork" and model.compiled
    assert model(_images()).shape == (6, 3)
    with pytest.raises(ValueError, match="resolution=20"):
        SubNetworkModel(supernet, 20)
    assert isinstance(supernet.extreme_hyperparameters(max), kt.HyperParameters)
