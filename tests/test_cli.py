import csv
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import warnings
from importlib.util import find_spec

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from flatnas_tf import __version__, load_dataset, weight_robustness
from flatnas_tf.app import runs
from flatnas_tf.cli import errors as cli_errors
from flatnas_tf.cli import search as cli_search
from flatnas_tf.cli.main import main
from flatnas_tf.persistence import storage
from flatnas_tf.training.config import TrainingConfig
from flatnas_tf.tuners.tuner import FlatNASTuner

# Two epochs of batch 64 (40 steps): every default candidate ends clearly
# above chance; one epoch of batch 128 left all three at chance on one CPU.
# Stages one block deep: each candidate builds and traces in about a third
# of the time of the default depths'.
TINY = [
    "--depths",
    "1",
    "--max-trials",
    "3",
    "--population",
    "2",
    "--epochs",
    "2",
    "--samples",
    "2",
    "--batch-size",
    "64",
    "--seed",
    "1",
]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _test_accuracy(model, manifest):
    """A model's accuracy on the test split its manifest names, counted here with NumPy."""
    data = load_dataset(
        manifest["data"], manifest["data_dir"], manifest["validation_fraction"], manifest["seed"]
    )
    x, y = zip(*data.test.as_numpy_iterator(), strict=True)
    predicted = np.argmax(model.predict(np.stack(x).astype("float32"), verbose=0), axis=-1)
    return float(np.mean(predicted == np.array(y)))


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    """A tiny search on digits that is interrupted in its second trial, then resumed."""
    out = tmp_path_factory.mktemp("cli") / "run"
    original = FlatNASTuner.run_trial
    calls = []

    def interrupted_in_second_trial(self, trial, *args, **kwargs):
        calls.append(trial.trial_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, trial, *args, **kwargs)

    # With tensorboard installed (the test extra), the search also logs to TensorBoard.
    board = ["--tensorboard", str(out.parent / "tb")] if find_spec("tensorboard") else []
    FlatNASTuner.run_trial = interrupted_in_second_trial
    try:
        first = CliRunner().invoke(
            main, ["search", "--out", str(out), *TINY, "--no-export", *board]
        )
    finally:
        FlatNASTuner.run_trial = original
    assert first.exit_code == 130, first.output
    assert "Run the same command again to resume" in first.output
    finished = json.loads((out / "search" / "trial_000" / "trial.json").read_text())
    assert finished["status"] == "COMPLETED"

    # Exports are tested through `export` (and through the supernet search).
    second = _run("search", "--out", out, *TINY, "--no-export", *board)
    assert second.exit_code == 0, second.output
    return out, first.output, second.output


def test_search_logs_every_trial_to_tensorboard(search_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = search_dir
    sessions = sorted(p.parents[1].name for p in (out.parent / "tb").glob("*/execution0/train"))
    assert sessions == ["000", "001", "002"]  # the interrupted trial's rerun included
    for trial_id in sessions:
        events = EventAccumulator(str(out.parent / "tb" / trial_id / "execution0"))
        events.Reload()
        assert {"val_accuracy", "robustness", "params"} <= set(events.Tags()["tensors"])


def test_tensorboard_without_its_package_is_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_search, "find_spec", lambda name: None)
    result = CliRunner().invoke(
        main, ["search", "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert 'pip install "flatnas-tf[tensorboard]"' in result.output
    assert not (tmp_path / "run").exists()


def test_search_resumes_without_losing_or_rerunning_trials(search_dir):
    out, first, second = search_dir
    assert "[  1/3] trial 000 started" in first
    assert "Resuming search" in second and "Reloading Tuner" not in second  # said once
    assert "trial 000 " not in second.split("Resuming")[1].split("Pareto front")[0]
    trials = sorted((out / "search").glob("trial_*/trial.json"))
    assert len(trials) == 3
    assert all(json.loads(t.read_text())["status"] == "COMPLETED" for t in trials)
    assert "Pareto front" in second and "Report:" in second


def test_a_finished_search_with_a_damaged_state_is_repaired_and_reported(search_dir, tmp_path):
    out, _, _ = search_dir
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "search" / "oracle.json").write_bytes(b"")  # e.g. a disk that filled mid-write
    (copy / "search" / "trial_001" / "trial.json").unlink()
    result = _run("search", "--out", copy, *TINY, "--no-export")
    assert result.exit_code == 0, result.output
    assert "is finished (3 of 3 trials ran)" in result.output
    assert "Recovered: oracle.json was empty; rebuilt it from 3 trial files" in result.output
    assert "Recovered: Trial 001 cannot be read back: its trial.json is missing" in result.output
    assert "started" not in result.output and "Report:" in result.output
    assert json.loads((copy / "search" / "oracle.json").read_text())["start_order"]


def test_search_writes_report_files_that_parse(search_dir):
    out, _, _ = search_dir
    report = out / "report"
    front = json.loads((report / "pareto.json").read_text())["front"]
    assert front and all("val_accuracy" in member["figures"] for member in front)
    rows = list(csv.DictReader((report / "trials.csv").open()))
    assert len(rows) == 3
    assert (report / "report.md").read_text().strip()
    for png in report.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(report.glob("*.png"))) >= 3


def test_report_command_rebuilds_and_reranks(search_dir):
    out, _, _ = search_dir
    result = _run("report", out, "--alpha", "1.0")
    assert result.exit_code == 0, result.output
    assert "report.md" in result.output


def test_export_and_evaluate_a_trial(search_dir, tmp_path):
    out, _, _ = search_dir
    front = json.loads((out / "report" / "pareto.json").read_text())["front"]
    trial_id = str(front[0]["trial_id"])
    exported = _run("export", out, "--trial", trial_id)
    assert exported.exit_code == 0, exported.output
    target = out / "models" / f"trial_{trial_id}"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["input_shape"] == [8, 8, 1] and len(manifest["label_names"]) == 10
    assert manifest["trial_id"] == trial_id and manifest["data"] == "digits"
    recorded = runs.RunDirectory(out).settings()  # the training its candidates had
    assert manifest["training"] == TrainingConfig.from_settings(recorded).to_settings()
    assert manifest["training"]["learning_rate"] == recorded["learning_rate"]
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1)).astype("float32")
    loaded = tf.saved_model.load(str(target / "saved_model"))  # keep it: it owns the variables
    served = loaded.serve(x).numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_model = keras.models.load_model(target / "model.keras")
    # Its optimizer's variables load too: no "Skipping variable loading for optimizer".
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert keras_model.optimizer.built and keras_model.optimizer.variables
    np.testing.assert_allclose(served, keras_model.predict(x, verbose=0), atol=1e-5)
    evaluated = _run(
        "evaluate", out, "--trial", trial_id, "--max-examples", "20", "--out", tmp_path / "eval"
    )
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    # The trial's model, as exported, counted on the split the manifest names.
    assert summary["test_accuracy"] == pytest.approx(
        _test_accuracy(keras_model, manifest), abs=1e-6
    )
    assert summary["ood"]["examples_per_cell"] == 20
    # An export's manifest names the data set and its split: no --data or --seed needed,
    # and the results go to the export directory, not into saved_model/.
    assert (manifest["seed"], manifest["validation_fraction"]) == (1, 0.1)
    for exported_target in (target / "saved_model", target):
        from_manifest = _run("evaluate", exported_target, "--ood", "none")
        assert from_manifest.exit_code == 0, from_manifest.output
        assert "Data set from" in from_manifest.output and "split seed 1" in from_manifest.output
        assert f"{100 * summary['test_accuracy']:.2f}%" in from_manifest.output
        assert (target / "evaluation.json").is_file()
        assert not (target / "saved_model" / "evaluation.json").exists()
    keras_file = out / "models" / f"trial_{trial_id}" / "model.keras"
    with_trial = CliRunner().invoke(main, ["evaluate", str(keras_file), "--trial", trial_id])
    assert with_trial.exit_code == 2 and "--trial is for a search directory" in with_trial.output
    from_file = _run("evaluate", keras_file, "--data", "digits", "--seed", "1", "--ood", "none")
    assert from_file.exit_code == 0, from_file.output
    assert f"{100 * summary['test_accuracy']:.2f}%" in from_file.output
    saved_model = out / "models" / f"trial_{trial_id}" / "saved_model"
    from_saved = _run(
        "evaluate",
        saved_model,
        "--data",
        "digits",
        "--seed",
        "1",
        "--ood",
        "none",
        "--out",
        tmp_path / "eval_saved",
    )
    assert from_saved.exit_code == 0, from_saved.output
    assert f"{100 * summary['test_accuracy']:.2f}%" in from_saved.output


def test_the_library_calls_behind_report_export_and_evaluate(search_dir, tmp_path):
    # flatnas_tf.app's reporting, models and evaluation, as a Python user calls them.
    from flatnas_tf.app.evaluation import evaluation_target
    from flatnas_tf.app.models import export_trials
    from flatnas_tf.app.reporting import rebuild_report

    run = runs.RunDirectory(tmp_path / "run")
    shutil.copytree(search_dir[0], run.root, ignore=shutil.ignore_patterns("models", "ood"))
    own = rebuild_report(run)
    assert own.reranked_alpha is None and own.written["report.md"].parent == run.report_dir
    reranked = rebuild_report(run, alpha=1.0)
    assert reranked.reranked_alpha == 1.0
    assert reranked.written["report.md"] == run.report_dir / "alpha-1" / "report.md"
    assert own.completed == reranked.completed == 3
    front = [t.trial_id for t in own.front]
    exported = export_trials(run)  # the front, by default
    assert list(exported) == front
    assert all((path / "manifest.json").is_file() for path in exported.values())
    with pytest.raises(runs.TrialError, match="no trial '999'"):
        export_trials(run, ["999"])
    with pytest.raises(runs.TrialError, match="name the trial"):
        evaluation_target(run.root)
    of_trial = evaluation_target(run.root, front[0])
    assert of_trial.out == run.root / "evaluate" / f"trial_{front[0]}"
    assert of_trial.trial_id == front[0] and of_trial.settings["seed"] == 1
    of_export = evaluation_target(exported[front[0]])
    assert of_export.path == exported[front[0]] / "model.keras"
    assert of_export.out == of_export.manifest_dir == exported[front[0]]
    assert of_export.settings["seed"] == 1 and of_export.trial_id is None
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(
        of_export.load((8, 8, 1)).predict(x, verbose=0),
        of_trial.load((8, 8, 1)).predict(x, verbose=0),
        atol=1e-5,
    )


def test_finishing_a_search_again_keeps_its_exports_and_adds_the_front_under_corruptions(
    search_dir, tmp_path
):
    # The library's finishing step (flatnas_tf.app.finishing), on a copy of the CLI's search.
    from flatnas_tf.app.finishing import finish_search

    run = runs.RunDirectory(tmp_path / "run")
    shutil.copytree(search_dir[0], run.root, ignore=shutil.ignore_patterns("models", "ood"))
    settings = run.settings()
    data = load_dataset("digits", seed=1)
    lines = []
    first = finish_search(
        run, settings, data=data, ood_source=data, corruptions=["brightness"], severities=[2],
        ood_examples=30, echo=lines.append,
    )  # fmt: skip
    ids = [t.trial_id for t in first.front]
    assert ids and first.exported == ids and first.kept == [] and list(first.ood) == ids
    for trial_id in ids:
        manifest = json.loads((run.model_dir(trial_id) / "manifest.json").read_text())
        assert manifest["trial_id"] == trial_id and manifest["seed"] == 1
        assert json.loads((run.ood_dir / f"trial_{trial_id}.json").read_text())["severities"] == [2]
    assert "Front members evaluated under corruptions" in first.report_file.read_text()
    assert f"trial {ids[0]}  val_acc" in "\n".join(lines)  # the front, one line per trial
    again = finish_search(run, settings, export=True)
    assert again.exported == [] and again.kept == ids and again.ood == {}


def test_train_a_trial_of_the_search(search_dir, tmp_path):
    out, _, _ = search_dir
    result = _run(
        "train", "--search", out, "--trial", "0", "--epochs", "1", "--rho", "0.2",
        "--out", tmp_path / "trained",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "trained" / "manifest.json").read_text())
    # model.evaluate's figure, recorded by train, against a count of the saved model's answers.
    trained = keras.models.load_model(tmp_path / "trained" / "model.keras")
    assert manifest["test_accuracy"] == pytest.approx(_test_accuracy(trained, manifest), abs=1e-6)
    # R as a trial of this search measures it: its sigma and samples, the split's seed.
    settings = json.loads((out / "run.json").read_text())
    data = load_dataset(
        manifest["data"], manifest["data_dir"], manifest["validation_fraction"], manifest["seed"]
    )
    robustness = weight_robustness(
        trained, data.batches("validation", 64), sigma=settings["sigma"],
        samples=settings["samples"], seed=manifest["seed"],
    )  # fmt: skip
    assert manifest["figures"]["robustness"] == pytest.approx(robustness.R, abs=1e-9)
    assert f"R {robustness.R:.2f}" in result.output
    # The search's training, as run.json recorded it, with the option given overriding it.
    searched = TrainingConfig.from_settings(settings)
    assert manifest["training"] == {**searched.to_settings(), "rho": 0.2}
    assert searched.to_settings() == TrainingConfig().override(learning_rate=0.1).to_settings()
    # Its manifest records the split it was trained on: evaluate needs no --data or --seed.
    evaluated = _run("evaluate", tmp_path / "trained", "--ood", "none")
    assert evaluated.exit_code == 0, evaluated.output
    assert f"{100 * manifest['test_accuracy']:.2f}%" in evaluated.output


def test_train_that_diverges_stops_with_one_line_and_writes_no_model(search_dir, tmp_path):
    out, _, _ = search_dir
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    result = CliRunner().invoke(
        main,
        ["train", "--search", str(out), "--trial", "0", "--epochs", "1",
         "--learning-rate", "1e30", "--out", str(tmp_path / "diverged")],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Training diverged" in result.output and "lower learning rate" in result.output
    assert not (tmp_path / "diverged" / "model.keras").exists()
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the search untouched


def test_config_file_values_apply_and_flags_override(tmp_path):
    config = tmp_path / "search.toml"
    config.write_text("[search]\nalpha = 1.5\n")
    result = CliRunner().invoke(main, ["search", "--config", str(config)])
    assert result.exit_code == 2 and "alpha" in result.output  # the file's value was used
    config.write_text("alpha = 1.5\n")
    overridden = CliRunner().invoke(
        main, ["search", "--config", str(config), "--alpha", "0.5", "--population", "1"]
    )
    assert "--population" in overridden.output  # --alpha from the flag passed
    # TOML lists (or one value) for the comma-separated options, checked as the flags' text is.
    config.write_text("depths = [1, 2]\nwidths = [0.25, 0.5]\npopulation = 1\n")
    listed = CliRunner().invoke(main, ["search", "--config", str(config)])
    assert listed.exit_code == 2 and "'--population'" in listed.output  # the lists passed
    for bad in ("depths = [1, 5]", "depths = 1.5", "depths = true", 'widths = ["a"]'):
        config.write_text(bad + "\n")
        refused = CliRunner().invoke(main, ["search", "--config", str(config)])
        assert refused.exit_code == 2 and bad.split()[0] in refused.output, bad
        assert "Traceback" not in refused.output


@pytest.mark.parametrize(
    "args, option",
    [
        (["search", "--data", "no_such_data"], "--data"),
        (["search", "--data", ""], "--data"),
        (["evaluate", "SEARCH", "--trial", "0", "--data", ""], "--data"),
        (["search", "--alpha", "1.5"], "--alpha"),
        (["search", "--sigma", "-0.1"], "--sigma"),
        (["search", "--samples", "0"], "--samples"),
        (["search", "--max-params", "0"], "--max-params"),
        (["search", "--population", "1"], "--population"),
        (["search", "--mode", "accuracy"], "--mode"),
        (["search", "--widths", "0.5,x"], "--widths"),
        (["search", "--depths", "1,5"], "--depths"),
        (["supernet", "--depths", "two"], "--depths"),
        (["search", "--config", "MISSING.toml"], "--config"),
        (["search", "--config", "BAD.toml"], "--config"),
        (["search", "--config", "UNKNOWN.toml"], "--config"),
        (["search", "--out", "FOREIGN"], "--out"),
        (["search", "--epochs", "0"], "--epochs"),
        (["search", "--rho", "nan"], "--rho"),
        (["search", "--momentum", "-0.9"], "--momentum"),
        (["search", "--label-smoothing", "1"], "--label-smoothing"),
        (["search", "--learning-rate", "inf"], "--learning-rate"),
        (["search", "--max-params", "inf"], "--max-params"),
        (["search", "--config", "NAN.toml"], "--sigma"),
        (["search", "--data", "npz:HUGE_LABEL.npz"], "--data"),
        (["search", "--data", "npz:UNSEEN_LABEL.npz"], "--data"),
        (["search", "--out", "LOCKED"], "in use by process"),
        (["search", "--out", "UNMARKED", "--overwrite"], "format marker"),
        (["search", "--supernet", "FOREIGN"], "no trained supernet"),
        (["supernet", "--out", "FOREIGN", "--epochs", "1"], "holds other files"),
        (["supernet", "--distillation", "2"], "--distillation"),
        (["report", "MISSING_DIR"], "DIRECTORY"),
        (["report", "FOREIGN"], "not a flatnas-tf search"),
        (["export", "SEARCH", "--trial", "999"], "--trial"),
        (["evaluate", "SEARCH"], "--trial"),
        (["evaluate", "SEARCH", "--trial", "999"], "--trial"),
        (["train", "--search", "SEARCH", "--trial", "999", "--out", "x"], "--trial"),
        (
            ["train", "--hyperparameters", "BAD.toml", "--data", "digits", "--out", "x"],
            "--hyperparameters",
        ),
        (
            ["train", "--hyperparameters", "DEPTH5.json", "--data", "digits", "--out", "x"],
            "`stage1_depth` must be an integer in 1..4",
        ),
        (
            ["train", "--hyperparameters", "LIST.json", "--data", "digits", "--out", "x"],
            "must hold a JSON object",
        ),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(
    args, option, tmp_path, search_dir, request
):
    (tmp_path / "FOREIGN").mkdir()
    (tmp_path / "FOREIGN" / "precious.txt").write_text("keep me")
    (tmp_path / "BAD.toml").write_text("alpha = [unclosed")
    (tmp_path / "UNKNOWN.toml").write_text("alhpa = 0.3\n")
    (tmp_path / "NAN.toml").write_text("sigma = nan\n")
    (tmp_path / "DEPTH5.json").write_text('{"stage1_depth": 5}')
    (tmp_path / "LIST.json").write_text("[2, 3]")
    images = np.zeros((20, 8, 8), np.uint8)
    labels = np.arange(20) % 3
    np.savez(
        tmp_path / "HUGE_LABEL.npz",
        x_train=images,
        y_train=labels * 10**9,
        x_test=images,
        y_test=labels,
    )
    np.savez(
        tmp_path / "UNSEEN_LABEL.npz",
        x_train=images,
        y_train=labels,
        x_test=images,
        y_test=labels + 97,
    )
    (tmp_path / "LOCKED").mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    request.addfinalizer(lambda: (sleeper.kill(), sleeper.wait()))
    owner = {"host": socket.gethostname(), "pid": sleeper.pid, "since": 0}
    (tmp_path / "LOCKED" / "run.lock").write_text(json.dumps(owner))
    (tmp_path / "UNMARKED").mkdir()
    (tmp_path / "UNMARKED" / "run.json").write_text('{"flatnas_tf_version": "0.1"}')
    (tmp_path / "UNMARKED" / "precious.txt").write_text("keep me")
    replace = {
        "MISSING.toml": tmp_path / "missing.toml",
        "BAD.toml": tmp_path / "BAD.toml",
        "UNKNOWN.toml": tmp_path / "UNKNOWN.toml",
        "NAN.toml": tmp_path / "NAN.toml",
        "DEPTH5.json": tmp_path / "DEPTH5.json",
        "LIST.json": tmp_path / "LIST.json",
        "FOREIGN": tmp_path / "FOREIGN",
        "MISSING_DIR": tmp_path / "missing_dir",
        "SEARCH": search_dir[0],
        "npz:HUGE_LABEL.npz": f"npz:{tmp_path / 'HUGE_LABEL.npz'}",
        "npz:UNSEEN_LABEL.npz": f"npz:{tmp_path / 'UNSEEN_LABEL.npz'}",
        "LOCKED": tmp_path / "LOCKED",
        "UNMARKED": tmp_path / "UNMARKED",
    }
    result = CliRunner().invoke(main, [str(replace.get(a, a)) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1 and option in result.output, result.output
    assert (tmp_path / "FOREIGN" / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "FOREIGN").iterdir()) == ["precious.txt"]
    assert (tmp_path / "UNMARKED" / "precious.txt").read_text() == "keep me"
    assert (tmp_path / "UNMARKED" / "run.json").exists()


def test_overwrite_deletes_only_what_a_search_wrote(tmp_path):
    run = runs.RunDirectory(tmp_path / "run")
    run.prepare({"data": "digits"}, overwrite=False)
    for name in ("search/trial_0", "report", "models/trial_0", "data"):
        (run.root / name).mkdir(parents=True)
    (run.root / "notes.txt").write_text("mine")
    (run.root / "data" / "results.csv").write_text("mine too")
    assert run.prepare({"data": "digits", "alpha": 0.9}, overwrite=True) is False
    assert sorted(p.name for p in run.root.iterdir()) == ["data", "notes.txt", "run.json"]
    assert (run.root / "data" / "results.csv").read_text() == "mine too"
    assert json.loads(run.settings_file.read_text())["format"] == runs.FORMAT


def test_a_full_disk_ends_with_one_line_and_exit_code_1(tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(storage, "write_bytes", full)
    result = CliRunner().invoke(main, ["search", "--out", str(tmp_path / "run"), *TINY])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: the disk is full")


def test_changed_settings_are_refused_without_overwrite(search_dir):
    out, _, _ = search_dir
    result = CliRunner().invoke(main, ["search", "--out", str(out), *TINY, "--alpha", "0.9"])
    assert result.exit_code == 2
    assert "alpha 0.5 -> 0.9" in result.output and "--overwrite" in result.output
    assert len(list((out / "search").glob("trial_*"))) == 3  # nothing deleted


def test_a_search_without_a_front_says_why(tmp_path):
    out = tmp_path / "run"
    result = _run("search", "--out", out, *TINY, "--max-params", "1000")
    assert result.exit_code == 0, result.output
    assert "No trial is on the front" in result.output
    assert "3 over max_params" in (out / "report" / "report.md").read_text()
    assert not (out / "models").exists() or not any((out / "models").iterdir())


def test_a_search_whose_trials_all_fail_exits_1_with_one_line(tmp_path, monkeypatch):
    def cannot_train(self, hp, *args, **kwargs):
        raise ValueError("this candidate cannot be trained")

    monkeypatch.setattr(FlatNASTuner, "train_and_measure", cannot_train)
    result = CliRunner().invoke(main, ["search", "--out", str(tmp_path / "run"), *TINY])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 3 trials failed") and "cannot be trained" in last


@pytest.fixture(scope="module")
def supernet_search(tmp_path_factory):
    """A one-epoch digits supernet, and a two-trial search through it."""
    root = tmp_path_factory.mktemp("supernet")
    trained = _run(
        "supernet", "--out", root / "sn", "--epochs", "1", "--seed", "1", "--depths", "1",
        "--width", "0.5",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    search = _run(
        "search", "--supernet", root / "sn", "--out", root / "run", *TINY, "--epochs", "1"
    )
    assert search.exit_code == 0, search.output
    return root, trained.output, search.output


def test_supernet_then_a_search_through_it(supernet_search):
    root, trained, search = supernet_search
    assert "epoch   1/1  largest: loss" in trained
    assert f"flatnas-tf search --supernet {root / 'sn'}" in trained
    state = json.loads((root / "sn" / "supernet.json").read_text())
    assert state["data"] == {"data": "digits", "validation_fraction": 0.1, "seed": 1}
    assert "through the supernet in" in search and "[  3/3] trial" in search
    settings = json.loads((root / "run" / "run.json").read_text())
    assert settings["widths"] == [0.5] and settings["epochs"] == 1  # the supernet's width
    assert settings["depths"] == [1]  # and its depths
    assert settings["learning_rate"] == 0.01  # the fine-tuning default
    assert settings["supernet"]["weights"] == state["weights"]
    models = sorted((root / "run" / "models").glob("trial_*/saved_model"))
    assert models  # the front was exported as for any search
    # A finished supernet run returns at once (its width and depths need not be given
    # again); so does the finished search, keeping its exports.
    again = _run("supernet", "--out", root / "sn", "--epochs", "1", "--seed", "1")
    assert again.exit_code == 0 and "epoch " not in again.output
    manifests = {p: p.stat().st_mtime_ns for p in (root / "run" / "models").glob("*/manifest.json")}
    rerun = _run("search", "--supernet", root / "sn", "--out", root / "run", *TINY, "--epochs", "1")
    assert rerun.exit_code == 0, rerun.output
    assert f"The search in {root / 'run'} is finished (3 of 3 trials ran)" in rerun.output
    assert "started" not in rerun.output and "Exporting" not in rerun.output
    assert "Reloading Tuner" not in rerun.output
    assert "Kept the exports of trial" in rerun.output
    assert f"0 exported, {len(manifests)} kept." in rerun.output
    assert {p: p.stat().st_mtime_ns for p in manifests} == manifests


def test_a_surrogate_search_through_the_supernet(supernet_search, tmp_path):
    root, _, _ = supernet_search
    out = tmp_path / "run"
    surrogate = ["--surrogate", "--surrogate-initial", "4", "--surrogate-candidates", "1"]
    arguments = ["search", "--supernet", root / "sn", "--out", out, *TINY, "--epochs", "1"]
    result = _run(*arguments, "--max-trials", "5", *surrogate, "--no-export")
    assert result.exit_code == 0, result.output
    assert "surrogate refit on 4 trials" in result.output
    settings = json.loads((out / "run.json").read_text())
    assert settings["surrogate"] == {"initial_trials": 4, "candidates": 1}
    report = (out / "report" / "report.md").read_text()
    assert "## Surrogate" in report and "| 4 | 4 | " in report
    changed = _run(*arguments, "--max-trials", "5", *surrogate[:-1], "3", "--no-export")
    assert changed.exit_code == 2 and "surrogate" in changed.output  # other settings: refused
    alone = _run(*arguments, "--surrogate-candidates", "3")
    assert alone.exit_code == 2 and "--surrogate-candidates" in alone.output
    assert "needs --surrogate" in alone.output and "Traceback" not in alone.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "2"], "--validation-fraction and --seed"),
        (["--seed", "1", "--widths", "0.25"], "the supernet has width 0.5"),
        (["--seed", "1", "--depths", "1,2"], "the supernet has stage depths 1"),
    ],
)
def test_a_supernet_of_another_split_or_space_is_refused(supernet_search, tmp_path, args, message):
    root, _, _ = supernet_search
    result = CliRunner().invoke(
        main, ["search", "--supernet", str(root / "sn"), "--out", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_version_option_prints_package_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"flatnas-tf, version {__version__}"


@pytest.mark.parametrize("command", ["search", "supernet", "train", "evaluate", "export", "report"])
def test_help_of_every_command_shows_defaults(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if command in ("search", "supernet", "train"):
        assert "[default:" in result.output


def test_help_describes_the_tool():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Pareto front" in result.output


@pytest.mark.skipif(shutil.which("flatnas-tf") is None, reason="console script not on PATH")
def test_console_script_is_installed():
    completed = subprocess.run(
        ["flatnas-tf", "--version"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0
    assert __version__ in completed.stdout


#: What TensorFlow's C++ start-up writes to stderr (oneDNN notice, CUDA probes, absl).
TENSORFLOW_LOG_LINE = re.compile(
    r"^[IWE]\d{4} |cuInit|oneDNN|absl::InitializeLog|cuda drivers", re.MULTILINE
)


@pytest.mark.skipif(shutil.which("flatnas-tf") is None, reason="console script not on PATH")
def test_commands_print_no_tensorflow_start_up_lines(tmp_path):
    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(
        tmp_path / "model.keras"
    )
    x = np.zeros((10, 8, 8, 1), np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(10), x_test=x, y_test=np.arange(10))
    for args in (
        ["--help"],
        ["--version"],
        ["evaluate", "model.keras", "--data", "npz:d.npz", "--ood", "none"],
    ):
        completed = subprocess.run(
            ["flatnas-tf", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert completed.returncode == 0, completed.stderr
        output = completed.stdout + completed.stderr
        assert not TENSORFLOW_LOG_LINE.search(output), output
    assert "test accuracy" in completed.stdout


def test_held_back_start_up_lines_are_shown_when_asked_or_on_failure(capfd):
    def noisy():
        os.write(2, b"E0000 failed call to cuInit\n")

    def failing():
        noisy()
        raise ImportError("no TensorFlow")

    cli_errors._held_back_stderr(noisy, show=False)
    assert "cuInit" not in capfd.readouterr().err
    cli_errors._held_back_stderr(noisy, show=True)
    assert "cuInit" in capfd.readouterr().err
    with pytest.raises(ImportError, match="no TensorFlow"):
        cli_errors._held_back_stderr(failing, show=False)
    assert "cuInit" in capfd.readouterr().err


def test_token_problems_end_a_worker_with_one_line(tmp_path, monkeypatch):
    import click
    import grpc

    from flatnas_tf.tuners import access

    monkeypatch.delenv(access.TOKEN_ENV, raising=False)

    @cli_errors.fail_cleanly
    def worker_without_a_token():
        access.search_token(tmp_path)

    with pytest.raises(click.UsageError, match="Start the chief first"):
        worker_without_a_token()

    class Refused(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAUTHENTICATED

        def details(self):
            return "flatnas-tf: this search's chief refused a call without its token"

    @cli_errors.fail_cleanly
    def refused_worker():
        raise Refused()

    with pytest.raises(click.UsageError, match="refused a call without its token"):
        refused_worker()

    class ChiefAway(Refused):
        def code(self):
            return grpc.StatusCode.DEADLINE_EXCEEDED

    @cli_errors.fail_cleanly
    def lonely_worker():
        raise ChiefAway()

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "10.0.0.7")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    with pytest.raises(click.ClickException, match="chief at 10.0.0.7:8000 did not answer") as e:
        lonely_worker()
    assert e.value.exit_code == 1 and not isinstance(e.value, click.UsageError)
