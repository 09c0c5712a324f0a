"""The report of a search directory, built from synthetic trials (no training)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import threading
import time

import keras_tuner as kt
import numpy as np
import pytest

from flatnas_tf.tuners.report import FILES, write_report
from flatnas_tf.tuners.result import SearchResult
from flatnas_tf.tuners.tuner import FIGURES, FlatNASOracle

pytest.importorskip("matplotlib")

PLOTS = ("front.png", "accuracy_vs_robustness.png", "hypervolume.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PARAMS = 10_000

# (val_accuracy, robustness, params) of the completed trials, in creation order.
# Trials 0 and 1 have equal params: alpha = 1 (error only) keeps 0, alpha = 0 (R only)
# keeps 1, so re-ranking changes the front.
TRAINED = [
    (0.90, 20.0, 5_000),
    (0.80, 5.0, 5_000),
    (0.95, 30.0, 9_000),
    (0.70, 10.0, 2_000),
    (0.85, 8.0, 8_000),
    (0.60, 40.0, 9_500),  # dominated in every mode
]


def _space():
    hp = kt.HyperParameters()
    hp.Int("width", 8, 256, step=8)
    hp.Choice("depth", [1, 2, 3])
    return hp


def _figures(accuracy, robustness, params, chance_p_value=1e-9):
    return {
        "chance_p_value": chance_p_value,
        "val_accuracy": accuracy,
        "val_loss": 1.0 - accuracy,
        "accuracy": min(accuracy + 0.05, 1.0),
        "loss": 1.1 - accuracy,
        "robustness": robustness,
        "robustness_loss_gap": robustness / 100,
        "perturbed_accuracy": accuracy - robustness / 100,
        "perturbed_loss": 1.2 - accuracy,
        "params": float(params),
        "train_time_s": 1.5,
    }


def _objective_placeholders(oracle):
    # As FlatNASTuner.run_trial: every objective and their sum, NaN until measured.
    names = [o.name for o in getattr(oracle.objective, "objectives", [oracle.objective])]
    return dict.fromkeys([*names, oracle.objective.name], math.nan)


def _run(oracle, metrics, status="COMPLETED", tuner_id="tuner0"):
    trial = oracle.create_trial(tuner_id)
    if metrics is not None:
        oracle.update_trial(trial.trial_id, {**_objective_placeholders(oracle), **metrics})
    if status != "RUNNING":
        trial.status = status
        if status == "FAILED":
            trial.message = "Trial diverged (loss nan); it is not ranked."
        oracle.end_trial(trial)
    return trial


def _make_search(directory, mode="flatnas", alpha=0.5, trained=TRAINED, max_params=MAX_PARAMS):
    """A search directory: trained trials, one infeasible, one FAILED, one RUNNING."""
    oracle = FlatNASOracle(
        mode=mode,
        alpha=alpha,
        max_params=max_params,
        population_size=4,
        max_trials=20,
        seed=1,
        hyperparameters=_space(),
    )
    oracle._set_project_dir(str(directory), "search")
    oracle.verbose = 0
    for index, values in enumerate(trained):
        _run(oracle, _figures(*values))
        if index == 2:
            _run(oracle, {"params": 50_000.0})  # infeasible: only counted, never trained
            _run(oracle, None, status="FAILED")
    _run(oracle, None, status="RUNNING", tuner_id="tuner1")
    oracle.save()
    return oracle, directory / "search"


@pytest.fixture
def search(tmp_path):
    return _make_search(tmp_path)


def _dominates(a, b, directions):
    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    a, b = signs * np.asarray(a), signs * np.asarray(b)
    return bool(np.all(a <= b) and np.any(a < b))


def _brute_force_front(oracle):
    completed = oracle._completed()
    values = oracle.objective_values(completed)
    violations = oracle.constraint_violations(completed)
    feasible = [
        i for i in range(len(completed)) if violations[i] == 0 and np.isfinite(values[i]).all()
    ]
    directions = oracle.objective_directions()
    return {
        completed[i].trial_id
        for i in feasible
        if not any(_dominates(values[j], values[i], directions) for j in feasible if j != i)
    }


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000


def test_search_result_rebuilds_the_search(search):
    original, project = search
    loaded = SearchResult.load(project)
    assert (loaded.mode, loaded.alpha, loaded.max_params) == ("flatnas", 0.5, MAX_PARAMS)
    assert loaded.population_size == 4
    assert [t.trial_id for t in loaded.trials] == original.start_order
    assert {t.trial_id: t.status for t in loaded.trials} == {
        i: t.status for i, t in original.trials.items()
    }
    assert [t.trial_id for t in loaded.front()] == [t.trial_id for t in original.pareto_front()]
    statuses = sorted(t.status for t in loaded.trials)
    assert statuses.count("RUNNING") == 1 and statuses.count("FAILED") == 1


def test_search_result_restores_the_saved_mode(tmp_path):
    original, project = _make_search(tmp_path, mode="pareto", alpha=0.2)
    loaded = SearchResult.load(project)
    assert (loaded.mode, loaded.alpha) == ("pareto", 0.2)
    assert [name for name, _ in loaded.objectives()] == ["val_accuracy", "robustness", "params"]
    front = [t.trial_id for t in loaded.front()]
    assert front == [t.trial_id for t in original.pareto_front()]
    assert set(front) == _brute_force_front(original)


def test_write_report_files(search, tmp_path):
    oracle, project = search  # the oracle that wrote the search
    paths = write_report(SearchResult.load(project), tmp_path / "out")
    assert set(paths) == set(FILES) - {"surrogate.png"}  # a plain NSGA-II search
    assert all(path.parent == tmp_path / "out" and path.exists() for path in paths.values())

    document = json.loads(paths["pareto.json"].read_text())
    ids = [entry["trial_id"] for entry in document["front"]]
    assert ids == [t.trial_id for t in oracle.pareto_front()]
    assert set(ids) == _brute_force_front(oracle) and ids
    assert (document["mode"], document["alpha"], document["max_params"]) == (
        "flatnas",
        0.5,
        MAX_PARAMS,
    )
    assert document["alpha_norm"] == pytest.approx(oracle.alpha_norm(oracle._completed()))
    entry = document["front"][0]
    assert set(entry["figures"]) == set(FIGURES)
    assert set(entry["objectives"]) == {"flatnas_objective", "params"}
    assert entry["generation"] == oracle.generation_of(entry["trial_id"])
    assert set(entry["hyperparameters"]) == {"width", "depth"}
    assert document["counts"] == {
        "total": 9,
        "COMPLETED": 7,
        "FAILED": 1,
        "RUNNING": 1,
        "feasible": 6,
        "infeasible": 1,
        "over_max_params": 1,
        "at_chance": 0,
        "figure_missing": 0,
        "front": len(ids),
    }
    hv = document["hypervolume"]
    assert hv["reference"] == [0.0, 100.0, MAX_PARAMS]
    by_generation = hv["by_generation"]
    assert [g["generation"] for g in by_generation] == [0, 1, 2]
    values = [g["hypervolume"] for g in by_generation]
    assert values == sorted(values) and values[0] > 0  # an archive never loses volume
    assert all(0 < g["fraction"] <= 1 for g in by_generation)

    with open(paths["trials.csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["trial_id"] for r in rows] == oracle.start_order
    assert {r["trial_id"]: r["status"] for r in rows} == {
        i: t.status for i, t in oracle.trials.items()
    }
    assert {r["trial_id"] for r in rows if r["on_front"] == "1"} == set(ids)
    infeasible = [r for r in rows if r["status"] == "COMPLETED" and r["feasible"] == "0"]
    assert len(infeasible) == 1 and float(infeasible[0]["params"]) == 50_000
    assert infeasible[0]["val_accuracy"] == "" and infeasible[0]["on_front"] == "0"
    assert all(column in rows[0] for column in FIGURES)
    assert "objective_flatnas_objective" in rows[0]
    assert (
        json.loads(rows[0]["hyperparameters"])
        == oracle.trials[rows[0]["trial_id"]].hyperparameters.values
    )

    text = paths["report.md"].read_text()
    for line in ("| COMPLETED | 7 |", "| FAILED | 1 |", "| RUNNING | 1 |", "| **total** | **9** |"):
        assert line in text
    assert "1 infeasible" in text and f"Pareto front ({len(ids)} trials)" in text
    assert "- 1 over max_params: counted, never trained." in text
    # The front's hyperparameters: a column per front member, a row per hyperparameter.
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| hyperparameter |"))
    columns = [c.strip().removeprefix("trial ") for c in header.strip("|").split("|")[1:]]
    assert sorted(columns) == sorted(ids)
    for name in ("width", "depth"):
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        assert cells == [str(oracle.trials[i].hyperparameters.values[name]) for i in columns]
    assert "not clearly above chance" not in text
    assert "## Surrogate" not in text and "surrogate" not in document
    for name in PLOTS:
        assert f"]({name})" in text
        _assert_png(paths[name])


def test_plots_label_the_front_members_with_their_trial_ids(search, tmp_path, monkeypatch):
    from flatnas_tf.tuners import report as report_module

    labels = {}
    save = report_module._save

    def keep_labels(plt, fig, path):
        labels[path.name] = sorted(text.get_text() for text in fig.axes[0].texts)
        save(plt, fig, path)

    monkeypatch.setattr(report_module, "_save", keep_labels)
    oracle, project = search
    write_report(SearchResult.load(project), tmp_path)
    front = sorted(t.trial_id for t in oracle.pareto_front())
    assert labels["front.png"] == labels["accuracy_vs_robustness.png"] == front


def test_trials_at_chance_are_counted_and_explained(tmp_path):
    trained = [(0.90, 2.0, 5_000), (0.11, 0.0, 3_000), (0.80, 1.0, 4_000)]
    oracle = FlatNASOracle(max_params=MAX_PARAMS, population_size=2, max_trials=5, seed=0,
                           hyperparameters=_space())  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    for accuracy, robustness, params in trained:
        p_value = 0.6 if accuracy < 0.2 else 1e-12  # the collapsed one: R 0, at chance
        _run(oracle, _figures(accuracy, robustness, params, chance_p_value=p_value))
    oracle.save()
    paths = write_report(SearchResult.load(tmp_path / "search"), tmp_path / "report")
    counts = json.loads(paths["pareto.json"].read_text())["counts"]
    assert counts["infeasible"] == counts["at_chance"] == 1
    text = paths["report.md"].read_text()
    assert "- 1 not clearly above chance" in text and "p > 0.001" in text
    front = json.loads(paths["pareto.json"].read_text())["front"]
    assert 0.11 not in [member["figures"]["val_accuracy"] for member in front]


def test_hypervolume_per_generation_brute_force(search):
    _, project = search
    hv = SearchResult.load(project).hypervolume()
    # Generation 0 holds trials 0-3: three trained ones plus the infeasible one.
    points = np.array([[a, r, p] for a, r, p in TRAINED[:3]])
    # The union of the boxes [0, acc] x [R, 100] x [params, MAX_PARAMS]: slices of
    # constant params, each an area swept along R.
    expected = 0.0
    for low, high in zip(
        sorted(points[:, 2]), [*sorted(points[:, 2])[1:], MAX_PARAMS], strict=True
    ):
        active = points[points[:, 2] <= low][:, :2]
        area = 0.0
        order = active[np.argsort(active[:, 1])]  # by R ascending
        best_accuracy = 0.0
        edges = [*order[1:, 1], 100.0]
        for (accuracy, left), right in zip(order, edges, strict=True):
            best_accuracy = max(best_accuracy, accuracy)
            area += best_accuracy * (right - left)
        expected += area * (high - low)
    assert hv.values[0] == pytest.approx(expected)
    assert hv.counted == [3, 6, 6]


def test_hypervolume_reference_without_max_params(tmp_path):
    _, project = _make_search(tmp_path, max_params=None)
    result = SearchResult.load(project)
    assert result.max_params is None and result.chance_significance is not None
    hv = result.hypervolume()
    largest = max(params for _, _, params in TRAINED)
    assert hv.reference == pytest.approx((0.0, 100.0, 1.1 * largest))
    assert hv.counted == [3, 6, 6]  # the untrained trial has no accuracy: never counted
    assert hv.fractions[-1] == pytest.approx(hv.values[-1] / (100.0 * 1.1 * largest))


def test_realpha_changes_the_front_without_writing_back(tmp_path):
    _, project = _make_search(tmp_path, alpha=1.0)
    saved = (project / "oracle.json").read_text()
    result = SearchResult.load(project)
    scores = {t.trial_id: t.score for t in result.trials}
    paths = write_report(result, tmp_path / "a", plots=False)
    assert set(paths) == {"pareto.json", "trials.csv", "report.md"}
    assert not (tmp_path / "a" / "front.png").exists()
    error_only = json.loads(paths["pareto.json"].read_text())
    flatness_only = json.loads(
        write_report(result, tmp_path / "b", alpha=0.0, plots=False)["pareto.json"].read_text()
    )
    first, second = [t.trial_id for t in result.trials[:2]]  # trials 0 and 1 of TRAINED
    front_a = {e["trial_id"] for e in error_only["front"]}
    front_b = {e["trial_id"] for e in flatness_only["front"]}
    assert first in front_a and second not in front_a
    assert second in front_b and first not in front_b
    assert (flatness_only["alpha"], flatness_only["saved_alpha"]) == (0.0, 1.0)
    assert "re-ranked; the search used 1" in (tmp_path / "b" / "report.md").read_text()
    # Nothing written back, the result as it was.
    assert (project / "oracle.json").read_text() == saved
    assert result.alpha == 1.0
    assert {t.trial_id: t.score for t in result.trials} == scores
    assert [t.trial_id for t in result.front()] == [e["trial_id"] for e in error_only["front"]]
    with pytest.raises(ValueError, match="alpha"):
        write_report(result, tmp_path / "c", alpha=1.5, plots=False)


def test_report_with_no_completed_trial(tmp_path):
    oracle = FlatNASOracle(population_size=2, max_trials=4, seed=0, hyperparameters=_space())
    oracle._set_project_dir(str(tmp_path), "empty")
    oracle.verbose = 0
    oracle.save()
    paths = write_report(SearchResult.load(tmp_path / "empty"), tmp_path / "out0")
    assert json.loads(paths["pareto.json"].read_text())["front"] == []
    assert "No completed trials yet" in paths["report.md"].read_text()
    assert paths["trials.csv"].read_text().count("\n") == 1  # the header only

    _run(oracle, None, status="RUNNING")
    oracle.save()
    paths = write_report(SearchResult.load(tmp_path / "empty"), tmp_path / "out1")
    text = paths["report.md"].read_text()
    assert "| RUNNING | 1 |" in text and "no hypervolume" in text
    for name in PLOTS:
        _assert_png(paths[name])


def test_half_written_oracle_json_is_read_again(search):
    _, project = search
    path = project / "oracle.json"
    content = path.read_text()
    path.write_text(content[: len(content) // 2])  # as caught mid-write

    def finish():
        time.sleep(0.3)
        path.write_text(content)

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        result = SearchResult.load(project, attempts=20, delay=0.05)
    finally:
        writer.join()
    assert len(result.trials) == 9


def test_unreadable_oracle_json_gives_up(search):
    _, project = search
    (project / "oracle.json").write_text("{")
    with pytest.raises(ValueError, match=r"not valid JSON \(.*\) after 2 reads"):
        SearchResult.load(project, attempts=2, delay=0.01)


def test_not_a_search_directory(tmp_path):
    with pytest.raises(ValueError, match="is not a flatnas-tf search directory") as error:
        SearchResult.load(tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "oracle.json").exists()
    (tmp_path / "oracle.json").write_text(json.dumps({"seed": 1}))
    with pytest.raises(ValueError, match="not written by a FlatNASOracle"):
        SearchResult.load(tmp_path)


def test_report_command_needs_no_tensorflow(search, tmp_path):
    # `flatnas-tf report` reads, ranks and plots a search from its files alone.
    original, project = search
    (project.parent / "run.json").write_text(json.dumps({"format": "flatnas-tf search"}))
    code = (
        "import sys\n"
        "from flatnas_tf.cli.main import main\n"
        f"sys.argv = ['flatnas-tf', 'report', {str(project.parent)!r}, '--alpha', '1']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    pareto_json = json.loads((project.parent / "report" / "alpha-1" / "pareto.json").read_text())
    reference = FlatNASOracle(
        alpha=1.0, max_params=MAX_PARAMS, population_size=4, hyperparameters=_space()
    )
    expected = [t.trial_id for t in reference.rank(original._completed()).front()]
    assert [entry["trial_id"] for entry in pareto_json["front"]] == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "is not valid JSON"), ('{"seed": 1}', "was not written by a FlatNASOracle")],
)
def test_report_of_a_damaged_search_is_a_one_line_error(search, content, message):
    from click.testing import CliRunner

    from flatnas_tf.cli.main import main

    _, project = search
    (project.parent / "run.json").write_text(json.dumps({"format": "flatnas-tf search"}))
    (project / "oracle.json").write_text(content)
    trial_files = {p: p.read_bytes() for p in project.glob("trial_*/trial.json")}
    done = CliRunner().invoke(main, ["report", str(project.parent)])
    assert done.exit_code == 2, done.output
    error = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0] and "Traceback" not in done.output
    assert {p: p.read_bytes() for p in trial_files} == trial_files  # nothing touched
    assert not (project.parent / "report").exists()


def test_report_command_reranks_beside_the_search_report_and_prints_the_front(search):
    from click.testing import CliRunner

    from flatnas_tf.cli.main import main

    original, project = search
    (project.parent / "run.json").write_text(json.dumps({"format": "flatnas-tf search"}))
    own = CliRunner().invoke(main, ["report", str(project.parent)])
    assert own.exit_code == 0, own.output
    own_report = (project.parent / "report" / "report.md").read_bytes()
    done = CliRunner().invoke(main, ["report", str(project.parent), "--alpha", "1"])
    assert done.exit_code == 0, done.output
    assert (project.parent / "report" / "report.md").read_bytes() == own_report  # kept
    assert (project.parent / "report" / "alpha-1" / "report.md").is_file()
    reference = FlatNASOracle(
        alpha=1.0, max_params=MAX_PARAMS, population_size=4, hyperparameters=_space()
    )
    front = [t.trial_id for t in reference.rank(original._completed()).front()]
    lines = done.output.split("Pareto front:")[1].splitlines()
    assert (
        "re-ranked with alpha 1" in lines[0]
        and f"{len(front)} of {len(original._completed())} completed" in lines[0]
    )
    assert [line.split()[1] for line in lines[1:] if line.strip()] == front
    elsewhere = project.parent.parent / "elsewhere"
    assert (
        CliRunner().invoke(main, ["report", str(project.parent), "--out", str(elsewhere)]).exit_code
        == 0
    )
    assert (elsewhere / "report.md").is_file()


def test_report_shows_the_ood_results_written_beside_it(search):
    from click.testing import CliRunner

    from flatnas_tf.cli.main import main
    from flatnas_tf.robustness.ood import OODResult

    original, project = search
    run_dir = project.parent
    (run_dir / "run.json").write_text(json.dumps({"format": "flatnas-tf search"}))
    trial_id = original._completed()[0].trial_id
    result = OODResult(
        "builtin",
        {"contrast": (0.5, 0.4, 0.3, 0.2, 0.1)},
        (1, 2, 3, 4, 5),
        20,
        clean_accuracy=0.9,
        set_name="chosen",
        skipped={"saturate": "not applicable: moves no pixel"},
    )
    (run_dir / "ood").mkdir(exist_ok=True)
    (run_dir / "ood" / f"trial_{trial_id}.json").write_text(result.to_json())
    (run_dir / "ood" / "trial_zz.json").write_text("{")  # damaged: left out, not an error
    done = CliRunner().invoke(main, ["report", str(run_dir)])
    assert done.exit_code == 0, done.output
    markdown = (run_dir / "report" / "report.md").read_text()
    section = markdown.split("## Out-of-distribution accuracy")[1].split("## Plots")[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| {trial_id} |")]
    assert len(rows) == 1 and "| builtin | 90.00 | 30.00 | 70.00 |" in rows[0]
    assert "saturate skipped (not applicable" in rows[0] and "zz" not in section
