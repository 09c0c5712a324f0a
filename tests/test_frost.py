"""Frost: synthetic frost photographs written by the tests, blended as make_cifar_c.py does.

The PNG photos are 5 x 5 blocks whose colour encodes the block: after the 0.2 downscale,
pixel (i, j) of photo k is (4 i, 3 j, 50 k + 10), and 0.45 * that, truncated, still tells
i, j and k apart. Frosting black images at severity 5 therefore reveals which photo and
which crop each image drew; the same seed draws the same crops at every severity, so each
severity can be checked against the original formula exactly.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from flatnas_tf.cli.main import main
from flatnas_tf.robustness import frost
from flatnas_tf.robustness.corruptions import _PARAMS, corrupt
from flatnas_tf.robustness.frost import FROST_ENV, FROST_FILES, load_frost, resize_linear
from flatnas_tf.robustness.ood import evaluate_ood

ROWS, COLS = 300, 400  # downscaled: 60 x 80, so crops start at rows 0..27, cols 0..47
JPEG_GREY = (120, 200)  # frost4.jpg and frost5.jpg: flat grey, which JPEG keeps


def _block_photo(k: int) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(ROWS) // 5, np.arange(COLS) // 5, indexing="ij")
    return np.stack([4 * rows, 3 * cols, np.full_like(rows, 50 * k + 10)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def frost_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("frost")
    for k, name in enumerate(FROST_FILES):
        if name.endswith(".png"):
            data = tf.io.encode_png(_block_photo(k))
        else:
            grey = np.full((ROWS, COLS, 3), JPEG_GREY[k - 3], np.uint8)
            data = tf.io.encode_jpeg(grey, quality=95)
        tf.io.write_file(str(directory / name), data)
    # The original lists a sixth photo but never draws it: a bright one, to be never seen.
    bright = tf.io.encode_jpeg(np.full((ROWS, COLS, 3), 255, np.uint8))
    tf.io.write_file(str(directory / "frost6.jpg"), bright)
    return directory


@pytest.fixture(autouse=True)
def _no_frost_env(monkeypatch):
    monkeypatch.delenv(FROST_ENV, raising=False)


#: Blue of a frosted black image at severity 5, per photo: floor(0.45 * blue of the photo).
BLUE_AT_5 = np.floor(0.45 * np.array([10, 60, 110, *JPEG_GREY]))


def _crops_drawn(frost_dir, count: int, seed: int = 3) -> list[tuple[int, int, int]]:
    """(photo, top, left) of each image, read back from frosted black images (-1: flat)."""
    black = np.zeros((count, 32, 32, 3), np.uint8)
    out = corrupt(black, "frost", 5, seed=seed, frost_dir=str(frost_dir)).numpy()
    drawn = []
    for image in out.astype(np.float64):
        k = int(np.argmin(np.abs(BLUE_AT_5 - image[0, 0, 2])))
        if k < 3:
            top = int(np.argmin(np.abs(np.floor(0.45 * 4 * np.arange(60)) - image[0, 0, 0])))
            left = int(np.argmin(np.abs(np.floor(0.45 * 3 * np.arange(80)) - image[0, 0, 1])))
            drawn.append((k, top, left))
        else:
            drawn.append((k, -1, -1))
    return drawn


def _small(k: int) -> np.ndarray:
    return _block_photo(k)[2::5, 2::5].astype(np.float64)


def test_resize_is_opencv_linear():
    rng = np.random.default_rng(0)
    for rows, cols in [(300, 400), (303, 401), (1003, 998)]:
        photo = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
        small = resize_linear(photo, 0.2)
        # OpenCV samples (d + 0.5) * 5 - 0.5 = 5 d + 2: whole pixels, size rounded.
        assert small.shape == (round(rows / 5), round(cols / 5), 3)
        np.testing.assert_array_equal(small, photo[2::5, 2::5][: small.shape[0], : small.shape[1]])
    photo = rng.integers(0, 256, (8, 6, 1), dtype=np.uint8).astype(np.float64)
    # At 0.5 OpenCV samples 2 d + 0.5: the mean of two neighbours, per axis, rounded.
    rows = (photo[0::2] + photo[1::2]) / 2
    expected = np.floor((rows[:, 0::2] + rows[:, 1::2]) / 2 + 0.5)
    np.testing.assert_array_equal(resize_linear(photo.astype(np.uint8), 0.5), expected)


def test_each_image_blends_one_crop_of_one_of_the_five_photos(frost_dir):
    drawn = _crops_drawn(frost_dir, 200)
    photos = [k for k, _, _ in drawn]
    assert set(photos) == {0, 1, 2, 3, 4}  # frost6.jpg never: no image is bright
    assert min(np.bincount(photos)) >= 20  # uniform choice: 40 expected each
    tops = [t for k, t, _ in drawn if k < 3]
    lefts = [c for k, _, c in drawn if k < 3]
    # randint(0, size - 32): offsets 0..27 and 0..47; the last ones (28, 48) never.
    assert max(tops) <= 27 and max(lefts) <= 47
    assert min(tops) <= 3 and max(tops) >= 24 and min(lefts) <= 5 and max(lefts) >= 42


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_the_blend_is_make_cifar_c_formula_exactly(frost_dir, severity):
    count = 40
    drawn = _crops_drawn(frost_dir, count)
    rng = np.random.default_rng(severity)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    out = corrupt(images, "frost", severity, seed=3, frost_dir=str(frost_dir)).numpy()
    c0, c1 = _PARAMS["frost"][severity - 1]
    flat = {}
    for k in (3, 4):
        data = tf.io.read_file(str(frost_dir / FROST_FILES[k]))
        decoded = tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE").numpy()
        assert (decoded == decoded[0, 0]).all()  # so every crop is the same
        flat[k] = np.broadcast_to(decoded[0, 0].astype(np.float64), (32, 32, 3))
    for image, result, (k, top, left) in zip(images, out, drawn, strict=True):
        crop = _small(k)[top : top + 32, left : left + 32] if k < 3 else flat[k]
        expected = np.clip(c0 * image.astype(np.float64) + c1 * crop, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(result, expected)


def test_grey_images_blend_the_crops_luminance(frost_dir):
    drawn = _crops_drawn(frost_dir, 20)
    out = corrupt(np.zeros((20, 32, 32, 1), np.uint8), "frost", 5, 3, str(frost_dir)).numpy()
    for result, (k, top, left) in zip(out, drawn, strict=True):
        if k < 3:
            crop = _small(k)[top : top + 32, left : left + 32]
            expected = np.floor(0.45 * crop @ [0.299, 0.587, 0.114])
            assert np.abs(result[..., 0] - expected).max() <= 1


def test_other_image_sizes_scale_the_downscale(frost_dir):
    out = corrupt(np.zeros((4, 16, 16, 3), np.uint8), "frost", 5, 0, str(frost_dir))
    assert out.shape == (4, 16, 16, 3)
    photos = load_frost(frost_dir)
    _, sizes = photos.layers(16, 16)
    assert sizes.tolist()[0] == [30, 40]  # factor 0.2 * 16 / 32 = 0.1


def test_the_environment_variable_names_the_directory(frost_dir, monkeypatch):
    assert load_frost() is None
    monkeypatch.setenv(FROST_ENV, str(frost_dir))
    assert load_frost().directory == str(frost_dir)
    out = corrupt(np.zeros((2, 32, 32, 3), np.uint8), "frost", 1)
    assert out.numpy().max() > 0


def test_without_photographs_frost_is_a_clear_error():
    with pytest.raises(ValueError, match=f"needs photographs.*--frost-dir.*{FROST_ENV}"):
        corrupt(np.zeros((1, 32, 32, 3), np.uint8), "frost", 1)


def test_a_directory_without_the_files_says_which(tmp_path, frost_dir):
    (tmp_path / "frost1.png").write_bytes((frost_dir / "frost1.png").read_bytes())
    with pytest.raises(ValueError, match="lacks frost2.png, frost3.png, frost4.jpg, frost5.jpg"):
        load_frost(tmp_path)


def test_photos_too_small_for_the_images_are_refused(tmp_path):
    for name in FROST_FILES:
        encode = tf.io.encode_png if name.endswith(".png") else tf.io.encode_jpeg
        tf.io.write_file(str(tmp_path / name), encode(np.zeros((150, 150, 3), np.uint8)))
    with pytest.raises(ValueError, match="not larger than the 32 x 32 images"):
        corrupt(np.zeros((1, 32, 32, 3), np.uint8), "frost", 1, frost_dir=str(tmp_path))
    # The photos scale with the images: 16 x 16 images need them as large.
    with pytest.raises(ValueError, match="downscaled by 0.1"):
        frost.load_frost(tmp_path).layers(16, 16)


def _tiny_classifier(shape) -> keras.Model:
    inputs = keras.Input(shape)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inputs))
    return keras.Model(inputs, outputs)


def test_evaluate_ood_averages_frost_only_with_its_photographs(frost_dir):
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) % 10)
    model = _tiny_classifier((32, 32, 3))
    without = evaluate_ood(model, data, "benchmark", severities=(1,))
    assert len(without.corruptions) == 14 and "frost" in without.skipped
    assert "frost skipped (no frost photographs" in without.averaged_over
    assert without.to_dict()["skipped"] == without.skipped
    with_frost = evaluate_ood(model, data, "benchmark", severities=(1,), frost_dir=frost_dir)
    assert len(with_frost.corruptions) == 15 and with_frost.corruptions[-1] == "frost"
    assert not with_frost.skipped and "15 of the 15" in with_frost.averaged_over
    with pytest.raises(ValueError, match="frost is chosen"):
        evaluate_ood(model, data, ["frost"], severities=(1,))


def test_cli_evaluate_takes_frost_dir(frost_dir, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "d.npz",
        x_train=x,
        y_train=np.arange(12) % 10,
        x_test=x,
        y_test=np.arange(12) % 10,
    )
    _tiny_classifier((32, 32, 3)).save(tmp_path / "model.keras")
    args = ["evaluate", str(tmp_path / "model.keras"), "--data", f"npz:{tmp_path / 'd.npz'}"]
    result = CliRunner().invoke(main, [*args, "--frost-dir", str(frost_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ood.json").read_text())["accuracy"].keys() >= {"frost"}
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, [*args, "--frost-dir", str(empty)])
    assert result.exit_code == 2 and "Invalid value for --frost-dir" in result.output
    assert "lacks frost1.png" in result.output and "Traceback" not in result.output
