"""SearchResult: a finished (or running) search read back as a library object."""

import json
import math
import threading

import numpy as np
import pytest
from support.searches import one_conv_space

from flatnas_tf.persistence.export import load_model
from flatnas_tf.tuners import pareto
from flatnas_tf.tuners.result import SearchResult
from flatnas_tf.tuners.tuner import FIGURES, FlatNASOracle, FlatNASTuner


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits):
    """A finished four-trial search (two generations), its tuner and directory."""
    directory = tmp_path_factory.mktemp("result")
    tuner = FlatNASTuner(
        one_conv_space(),
        max_params=None,
        chance_significance=None,
        population_size=2,
        max_trials=4,
        seed=1,
        samples=1,
        directory=str(directory),
        project_name="search",
    )
    tuner.search(digits[0], validation_data=digits[1], epochs=1, verbose=0)
    return tuner, directory / "search"


def _ids(trials):
    return [trial.trial_id for trial in trials]


def test_loaded_result_equals_the_oracle(finished):
    tuner, project = finished
    oracle = tuner.oracle
    result = SearchResult.load(project)
    assert _ids(result.trials) == oracle.start_order
    assert _ids(result.completed) == oracle.start_order  # all four completed
    assert _ids(result.front()) == _ids(oracle.pareto_front())
    assert _ids(result.rank().best()) == _ids(oracle.get_best_trials(10))
    assert result.population_size == 2 and result.mode == "flatnas"
    for trial in result.trials:
        assert result.figures(trial) == pytest.approx(tuner.figures(oracle.trials[trial.trial_id]))
        assert result.generation_of(trial) == oracle.generation_of(trial.trial_id)
        assert result.parents_of(trial) == oracle.parents_of(trial.trial_id)
    # The hypervolume history: generations 0 and 1, recomputed from the figures.
    history = result.hypervolume()
    assert history.generations == [0, 1]
    points = [
        [result.figures(t)[name] for name in ("val_accuracy", "robustness", "params")]
        for t in result.completed
    ]
    expected = pareto.hypervolume(points, ["max", "min", "min"], history.reference)
    assert history.values[-1] == pytest.approx(expected)
    assert history.counted[-1] == len(result.completed) == 4
    assert history.values[0] <= history.values[1]
    assert history.reference[2] == pytest.approx(1.1 * max(p[2] for p in points))


def test_reranking_matches_an_oracle_with_that_alpha_and_changes_nothing(finished):
    tuner, project = finished
    oracle = tuner.oracle
    saved_file = (project / "oracle.json").read_text()
    saved_state = json.dumps(oracle.get_state(), sort_keys=True, default=str)
    scores = {i: t.score for i, t in oracle.trials.items()}
    result = tuner.result()  # a snapshot of the live oracle
    for alpha, mode in ((0.0, None), (1.0, None), (None, "pareto")):
        reference = FlatNASOracle(
            mode=mode or "flatnas",
            alpha=0.5 if alpha is None else alpha,
            max_params=None,
            chance_significance=None,
            population_size=2,
        )
        completed = [oracle.trials[trial.trial_id] for trial in result.completed]
        expected = pareto.survival_order(
            reference.objective_values(completed),
            reference.objective_directions(),
            reference.constraint_violations(completed),
        )
        ranking = result.rank(alpha=alpha, mode=mode)
        assert _ids(ranking.best()) == [completed[row].trial_id for row in expected]
        assert _ids(result.front(alpha=alpha, mode=mode)) == _ids(ranking.front())
    assert result.alpha == oracle.alpha == 0.5
    assert json.dumps(oracle.get_state(), sort_keys=True, default=str) == saved_state
    assert {i: t.score for i, t in oracle.trials.items()} == scores
    assert (project / "oracle.json").read_text() == saved_file
    with pytest.raises(ValueError, match="alpha"):
        result.rank(alpha=2.0)


def test_rows_hold_every_trial_and_figure(finished):
    _, project = finished
    result = SearchResult.load(project)
    rows = result.to_rows()
    assert [row["trial_id"] for row in rows] == _ids(result.trials)
    front = set(_ids(result.front()))
    ranking = result.rank()
    for row, trial, rank in zip(rows, result.trials, ranking.ranks, strict=True):
        assert row["on_front"] == (trial.trial_id in front) == (rank == 0)
        assert row["rank"] == rank and row["feasible"]
        assert {name: row[name] for name in FIGURES} == pytest.approx(
            result.figures(trial), nan_ok=True
        )
        assert row["hp_filters"] == trial.values["filters"]
        assert row["hp_kernel"] == trial.values["kernel"]
        assert math.isfinite(row["objective_flatnas_objective"])
    assert json.dumps(rows)  # plain values only


def test_models_load_and_export(finished, digits, tmp_path):
    tuner, project = finished
    result = SearchResult.load(project, hypermodel=one_conv_space())
    best = result.front()[0]
    model = result.load_model(best.trial_id)
    _, accuracy = model.evaluate(digits[1], verbose=0)
    assert accuracy == pytest.approx(result.figures(best)["val_accuracy"], abs=1e-6)

    notes = result.export(best, tmp_path / "export", metadata={"data": "digits"}, model=model)
    assert notes == []
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["trial_id"] == best.trial_id and manifest["data"] == "digits"
    assert manifest["input_shape"] == [8, 8, 1] and manifest["num_classes"] == 10
    assert manifest["figures"]["params"] == result.figures(best)["params"]
    images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    expected = model.predict(images, verbose=0)
    for path in (tmp_path / "export" / "model.keras", tmp_path / "export" / "saved_model"):
        np.testing.assert_allclose(load_model(path).predict(images, verbose=0), expected, atol=1e-5)

    with pytest.raises(ValueError, match="has no hypermodel"):
        SearchResult.load(project).load_model(best)
    with pytest.raises(KeyError, match="no trial '99'"):
        result.trial("99")


def _add_trials(oracle, count):
    for index in range(count):
        trial = oracle.create_trial("writer")
        oracle.update_trial(
            trial.trial_id,
            {"val_accuracy": 0.5 + index / 100, "robustness": 1.0, "params": 100.0 + index},
        )
        trial.status = "COMPLETED"
        oracle.end_trial(trial)


def test_loading_while_a_search_writes(tmp_path):
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Int("width", 1, 1000)
    oracle = FlatNASOracle(
        mode="pareto",
        max_params=None,
        chance_significance=None,
        population_size=4,
        max_trials=None,
        seed=0,
        hyperparameters=hp,
    )
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    _add_trials(oracle, 1)
    writer = threading.Thread(target=_add_trials, args=(oracle, 30))
    writer.start()
    seen = []
    try:
        while writer.is_alive():
            result = SearchResult.load(tmp_path / "search")
            seen.append(len(result.completed))
            assert len(result.front()) >= 1
    finally:
        writer.join()
    assert seen == sorted(seen)  # a reader never misses a trial it saw before
    assert len(SearchResult.load(tmp_path / "search").completed) == 31
    assert not list((tmp_path / "search").rglob("*.damaged"))
