import csv
import io
import json

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from support.models import cifar_cnn

from flatnas_tf.data import from_arrays, load_dataset
from flatnas_tf.robustness import cifar10_corrupted
from flatnas_tf.robustness.corruptions import CORRUPTIONS
from flatnas_tf.robustness.ood import TFDS_BENCHMARK, TFDS_EXTRA, OODResult, evaluate_ood

FAMILIES = {  # CIFAR-10-C's grouping of the corruptions
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("gaussian_blur", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "fog"),
    "digital": ("brightness", "contrast", "saturate", "pixelate", "jpeg_compression"),
}


def _hand_made():
    return OODResult(
        source="builtin",
        accuracy={"a": (0.9, 0.8, 0.7, 0.6, 0.5), "b": (1.0, 1.0, 0.5, 0.5, 0.0)},
        severities=(1, 2, 3, 4, 5),
        examples=10,
        clean_accuracy=0.95,
        set_name="toy",
    )


def test_metrics_on_a_hand_made_table():
    result = _hand_made()
    assert result.mean_corruption_accuracy == pytest.approx(0.65)
    assert result.mce == pytest.approx(35.0)
    # a: errors 10..50 minus clean 5 -> mean 25; b: 0,0,50,50,100 minus 5 -> mean 35
    assert result.relative_mce == pytest.approx(30.0)
    assert result.by_severity() == pytest.approx({1: 0.95, 2: 0.9, 3: 0.6, 4: 0.55, 5: 0.25})
    assert result.by_corruption() == pytest.approx({"a": 0.7, "b": 0.6})
    no_clean = OODResult("builtin", result.accuracy, result.severities, 10)
    assert no_clean.relative_mce is None


def test_a_result_is_written_as_its_three_renderings(tmp_path):
    result = _hand_made()
    paths = result.write(tmp_path / "ood" / "trial_003")
    assert [p.name for p in paths] == ["trial_003.json", "trial_003.csv", "trial_003.md"]
    texts = [p.read_text() for p in paths]
    assert texts == [result.to_json(), result.to_csv(), result.to_markdown()]


def test_renderings_carry_the_table_and_say_what_was_averaged():
    result = _hand_made()
    summary = json.loads(result.to_json())
    assert summary["mce"] == pytest.approx(35.0)
    assert summary["accuracy"]["b"] == [1.0, 1.0, 0.5, 0.5, 0.0]
    assert "2 corruptions (toy) x 5 severities" in summary["averaged_over"]
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert len(rows) == 10
    assert rows[6] == {
        "corruption": "b",
        "severity": "2",
        "accuracy": "1.000000",
        "error_percent": "0.0000",
    }
    markdown = result.to_markdown()
    assert "| a | 90.0 | 80.0 | 70.0 | 60.0 | 50.0 | 70.0 |" in markdown
    assert "mCE (unnormalised): 35.00 %" in markdown
    assert "averaged over 2 corruptions (toy)" in markdown


def _linear_model(shape, classes=10):
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = keras.layers.Dense(classes)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


#: Identities on 8 x 8 grey digits: no saturation to change, blur kernels below a pixel.
NOT_ON_DIGITS = ("gaussian_blur", "defocus_blur", "saturate")


def test_builtin_corruptions_on_any_data_set():
    digits = load_dataset("digits")
    model = _linear_model((8, 8, 1))
    result = evaluate_ood(model, digits, max_examples=64, severities=(1, 5))
    assert result.corruptions == tuple(c for c in CORRUPTIONS if c not in NOT_ON_DIGITS)
    assert set(result.skipped) == {*NOT_ON_DIGITS, "frost"}
    assert result.examples == 64 and result.severities == (1, 5)
    # The clean accuracy is that of the 64 images the cells use, as NumPy counts it.
    x, y = zip(*digits.test.take(64).as_numpy_iterator(), strict=True)
    predicted = np.argmax(model.predict(np.stack(x).astype("float32"), verbose=0), axis=-1)
    assert result.clean_accuracy == pytest.approx(np.mean(predicted == np.array(y)), abs=1e-6)
    random_ones = ["gaussian_noise", "glass_blur", "elastic_transform"]
    again = evaluate_ood(model, digits, random_ones, severities=(1, 5), max_examples=64)
    assert again.accuracy == {c: result.accuracy[c] for c in random_ones}  # seeded
    chosen = evaluate_ood(model, digits, corruptions=["contrast"], max_examples=16)
    assert chosen.corruptions == ("contrast",) and len(chosen.accuracy["contrast"]) == 5


def test_arrays_are_accepted_as_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    result = evaluate_ood(
        _linear_model((8, 8, 3)), (x, np.arange(12) % 10), corruptions="benchmark"
    )
    # A defocus disk of radius 0.075-0.375 pixels is the identity on 8 x 8 images.
    assert len(result.corruptions) == 13 and result.examples == 12
    assert "defocus_blur" in result.skipped and "saturate" not in result.corruptions


def test_corruptions_that_change_nothing_are_left_out_of_the_means():
    digits = load_dataset("digits")
    model = _linear_model((8, 8, 1))
    result = evaluate_ood(model, digits, ["contrast", "saturate", "defocus_blur"], max_examples=32)
    assert result.corruptions == ("contrast",)
    assert result.mean_corruption_accuracy == pytest.approx(np.mean(result.accuracy["contrast"]))
    for name in ("saturate", "defocus_blur"):
        assert result.skipped[name].startswith("not applicable")
    assert "saturate, defocus_blur skipped (not applicable" in result.averaged_over
    with pytest.raises(ValueError, match="None of the chosen corruptions changes these images"):
        evaluate_ood(model, digits, ["saturate"], max_examples=8)


@pytest.fixture
def spied_tfds(monkeypatch):
    # mock_data serves every config; none is prepared on disk.
    monkeypatch.setattr(cifar10_corrupted, "missing_configs", lambda configs, data_dir: [])
    requested = []
    load = tfds.load

    def recording_load(name, **kwargs):
        requested.append(name)
        return load(name, **kwargs)

    monkeypatch.setattr(tfds, "load", recording_load)
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        yield requested


def test_cifar10_corrupted_requests_the_75_benchmark_configs(spied_tfds):
    model = _linear_model((32, 32, 3))
    rng = np.random.default_rng(0)
    clean = (rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.arange(8))
    result = evaluate_ood(model, "cifar10_corrupted", clean=clean)
    expected = {f"cifar10_corrupted/{c}_{s}" for c in TFDS_BENCHMARK for s in range(1, 6)}
    assert len(spied_tfds) == 75 and set(spied_tfds) == expected
    assert result.corruptions == TFDS_BENCHMARK
    assert "frosted_glass_blur" in result.corruptions and "elastic" in result.corruptions
    assert np.asarray(list(result.accuracy.values())).shape == (15, 5)
    assert result.clean_accuracy is not None and result.relative_mce is not None
    assert "15 corruptions (15 benchmark)" in result.averaged_over


def test_cifar10_corrupted_all_requests_95_configs(spied_tfds):
    result = evaluate_ood(_linear_model((32, 32, 3)), "cifar10_corrupted", corruptions="all")
    assert len(set(spied_tfds)) == 95
    assert result.corruptions == TFDS_BENCHMARK + TFDS_EXTRA
    assert result.clean_accuracy is None and "19" in result.averaged_over


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"data": "imagenet_c"}, ValueError, "Unknown OOD source"),
        ({"severities": (0, 1)}, ValueError, "severities"),
        ({"corruptions": ["spatter"]}, ValueError, "Unknown corruptions"),
        ({"max_examples": 0}, ValueError, "max_examples"),
        ({"data": np.zeros((2, 8, 8))}, TypeError, "data"),
        ({"data": (np.zeros((2, 8, 8), np.float32), np.zeros(2))}, ValueError, "uint8"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    arguments = {"data": load_dataset("digits"), **kwargs}
    with pytest.raises(error, match=match):
        evaluate_ood(_linear_model((8, 8, 1)), **arguments)


def test_cifar10_corrupted_not_here_fails_at_once(tmp_path):
    from flatnas_tf.data import DatasetUnavailableError

    with pytest.raises(DatasetUnavailableError, match="cifar10_corrupted"):
        evaluate_ood(_linear_model((32, 32, 3)), "cifar10_corrupted", data_dir=str(tmp_path))


def test_trained_model_on_real_images_degrades_with_severity_noise_hardest(cifar_subset):
    keras.utils.set_random_seed(0)
    cifar = from_arrays(
        "cifar",
        cifar_subset["x_train"],
        cifar_subset["y_train"],
        cifar_subset["x_test"],
        cifar_subset["y_test"],
    )
    model = keras.Model(*cifar_cnn())
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(cifar.batches("train", 128, training=True), epochs=3, verbose=0, shuffle=False)
    result = evaluate_ood(model, cifar, max_examples=500)
    by_severity = result.by_severity()
    # Measured (3 epochs, 500 test images): 38.9, 35.4, 32.6, 29.4, 27.2 % by severity
    # against 42.4 % clean, the noise family lowest (28.6 %, impulse noise 23.4 %), JPEG
    # and brightness highest, as on CIFAR-10-C (twice the filters: the same ordering at
    # 1.5 times the cost).
    # Less trained (the wider CNN after 2 epochs, ~33 %) a network is as fragile to
    # blur and fog as to noise, so it is trained to the measured point; the ordering is checked on
    # CIFAR-10-C's corruption families, not on single corruptions.
    assert by_severity[5] < by_severity[3] < by_severity[1] < result.clean_accuracy
    by_corruption = result.by_corruption()
    family_means = {f: np.mean([by_corruption[c] for c in m]) for f, m in FAMILIES.items()}
    assert min(family_means, key=family_means.get) == "noise", family_means
    assert by_corruption["brightness"] > family_means["noise"]
