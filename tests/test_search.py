"""SearchConfig and run_search: a search from a typed configuration, as the CLI runs one."""

from __future__ import annotations

import json

import pytest

from flatnas_tf.app import runs
from flatnas_tf.app.search import (
    DEFAULT_EPOCHS,
    DEFAULT_FINE_TUNE_EPOCHS,
    SearchConfig,
    SearchConfigError,
    _without_reload_line,
    run_search,
)
from flatnas_tf.app.split import DataSplit
from flatnas_tf.space.sandwich import STATE_FILE, SupernetStateError
from flatnas_tf.training.config import TrainingConfig


def test_the_settings_are_what_run_json_records_of_a_search():
    config = SearchConfig(
        split=DataSplit("digits", seed=2), alpha=0.25, widths=[0.5], depths=[1, 2],
        surrogate={"candidates": 3},
    )  # fmt: skip
    settings = config.settings()
    assert set(runs.DEFINING) - set(settings) == {"supernet"}  # added by run_search when used
    assert settings["widths"] == [0.5] and settings["seed"] == 2 and settings["alpha"] == 0.25
    assert settings["depths"] == [1, 2] and SearchConfig().depths == (2, 3, 4)  # the space's
    assert settings["sam"] == TrainingConfig().sam  # the training's own record
    assert json.loads(json.dumps(settings)) == settings


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "accuracy"}, "`mode` must be one of"),
        ({"alpha": 1.5}, "alpha"),
        ({"max_trials": 0}, "max_trials"),
        ({"widths": (0.5, 9.0)}, "widths"),
        ({"widths": ()}, "at least one width"),
        ({"depths": (1, 5)}, "depths"),
        ({"depths": (0,)}, "depths"),
        ({"depths": ()}, "at least one stage depth"),
        ({"population": 1}, "population"),
        ({"epochs": 0}, "epochs"),
        ({"sigma": float("nan")}, "sigma"),
        ({"surrogate": {"initial": 4}}, "initial_trials and candidates"),
        ({"split": "digits"}, "`split` must be a DataSplit"),
    ],
)
def test_a_configuration_that_cannot_be_is_refused_with_its_name(values, message):
    with pytest.raises((ValueError, TypeError), match=message):
        SearchConfig(**values)
    SearchConfig(epochs=0, supernet_dir="somewhere")  # fine-tuning nothing: inherited weights


def test_resolved_defaults_follow_how_the_candidates_train(tmp_path):
    scratch = SearchConfig.resolved(max_trials=3)
    assert scratch.epochs == DEFAULT_EPOCHS and scratch.widths == SearchConfig().widths
    assert scratch.depths == SearchConfig().depths
    assert SearchConfig.resolved(depths=[1]).depths == (1,)
    assert SearchConfig(depths=[3, 1, 3]).depths == (1, 3)  # one space, however written
    assert scratch.training == TrainingConfig() and scratch.max_trials == 3
    given = SearchConfig.resolved(widths=[0.5], epochs=3, learning_rate=0.05)
    assert (given.widths, given.epochs, given.training.learning_rate) == ((0.5,), 3, 0.05)
    with pytest.raises(SearchConfigError, match="0 epochs trains nothing") as refused:
        SearchConfig.resolved(epochs=0)
    assert refused.value.field == "epochs"
    # Through a supernet (the state train_supernet writes after its first epoch, in short):
    # its width, fine-tuning epochs and the fine-tuning rate, unless given.
    supernet = tmp_path / "supernet"
    supernet.mkdir()
    state = {"format": 1, "epochs_done": 1, "width": 0.5, "space": {"depths": [1, 2]}}
    (supernet / STATE_FILE).write_text(json.dumps(state))
    tuned = SearchConfig.resolved(supernet_dir=supernet, training=TrainingConfig(sam="sam"))
    assert tuned.widths == (0.5,) and tuned.epochs == DEFAULT_FINE_TUNE_EPOCHS
    assert tuned.depths == (1, 2)  # the supernet's space
    assert tuned.training == TrainingConfig(sam="sam", learning_rate=0.01)
    assert tuned.supernet_dir == str(supernet)
    kept = SearchConfig.resolved(supernet_dir=supernet, widths=[0.5], epochs=0, learning_rate=0.1)
    assert (kept.epochs, kept.training.learning_rate) == (0, 0.1)
    with pytest.raises(SearchConfigError, match="the supernet has width 0.5") as refused:
        SearchConfig.resolved(supernet_dir=supernet, widths=[0.25, 0.5])
    assert refused.value.field == "widths"
    assert SearchConfig.resolved(supernet_dir=supernet, depths=[2, 1]).depths == (1, 2)
    with pytest.raises(SearchConfigError, match="the supernet has stage depths 1,2") as refused:
        SearchConfig.resolved(supernet_dir=supernet, depths=[1])
    assert refused.value.field == "depths"
    with pytest.raises(SupernetStateError, match="holds no trained supernet"):
        SearchConfig.resolved(supernet_dir=tmp_path / "nothing")


def test_a_configuration_built_past_resolved_is_refused_another_space_than_its_supernet(
    tmp_path,
):
    supernet = tmp_path / "supernet"
    supernet.mkdir()
    split = DataSplit("digits")
    state = {"format": 1, "epochs_done": 1, "width": 0.5, "space": {"depths": [1, 2]}}
    (supernet / STATE_FILE).write_text(json.dumps({**state, "data": split.identity()}))
    cases = [
        ({}, r"has width 0.5; this search's widths are \[0.25, 0.5\]"),
        ({"widths": [0.5]}, r"has stage depths 1,2; this search's depths are \[2, 3, 4\]"),
    ]
    for fields, message in cases:
        config = SearchConfig(split=split, supernet_dir=str(supernet), **fields)
        with pytest.raises(runs.RunError, match=message):
            run_search(config, tmp_path / "search")
        assert not (tmp_path / "search").exists()  # refused before anything is written


def test_resolved_surrogate_sizes_default_to_one_population():
    assert SearchConfig.resolved().surrogate is None
    sized = SearchConfig.resolved(surrogate=True, population=6, surrogate_candidates=2)
    assert sized.surrogate == {"initial_trials": 6, "candidates": 2}
    assert SearchConfig.resolved(surrogate=True).surrogate == {
        "initial_trials": SearchConfig.population,
        "candidates": SearchConfig.population,
    }
    for field in ("surrogate_initial", "surrogate_candidates"):
        with pytest.raises(SearchConfigError, match="needs --surrogate") as refused:
            SearchConfig.resolved(**{field: 4})
        assert refused.value.field == field


def test_a_command_writes_under_runs_named_after_its_data_by_default():
    assert runs.default_directory("digits").as_posix() == "runs/digits"
    named = runs.default_directory("tfds:cifar10/3.0.2?split=train", "-supernet")
    assert named.as_posix() == "runs/tfds_cifar10_3.0.2_split_train-supernet"


def test_only_keras_tuner_reload_line_is_dropped_when_the_tuner_is_built():
    shown = []
    with _without_reload_line(shown.append):
        print("Reloading Tuner from runs/digits/search/tuner0.json")
        print("Recovered: trial 003: its trial.json is missing. It is kept as FAILED.")
    assert shown == ["Recovered: trial 003: its trial.json is missing. It is kept as FAILED."]


def test_a_search_runs_finishes_and_refuses_another_configuration_in_its_directory(tmp_path):
    config = SearchConfig(
        split=DataSplit("digits", seed=1), max_trials=2, population=2, widths=(0.25,), epochs=2,
        samples=2, depths=(1,),
    )  # fmt: skip
    lines = []
    finished = run_search(config, tmp_path / "run", export=False, verbose=0, echo=lines.append)
    assert lines[0] == f"Starting search in {tmp_path / 'run'}"
    assert len(finished.result.trials) == 2 and finished.front
    assert finished.report_file.is_file() and finished.exported == []
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {k: recorded[k] for k in config.settings()} == config.settings()
    again = run_search(config, tmp_path / "run", export=False, verbose=0, echo=lines.append)
    assert "is finished (2 of 2 trials ran): nothing to train" in "\n".join(lines)
    assert [t.trial_id for t in again.front] == [t.trial_id for t in finished.front]
    with pytest.raises(runs.RunError, match=r"other settings \(alpha 0.5 -> 0.75\)"):
        run_search(SearchConfig(**{**vars(config), "alpha": 0.75}), tmp_path / "run", verbose=0)


def test_a_worker_joins_only_a_search_of_its_own_settings(tmp_path):
    run = runs.RunDirectory(tmp_path / "run")
    settings = SearchConfig(depths=(1,)).settings()
    with pytest.raises(runs.RunError, match="not a flatnas-tf search"):
        run.join(settings)  # no chief has laid the directory out
    run.prepare(settings, overwrite=False)
    run.join(settings)
    # Other depths would build other networks than the chief's trials record.
    with pytest.raises(runs.RunError, match=r"depths \[1\] -> \[2, 3, 4\]\): start the worker"):
        run.join(SearchConfig().settings())
    assert runs.changed_settings({"alpha": 0.5}, {"alpha": 0.75}) == ["alpha 0.5 -> 0.75"]
    # A supernet is the one its weights are, wherever a host reads it from.
    chief = {**settings, "supernet": {"path": "/mnt/a/sn", "weights": "abc"}}
    moved = {**settings, "supernet": {"path": "/home/b/sn", "weights": "abc"}}
    other = {**settings, "supernet": {"path": "/mnt/a/sn", "weights": "def"}}
    assert runs.changed_settings(chief, moved) == []
    assert runs.changed_settings(chief, other) == ["supernet 'abc' -> 'def'"]
    assert runs.changed_settings(settings, moved) == ["supernet None -> 'abc'"]


def test_a_run_json_rebuilds_its_space_with_its_depths_or_those_of_before_they_were_recorded():
    from flatnas_tf.app import models

    settings = {"input_shape": [8, 8, 1], "num_classes": 10, "widths": [0.25]}
    assert models.hypermodel({**settings, "depths": [1]}, TrainingConfig()).depths == (1,)
    assert models.hypermodel(settings, TrainingConfig()).depths == (2, 3, 4)


def test_the_search_commands_defaults_are_the_configurations():
    from flatnas_tf.cli.main import main

    defaults = {p.name: p.default for p in main.commands["search"].params}
    config = SearchConfig()
    names = ("mode", "alpha", "max_trials", "population", "batch_size", "sigma", "samples")
    assert {n: defaults[n] for n in names} == {n: getattr(config, n) for n in names}
    assert defaults["max_params"] == config.max_params
    assert [float(w) for w in defaults["widths"].split(",")] == list(config.widths)
    assert defaults["validation_fraction"] == config.split.validation_fraction


def test_a_search_recorded_before_a_training_setting_existed_resumes_with_its_default(tmp_path):
    run = runs.RunDirectory(tmp_path / "run")
    settings = SearchConfig().settings()
    newer = ("momentum", "weight_decay", "label_smoothing")
    run.prepare({k: v for k, v in settings.items() if k not in newer}, overwrite=False)
    with pytest.raises(runs.RunError, match="momentum 0.9 -> 0.5"):
        run.prepare({**settings, "momentum": 0.5}, overwrite=False)
    assert run.prepare(settings, overwrite=False) is True  # trained with the defaults: resumed
    assert {k: run.settings()[k] for k in newer} == {k: settings[k] for k in newer}
    # Before the stage depths were recorded, every search had the default space's.
    spaced = runs.RunDirectory(tmp_path / "spaced")
    spaced.prepare({k: v for k, v in settings.items() if k != "depths"}, overwrite=False)
    with pytest.raises(runs.RunError, match=r"depths \[2, 3, 4\] -> \[1\]"):
        spaced.prepare({**settings, "depths": [1]}, overwrite=False)
    assert spaced.prepare(settings, overwrite=False) is True
    # Before the schedule was recorded, trials trained at a constant rate: not the same search.
    older = runs.RunDirectory(tmp_path / "older")
    older.prepare({k: v for k, v in settings.items() if k not in ("schedule", "warmup")}, False)
    with pytest.raises(runs.RunError, match="schedule None -> 'cosine'"):
        older.prepare(settings, overwrite=False)
