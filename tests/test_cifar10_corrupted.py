"""TFDS's real cifar10_corrupted builder, fed a small archive in CIFAR-10-C's layout.

No mock_data here: the test writes CIFAR-10-C.tar as published (CIFAR-10-C/<file>.npy
with severities 1..5 stacked, labels.npy), TFDS's own builder prepares it through its
manual-download mechanism, and `tfds.load` reads it back. The archive is not the official
2.9 GB one, so its size and sha256 cannot be the ones TFDS registers for the download
address: the tests register the small archive's own (`registered`), as TFDS's
`register_checksums` would, and TFDS still verifies them.
"""

import dataclasses
import io
import json
import logging
import tarfile

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from tensorflow_datasets.core.download import checksums

from flatnas_tf.cli.main import main
from flatnas_tf.data import DatasetUnavailableError, import_tfds
from flatnas_tf.robustness import cifar10_corrupted
from flatnas_tf.robustness.ood import evaluate_ood

tfds = import_tfds()
PER_SEVERITY = 5
NAMES = cifar10_corrupted.BENCHMARK + cifar10_corrupted.EXTRA
LABELS = (3 * np.arange(PER_SEVERITY)) % 10


def _correct(index: int, severity: int) -> int:
    """How many of a cell's images carry their own label's mark: a known accuracy."""
    return (index + severity) % (PER_SEVERITY + 1)


def _marked(labels: np.ndarray, correct: int) -> np.ndarray:
    """Images whose only lit pixel, (0, k), is read as class k by `_reader`."""
    images = np.zeros((len(labels), 32, 32, 3), np.uint8)
    for i, label in enumerate(labels):
        images[i, 0, label if i < correct else (label + 1) % 10, 0] = 255
    return images


def _reader() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(10, use_bias=False)
    outputs = dense(keras.layers.Flatten()(inputs))
    kernel = np.zeros((32 * 32 * 3, 10), np.float32)
    kernel[3 * np.arange(10), np.arange(10)] = 1.0
    dense.kernel.assign(kernel)
    return keras.Model(inputs, outputs)


def _expected(names, severities=range(1, 6)) -> dict[str, list[float]]:
    return {
        name: [_correct(NAMES.index(name), s) / PER_SEVERITY for s in severities] for name in names
    }


def _write_archive(path, files: dict[str, np.ndarray]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, array in files.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            info = tarfile.TarInfo(f"CIFAR-10-C/{name}")
            info.size = buffer.tell()
            tar.addfile(info, io.BytesIO(buffer.getvalue()))


def _layout() -> dict[str, np.ndarray]:
    files = {"labels.npy": np.tile(LABELS, 5).astype(np.uint8)}
    for index, name in enumerate(NAMES):
        stacked = [_marked(LABELS, _correct(index, s)) for s in range(1, 6)]
        files[f"{cifar10_corrupted._FILES.get(name, name)}.npy"] = np.concatenate(stacked)
    return files


def _register(monkeypatch, archive, **changes) -> None:
    """Registers `archive`'s size and sha256 for the download address, as TFDS's own."""
    builder_class = tfds.builder_cls("cifar10_corrupted")
    (url,) = builder_class.url_infos
    info = dataclasses.replace(checksums.compute_url_info(archive), filename="CIFAR-10-C.tar")
    monkeypatch.setattr(builder_class, "url_infos", {url: dataclasses.replace(info, **changes)})


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    # Named otherwise than TFDS's file name: prepare hands it over under that name.
    path = tmp_path_factory.mktemp("download") / "cifar10c-by-hand.tar"
    _write_archive(path, _layout())
    return path


@pytest.fixture(scope="module")
def prepared(archive, tmp_path_factory):
    """All 95 configs prepared by TFDS's builder; (data dir, configs reported)."""
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    reported = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        _register(monkeypatch, archive)
        configs = cifar10_corrupted.prepare(
            archive, data_dir, "all", on_config=lambda *call: reported.append(call)
        )
    return data_dir, configs, reported


@pytest.fixture
def registered(monkeypatch, archive):
    _register(monkeypatch, archive)


def test_prepare_writes_every_config_in_tfds_layout(prepared):
    data_dir, configs, reported = prepared
    assert configs == cifar10_corrupted.config_names(NAMES, range(1, 6)) and len(configs) == 95
    assert reported == [(config, True) for config in configs]
    version_dir = data_dir / "cifar10_corrupted" / "frost_3" / "1.0.0"
    assert (version_dir / "dataset_info.json").is_file()
    assert not cifar10_corrupted.missing_configs(configs, data_dir)
    # The extraction (2.9 GB for the real archive) and the hand-over link are gone.
    assert not list((data_dir / "downloads").iterdir())


def test_tfds_load_reads_the_archive_rows_of_each_severity(prepared):
    data_dir, _, _ = prepared
    index = NAMES.index("elastic")  # its file is elastic_transform.npy
    for severity in (1, 4):
        cell = tfds.load(
            f"cifar10_corrupted/elastic_{severity}",
            split="test",
            data_dir=str(data_dir),
            as_supervised=True,
            download=False,
        )
        images, labels = zip(*cell.as_numpy_iterator(), strict=True)
        # TFDS stores examples in its own (hashed key) order: compare by label (unique).
        by_label = np.argsort(labels)
        order = np.argsort(LABELS)
        np.testing.assert_array_equal(np.asarray(labels)[by_label], LABELS[order])
        expected = _marked(LABELS, _correct(index, severity))[order]
        np.testing.assert_array_equal(np.stack(images)[by_label], expected)


def test_evaluate_ood_gives_the_known_accuracy_table(prepared):
    data_dir, _, _ = prepared
    result = evaluate_ood(
        _reader(), "cifar10_corrupted", "all", severities=(2, 5), data_dir=data_dir
    )
    assert result.examples == PER_SEVERITY
    expected = _expected(NAMES, (2, 5))
    assert {name: list(row) for name, row in result.accuracy.items()} == expected
    expected_mean = np.mean(list(expected.values()))
    assert result.mean_corruption_accuracy == pytest.approx(expected_mean)


def test_cli_evaluate_reads_the_prepared_data(prepared, tmp_path):
    data_dir, _, _ = prepared
    model_path = tmp_path / "model.keras"
    _reader().save(model_path)
    clean = _marked(LABELS, PER_SEVERITY)  # every clean image read right
    np.savez(tmp_path / "clean.npz", x_train=clean, y_train=LABELS, x_test=clean, y_test=LABELS)
    args = ["evaluate", str(model_path), "--data", f"npz:{tmp_path / 'clean.npz'}"]
    result = CliRunner().invoke(
        main, [*args, "--ood", "cifar10_corrupted", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "ood.json").read_text())
    assert written["accuracy"] == _expected(cifar10_corrupted.BENCHMARK)
    assert "test accuracy" in result.output and "100.00%" in result.output


def test_a_second_prepare_resumes_without_redoing(prepared, archive, registered):
    data_dir, _, _ = prepared
    reported = []
    cifar10_corrupted.prepare(archive, data_dir, on_config=lambda *call: reported.append(call))
    assert len(reported) == 75 and not any(now for _, now in reported)


def test_unprepared_data_names_the_prepare_command(prepared, tmp_path):
    data_dir, _, _ = prepared
    with pytest.raises(DatasetUnavailableError) as raised:
        evaluate_ood(_reader(), "cifar10_corrupted", data_dir=tmp_path / "empty")
    message = str(raised.value)
    assert "75 configs missing: gaussian_noise_1, gaussian_noise_2, gaussian_noise_3" in message
    assert "flatnas-tf prepare cifar10_corrupted --from CIFAR-10-C.tar --data-dir" in message
    assert "zenodo.org" in message


def test_prepare_command_from_the_archive(archive, registered, tmp_path):
    data_dir = tmp_path / "tfds"
    result = CliRunner().invoke(
        main, ["prepare", "cifar10_corrupted", "--from", str(archive), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("[1/75] cifar10_corrupted/gaussian_noise_1 prepared")
    assert f"75 configs ready in {data_dir}" in lines[-1]
    assert "flatnas-tf evaluate TARGET --ood cifar10_corrupted --data-dir" in lines[-1]
    assert not cifar10_corrupted.missing_configs(
        cifar10_corrupted.config_names(cifar10_corrupted.BENCHMARK, range(1, 6)), data_dir
    )


def test_tfds_refuses_an_archive_whose_sha256_differs(archive, monkeypatch, tmp_path):
    _register(monkeypatch, archive, checksum="0" * 64)
    with pytest.raises(DatasetUnavailableError, match="wrong checksum"):
        cifar10_corrupted.prepare(archive, tmp_path, ["frost"])
    assert cifar10_corrupted.missing_configs(["frost_1"], tmp_path) == ["frost_1"]


def test_not_the_official_size_is_refused_before_tfds_reads_it(archive, tmp_path):
    with pytest.raises(ValueError, match=r"expects CIFAR-10-C.tar of 2,918,471,680 bytes"):
        cifar10_corrupted.prepare(archive, tmp_path)
    result = CliRunner().invoke(
        main, ["prepare", "cifar10_corrupted", "--from", str(archive), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "Invalid value for --from" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "cifar10_corrupted").exists()


@pytest.mark.parametrize(
    "files, match",
    [
        ({"labels.npy": LABELS}, "lacks CIFAR-10-C/gaussian_noise.npy"),
        (None, "is not a tar archive"),
    ],
)
def test_a_wrong_archive_says_what_is_wrong(files, match, monkeypatch, tmp_path):
    path = tmp_path / "CIFAR-10-C.tar"
    if files is None:
        path.write_bytes(b"not a tar" * 1000)
    else:
        _write_archive(path, files)
    _register(monkeypatch, path)
    with pytest.raises(ValueError, match=match):
        cifar10_corrupted.prepare(path, tmp_path / "tfds")


def test_asking_what_is_prepared_logs_no_warning(caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    # A config folder without TFDS's files made TFDS warn "Variant folder ... has no ...".
    (tmp_path / "cifar10_corrupted" / "frost_1" / "1.0.0").mkdir(parents=True)
    assert cifar10_corrupted.missing_configs(["frost_1", "fog_2"], tmp_path) == [
        "frost_1",
        "fog_2",
    ]
    assert not [r for r in caplog.records if "Variant folder" in r.getMessage()]
