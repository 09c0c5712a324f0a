"""Tests of corrupted sets: written once, read back equal to the on-the-fly images."""

import hashlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from flatnas_tf import corrupt, evaluate_ood
from flatnas_tf.robustness.corrupted_set import (
    MANIFEST,
    CorruptedSetError,
    load_corrupted_set,
    write_corrupted_set,
)

NAMES = ("gaussian_noise", "contrast")
SEVERITIES = (1, 3)
BATCH = 16


def _arrays(n=40, seed=0):
    """Smooth 8x8 grey images (blurs and noise change them) with labels from their brightness."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 3, 3, 1)).astype(np.float32)
    x = np.clip(tf.image.resize(coarse, (8, 8)).numpy(), 0, 255).astype(np.uint8)
    y = (x.reshape(n, -1).mean(axis=1) > x.mean()).astype(np.int64) + 2 * (x[:, 0, 0, 0] > 128)
    return x, y


def _model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs / 255.0))
    return keras.Model(inputs, keras.layers.Dense(4)(hidden))


def _write(directory, data=None, **kwargs):
    arguments = {"corruptions": NAMES, "severities": SEVERITIES, "batch_size": BATCH, **kwargs}
    return write_corrupted_set(_arrays() if data is None else data, directory, **arguments)


def test_cells_hold_the_images_corrupt_computes_batch_by_batch(tmp_path):
    x, y = _arrays()
    corrupted = _write(tmp_path / "set", seed=5)
    cells = {(name, severity): images for name, severity, images in corrupted.cells()}
    assert list(cells) == [(n, s) for n in NAMES for s in SEVERITIES]
    for (name, severity), images in cells.items():
        expected = np.concatenate(
            [
                corrupt(x[start : start + BATCH], name, severity, seed=[5, start // BATCH]).numpy()
                for start in range(0, len(x), BATCH)
            ]
        )
        np.testing.assert_array_equal(images, expected)
        assert np.any(images != x)  # the corruption did something
    clean, labels = corrupted.clean()
    np.testing.assert_array_equal(clean, x)
    np.testing.assert_array_equal(labels, y)


def test_evaluating_the_set_gives_the_on_the_fly_table(tmp_path):
    model, data = _model(), _arrays()
    _write(tmp_path / "set")
    read = evaluate_ood(model, str(tmp_path / "set"), batch_size=BATCH)
    computed = evaluate_ood(model, data, corruptions=NAMES, severities=SEVERITIES, batch_size=BATCH)
    assert read.accuracy == computed.accuracy
    assert read.clean_accuracy == computed.clean_accuracy
    assert read.examples == computed.examples == 40
    assert read.severities == SEVERITIES and read.set_name == computed.set_name
    assert read.source == f"corrupted set {tmp_path / 'set'}"
    # A subset of the severities and of the images, in the order asked for.
    part = evaluate_ood(model, tmp_path / "set", severities=(3, 1), max_examples=20)
    assert part.examples == 20
    first = evaluate_ood(
        model, (data[0][:20], data[1][:20]), corruptions=NAMES, severities=(3,), batch_size=BATCH
    )
    assert [row[0] for row in part.accuracy.values()] == [row[0] for row in first.accuracy.values()]


def test_the_manifest_records_settings_and_checksums(tmp_path):
    corrupted = _write(tmp_path / "set", description={"data": "arrays", "seed": 3})
    manifest = json.loads((tmp_path / "set" / MANIFEST).read_text())
    assert manifest["complete"] is True
    assert manifest["description"] == {"data": "arrays", "seed": 3}
    assert (manifest["seed"], manifest["batch_size"], manifest["examples"]) == (0, BATCH, 40)
    assert manifest["severities"] == list(SEVERITIES) and manifest["image_shape"] == [8, 8, 1]
    assert set(manifest["files"]) == {"clean.npy", "labels.npy", *(f"{n}.npy" for n in NAMES)}
    for file, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / "set" / file).read_bytes()).hexdigest() == digest
    stacked = np.load(tmp_path / "set" / "contrast.npy")
    assert stacked.shape == (len(SEVERITIES) * 40, 8, 8, 1) and stacked.dtype == np.uint8
    assert corrupted.corruptions == NAMES


def test_corruptions_that_change_nothing_are_left_out_with_the_reason(tmp_path):
    corrupted = _write(tmp_path / "set", corruptions=("saturate", "contrast"))
    assert corrupted.corruptions == ("contrast",)
    assert "not applicable" in corrupted.skipped["saturate"]
    assert "saturate" in evaluate_ood(_model(), tmp_path / "set").skipped


def test_an_interrupted_write_is_refused_then_resumed(tmp_path):
    class InterruptedWriteError(Exception):
        pass

    def stop_after_first(name, written_now):
        raise InterruptedWriteError

    with pytest.raises(InterruptedWriteError):
        _write(tmp_path / "set", on_corruption=stop_after_first)
    with pytest.raises(CorruptedSetError, match="incomplete"):
        load_corrupted_set(tmp_path / "set")
    first = (tmp_path / "set" / f"{NAMES[0]}.npy").stat().st_mtime_ns
    calls = []
    corrupted = _write(tmp_path / "set", on_corruption=lambda n, now: calls.append((n, now)))
    assert calls == [(NAMES[0], False), (NAMES[1], True)]
    assert (tmp_path / "set" / f"{NAMES[0]}.npy").stat().st_mtime_ns == first
    assert len(list(corrupted.cells())) == 4
    calls.clear()
    _write(tmp_path / "set", on_corruption=lambda n, now: calls.append((n, now)))
    assert calls == [(NAMES[0], False), (NAMES[1], False)]  # complete: nothing rewritten


def test_a_damaged_file_is_rewritten_on_resume_and_refused_on_read(tmp_path):
    _write(tmp_path / "set")
    path = tmp_path / "set" / "contrast.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptedSetError, match="checksum"):
        list(load_corrupted_set(tmp_path / "set").cells())
    calls = []
    _write(tmp_path / "set", on_corruption=lambda n, now: calls.append((n, now)))
    assert calls == [(NAMES[0], False), (NAMES[1], True)]
    assert len(list(load_corrupted_set(tmp_path / "set").cells())) == 4


def test_other_settings_foreign_directories_and_wrong_reads_are_refused(tmp_path):
    _write(tmp_path / "set")
    before = (tmp_path / "set" / MANIFEST).read_bytes()
    with pytest.raises(CorruptedSetError, match="other settings"):
        _write(tmp_path / "set", seed=1)
    assert (tmp_path / "set" / MANIFEST).read_bytes() == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(CorruptedSetError, match="not empty"):
        _write(tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir() if not p.name.startswith(".")] == [
        "notes.txt"
    ]
    with pytest.raises(CorruptedSetError, match="holds no"):
        load_corrupted_set(tmp_path / "busy")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(CorruptedSetError, match="not a flatnas-tf corrupted set"):
        load_corrupted_set(tmp_path / "foreign")
    model = _model()
    with pytest.raises(ValueError, match="leave `corruptions` unset"):
        evaluate_ood(model, tmp_path / "set", corruptions="benchmark")
    with pytest.raises(ValueError, match=r"\[5\] are not in it"):
        evaluate_ood(model, tmp_path / "set", severities=(1, 5))
    with pytest.raises(ValueError, match="corrupted set"):
        evaluate_ood(model, str(tmp_path / "busy"))


# ------------------------------------------------------------------- CLI ---


@pytest.fixture(scope="module")
def cli_case(tmp_path_factory):
    """A tiny npz data set, a saved model for it, and a set `prepare corrupted` wrote."""
    from click.testing import CliRunner

    from flatnas_tf.cli.main import main

    root = tmp_path_factory.mktemp("cli")
    x, y = _arrays(90, seed=3)
    np.savez(root / "tiny.npz", x_train=x[:60, ..., 0], y_train=y[:60], x_test=x[60:, ..., 0],
             y_test=y[60:])  # fmt: skip
    model = _model()
    model.save(root / "model.keras")
    spec = f"npz:{root / 'tiny.npz'}"
    arguments = ["prepare", "corrupted", "--data", spec, "--out", str(root / "tiny-c")]
    arguments += ["--corruptions", ",".join(NAMES), "--severities", "1,3"]
    first = CliRunner().invoke(main, arguments, catch_exceptions=False)
    again = CliRunner().invoke(main, arguments, catch_exceptions=False)
    return root, spec, model, first, again


def _cli(*args):
    from click.testing import CliRunner

    from flatnas_tf.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_prepare_corrupted_writes_a_set_and_resumes(cli_case):
    root, spec, _, first, again = cli_case
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].startswith(f"[1] {NAMES[0]} written") and lines[1].startswith("[2] contrast")
    assert f"ready in {root / 'tiny-c'}" in lines[-1]
    assert f"flatnas-tf evaluate TARGET --ood {root / 'tiny-c'}" in lines[-1]
    assert again.exit_code == 0 and f"[1] {NAMES[0]} already written" in again.output
    corrupted = load_corrupted_set(root / "tiny-c")
    assert corrupted.manifest["description"]["data"] == spec
    assert corrupted.examples == 30 and corrupted.severities == SEVERITIES


def test_evaluate_reads_the_set_and_gives_the_on_the_fly_table(cli_case, tmp_path):
    from flatnas_tf import load_dataset

    root, spec, model, _, _ = cli_case
    result = _cli("evaluate", root / "model.keras", "--data", spec, "--ood", root / "tiny-c",
                  "--out", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "evaluation.json").read_text())
    expected = evaluate_ood(model, load_dataset(spec), corruptions=NAMES, severities=SEVERITIES)
    assert summary["ood"]["accuracy"] == {n: list(a) for n, a in expected.accuracy.items()}
    assert summary["ood"]["clean_accuracy"] == expected.clean_accuracy


@pytest.mark.parametrize(
    "args, option",
    [
        (["prepare", "corrupted"], "--out"),
        (["prepare", "cifar10_corrupted"], "--from"),
        (["prepare", "corrupted", "--out", "NEW", "--from", "x.tar"], "--from"),
        (["prepare", "corrupted", "--out", "NEW", "--severities", "0,9"], "--severities"),
        (["prepare", "corrupted", "--out", "NEW", "--corruptions", "fog,smog"], "--corruptions"),
        (["prepare", "corrupted", "--out", "SET", "--seed", "4"], "other settings"),
        (["evaluate", "MODEL", "--data", "SPEC", "--ood", "nowhere"], "--ood"),
        (["evaluate", "MODEL", "--data", "SPEC", "--ood", "EMPTY"], "holds no corrupted.json"),
        # Another split: the set's test images may be the model's training images.
        (["evaluate", "MODEL", "--data", "SPEC", "--seed", "5", "--ood", "SET"], "seed 0"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(cli_case, tmp_path, args, option):
    root, spec, _, _, _ = cli_case
    (tmp_path / "empty").mkdir()
    replace = {"NEW": tmp_path / "new", "SET": root / "tiny-c", "MODEL": root / "model.keras",
               "SPEC": spec, "EMPTY": tmp_path / "empty"}  # fmt: skip
    args = [replace.get(a, a) for a in args]
    if args[:2] == ["prepare", "corrupted"] and "--data" not in args:
        args += ["--data", spec]
    before = (root / "tiny-c" / MANIFEST).read_bytes()
    result = _cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and option in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert (root / "tiny-c" / MANIFEST).read_bytes() == before
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
