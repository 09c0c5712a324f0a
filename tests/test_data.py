import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from flatnas_tf import data as data_module
from flatnas_tf.data import DatasetUnavailableError, from_arrays, load_dataset


def _arrays(dataset):
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.stack(images), np.asarray(labels)


def _count(dataset):
    return sum(1 for _ in dataset)


# -- digits -------------------------------------------------------------------


def test_digits_is_the_default_and_splits_all_1797_images():
    digits = load_dataset()
    assert digits.name == "digits"
    assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
    sizes = [_count(split) for split in (digits.train, digits.validation, digits.test)]
    assert sum(sizes) == 1797
    assert sizes[2] == 359 and sizes[1] == 180  # 20 % test, 10 % validation
    images, labels = _arrays(digits.train)
    assert images.dtype == np.uint8 and images.max() == 255
    assert set(labels.tolist()) == set(range(10))
    assert not digits.augment  # flips change what a digit means


def test_split_is_seeded():
    first = _arrays(load_dataset("digits", seed=1).validation)[0]
    again = _arrays(load_dataset("digits", seed=1).validation)[0]
    other = _arrays(load_dataset("digits", seed=2).validation)[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# -- pipelines ----------------------------------------------------------------


def _toy(n=40, size=8, channels=3, augment=True):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    y = np.arange(n) % 4
    return from_arrays("toy", x, y, x[:8], y[:8], validation_fraction=0.25, augment=augment)


def test_pipelines_give_float_pixels_in_0_255_and_fixed_order_for_evaluation():
    toy = _toy()
    images, labels = next(iter(toy.batches("validation", batch_size=4)))
    assert images.dtype == tf.float32 and labels.dtype == tf.int64
    first_pass = np.concatenate([b[0].numpy() for b in toy.batches("validation", 4)])
    raw = _arrays(toy.validation)[0].astype(np.float32)
    np.testing.assert_array_equal(first_pass, raw)  # no rescaling, no shuffling


def test_training_pipeline_is_seeded_and_augments_only_when_asked():
    toy = _toy()

    def first_batch(**kwargs):
        return next(iter(toy.batches("train", batch_size=30, training=True, **kwargs)))[0]

    np.testing.assert_array_equal(first_batch(seed=3), first_batch(seed=3))
    assert not np.array_equal(first_batch(seed=3), first_batch(seed=4))
    plain = np.sort(first_batch(seed=3, augment=False).numpy().reshape(30, -1), axis=0)
    originals = np.sort(_arrays(toy.train)[0].astype(np.float32).reshape(30, -1), axis=0)
    np.testing.assert_array_equal(plain, originals)  # shuffled, untouched
    augmented = first_batch(seed=3).numpy()
    assert augmented.shape == (30, 8, 8, 3)
    assert not np.array_equal(np.sort(augmented.reshape(30, -1), axis=0), originals)


def test_bad_pipeline_arguments_are_rejected():
    toy = _toy()
    with pytest.raises(ValueError, match="split"):
        toy.batches("valid")
    with pytest.raises(ValueError, match="batch_size"):
        toy.batches("train", batch_size=0)


# -- npz ----------------------------------------------------------------------


def _write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8),
        "y_train": np.arange(20) % 3,
        "x_test": rng.integers(0, 256, (6, 6, 6, 3), dtype=np.uint8),
        "y_test": np.arange(6) % 3,
        "label_names": np.array(["a", "b", "c"]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_data_set_loads_with_label_names(tmp_path):
    loaded = load_dataset(_write_npz(tmp_path / "d.npz"), validation_fraction=0.2)
    assert loaded.input_shape == (6, 6, 3)
    assert loaded.label_names == ("a", "b", "c") and loaded.num_classes == 3
    assert (_count(loaded.train), _count(loaded.validation), _count(loaded.test)) == (16, 4, 6)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"x_test": None}, "missing arrays x_test"),
        ({"x_train": np.zeros((20, 6, 6, 2), np.uint8)}, "shape"),
        ({"x_train": np.zeros((20, 6, 6, 3), np.float32) + 0.5}, "uint8"),
        ({"y_train": np.arange(20) % 5}, "label_names"),
        ({"y_train": -(np.arange(20) % 3)}, "negative"),
        ({"y_train": np.arange(19) % 3}, "20 integer labels"),
        ({"x_test": np.zeros((6, 5, 5, 3), np.uint8)}, "same shape"),
    ],
)
def test_malformed_npz_files_are_rejected(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(_write_npz(tmp_path / "d.npz", **overrides))


def test_missing_npz_file_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")


def test_shared_cifar_subset_loads_as_npz(cifar_subset):
    from conftest import SHARED_DATA

    cifar = load_dataset(f"npz:{SHARED_DATA / 'cifar10_subset_dev.npz'}")
    assert cifar.input_shape == (32, 32, 3) and cifar.num_classes == 10
    assert cifar.label_names[0] == "airplane"
    assert (_count(cifar.train), _count(cifar.validation)) == (9000, 1000)


# -- folder -------------------------------------------------------------------


def _write_folder(root, sizes=None):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 1)):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                size = (sizes or {}).get((split, label, i), 5)
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                png = tf.io.encode_png(image).numpy()
                (folder / f"{i}.png").write_bytes(png)


def test_folder_data_set_loads(tmp_path):
    _write_folder(tmp_path)
    loaded = load_dataset(f"folder:{tmp_path}", validation_fraction=0.34)
    assert loaded.label_names == ("cat", "dog") and loaded.input_shape == (5, 5, 3)
    assert _count(loaded.train) + _count(loaded.validation) == 6
    assert sorted(_arrays(loaded.test)[1].tolist()) == [0, 1]


def test_folder_with_mixed_image_sizes_is_rejected(tmp_path):
    _write_folder(tmp_path, sizes={("train", "dog", 1): 7})
    with pytest.raises(ValueError, match="same size"):
        load_dataset(f"folder:{tmp_path}")


def test_empty_or_missing_folders_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "test").mkdir()
    with pytest.raises(ValueError, match="no .png/.jpg images"):
        load_dataset(f"folder:{tmp_path}")


# -- TFDS ---------------------------------------------------------------------


def test_tfds_data_set_through_mock_data(monkeypatch):
    monkeypatch.setattr(data_module, "tfds_unavailable_reason", lambda builder, download: None)
    with tfds.testing.mock_data(num_examples=50, policy=tfds.testing.MockPolicy.USE_CODE):
        cifar = load_dataset("cifar10", validation_fraction=0.2, seed=0)
        assert cifar.input_shape == (32, 32, 3) and cifar.num_classes == 10
        assert len(cifar.label_names) == 10  # from the builder's ClassLabel feature
        held_out, kept = _count(cifar.validation), _count(cifar.train)
        assert held_out + kept == 50 and 2 <= held_out <= 20
        # Known lengths, counted from the draws: a trial's schedule needs its steps.
        assert int(cifar.validation.cardinality()) == held_out
        assert int(cifar.train.cardinality()) == kept
        assert int(cifar.batches("train", 8, training=True).cardinality()) == -(-kept // 8)
        image, label = next(iter(cifar.batches("test", batch_size=5)))
        assert image.shape == (5, 32, 32, 3) and image.dtype == tf.float32


def test_tfds_data_set_that_is_not_here_fails_at_once_with_instructions(tmp_path, monkeypatch):
    with pytest.raises(DatasetUnavailableError) as offline:
        load_dataset("cifar10", data_dir=str(tmp_path), download=False)
    message = str(offline.value)
    assert "'cifar10'" in message and str(tmp_path) in message and "manual" in message
    monkeypatch.setattr(data_module, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(DatasetUnavailableError, match="cannot be reached"):
        load_dataset("cifar10", data_dir=str(tmp_path), download=True)


def test_unknown_names_and_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="Unknown data set 'no_such_data'"):
        load_dataset("no_such_data")
    with pytest.raises(ValueError, match="validation_fraction"):
        load_dataset("digits", validation_fraction=1.0)
    with pytest.raises(ValueError, match="spec"):
        load_dataset("")
