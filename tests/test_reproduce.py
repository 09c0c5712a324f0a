"""benchmarks/reproduce.py end to end on a toy budget, and its pieces."""

import json
import math
import re

import numpy as np
import pytest
import reproduce

from flatnas_tf import weight_robustness

TOY = [
    "--data", "digits", "--max-train", "120", "--archs", "2", "--epochs", "1",
    "--widths", "0.25", "--depths", "1", "--samples", "2", "--ood-examples", "16",
    "--corruptions", "gaussian_noise,contrast", "--severities", "1,5",
    "--search-seeds", "0", "--population", "2", "--search-trials", "2",
    "--chance-significance", "0",  # 1 epoch on 120 images: every model is near chance
]  # fmt: skip


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _accuracy(model, split, count=None):
    """A model's accuracy on (the first `count` examples of) a split, counted with NumPy."""
    x, y = zip(*split.take(-1 if count is None else count).as_numpy_iterator(), strict=True)
    predicted = np.argmax(model.predict(np.stack(x).astype("float32"), verbose=0), axis=-1)
    return float(np.mean(predicted == np.array(y)))


@pytest.fixture(scope="module")
def measured_here():
    """For each model the toy run trains (by its record's total_s): figures measured here."""
    return {}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, measured_here):
    root = tmp_path_factory.mktemp("reproduce")
    argv = [*TOY, "--work", str(root / "work"), "--out", str(root / "out")]
    train_and_measure, measure_candidate = reproduce.train_and_measure, reproduce.measure_candidate
    current = {}

    def measuring_train_and_measure(hypermodel, hp, data, *args, **kwargs):
        current["data"] = data
        record = train_and_measure(hypermodel, hp, data, *args, **kwargs)
        measured_here[record["total_s"]] = current.pop("figures")
        return record

    def measuring_measure_candidate(model, validation, **kwargs):
        # The trained model, before R perturbs its weights: the accuracies by NumPy.
        data = current["data"]
        figures = {
            "val_accuracy": _accuracy(model, data.validation),
            "test_accuracy": _accuracy(model, data.test),
            "ood_clean_accuracy": _accuracy(model, data.test, 16),  # --ood-examples
        }
        result = measure_candidate(model, validation, **kwargs)
        figures["robustness"] = weight_robustness(model, validation, **kwargs).R  # same seed
        current["figures"] = figures
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reproduce, "train_and_measure", measuring_train_and_measure)
        patch.setattr(reproduce, "measure_candidate", measuring_measure_candidate)
        report = reproduce.main(argv)
    return root, argv, report


def test_toy_run_writes_a_well_formed_report(toy_run, measured_here):
    root, argv, report = toy_run
    out = root / "out"
    assert report == out / "report.md"
    text = report.read_text()
    assert "## 1. Correlation study" in text and "## 2. Search comparison" in text
    assert "--archs 2 --epochs 1" in text
    assert "K = 2 architectures, E = 1 epochs" in text
    # Two observations give no correlation: the report says so instead of a number.
    # (n counts the models with every figure finite: at most 2 here.)
    assert re.search(r"\| R vs corruption accuracy \| [012] \| n/a \| n/a \| - \|", text)
    for image in ("correlation.png", "search.png"):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({image})" in text

    results = _strict_json((out / "results.json").read_text())
    assert [r["arch"] for r in results["study"]] == [0, 1]
    retrains = [retrain for search in results["searches"] for retrain in search["retrains"]]
    # Every model trained once (searches that pick the same architecture share a retrain).
    assert len(measured_here) == len(results["study"]) + len({r["total_s"] for r in retrains})
    for record in results["study"] + retrains:
        # As recorded (measure_candidate) and as measured here on the model.
        here = measured_here[record["total_s"]]
        for name in ("val_accuracy", "test_accuracy", "ood_clean_accuracy", "robustness"):
            assert record[name] == pytest.approx(here[name], abs=1e-6), name
    for record in results["study"]:
        assert record["params"] > 0
        severities = record["by_severity"].values()  # each the mean of its 2 corruptions
        assert record["corruption_accuracy"] == pytest.approx(sum(severities) / len(severities))
        assert record["mce"] == pytest.approx(100 * (1 - record["corruption_accuracy"]))
        assert set(record["by_severity"]) == {"1", "5"}
        assert "2 corruptions (chosen) x 2 severities, 16 images per cell" in record["ood_set"]
    assert len(results["searches"]) == 2
    assert {s["alpha"] for s in results["searches"]} == {1.0, 0.5}
    for search in results["searches"]:
        assert search["trials"] == 2
        assert search["pick"] in search["front"]
        (retrain,) = search["retrains"]
        assert retrain["epochs"] == 1  # its figures are checked with the study's above

    study_rows = (out / "study.csv").read_text().splitlines()
    search_rows = (out / "search.csv").read_text().splitlines()
    assert study_rows[0].split(",") == list(reproduce.STUDY_COLUMNS)
    assert len(study_rows) == 3 and len(search_rows) == 3


def test_searches_of_one_seed_share_their_first_generation(toy_run):
    root, _, _ = toy_run
    shared = json.loads((root / "work" / "search" / "seed0_shared_trials.json").read_text())
    # Population 2, 2 trials: the alpha 0.5 search is the alpha 1 search's first
    # generation again, so it trained nothing new.
    assert len(shared) == 2
    assert {entry["trained_by"] for entry in shared.values()} == {"seed0_alpha1"}
    summaries = {
        p.name: json.loads(p.read_text()) for p in (root / "work" / "search").glob("*_summary.json")
    }
    assert summaries["seed0_alpha1_summary.json"]["trained"] == 2
    assert summaries["seed0_alpha0.5_summary.json"]["trained"] == 0
    assert "| 0.5 | 0 | 2 (0) |" in (root / "out" / "report.md").read_text()
    # Searches picking the same architecture share one retrained model.
    picks = {json.dumps(s["pick_hyperparameters"], sort_keys=True) for s in summaries.values()}
    assert len(list((root / "work" / "retrains").glob("*.json"))) == len(picks)


def test_rerun_resumes_without_training_again(toy_run):
    root, argv, _ = toy_run
    records = sorted((root / "work").rglob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in records if p.name not in ("runs.json",)}
    before = len(json.loads((root / "work" / "runs.json").read_text()))
    reproduce.main([*argv, "--stages", "report", "--alphas", "1"])
    assert len((root / "out" / "search.csv").read_text().splitlines()) == 2  # alpha 1 only
    reproduce.main(argv)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    runs = json.loads((root / "work" / "runs.json").read_text())
    assert len(runs) == before + 2 and all(r["end"] >= r["start"] for r in runs)
    report = (root / "out" / "report.md").read_text()
    assert f"{before + 2} invocation(s)" in report
    assert "--stages report --alphas 1" in report  # every distinct command is listed


def test_changed_settings_are_refused_and_records_kept(toy_run, capsys):
    root, argv, _ = toy_run
    before = sorted(p.name for p in (root / "work" / "study").iterdir())
    with pytest.raises(SystemExit) as error:
        reproduce.main([*argv, "--epochs", "2"])
    assert error.value.code == 2
    assert "other settings (epochs, retrain_epochs)" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "work" / "study").iterdir()) == before


def test_missing_data_exits_with_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        reproduce.main(["--data", f"npz:{tmp_path}/none.npz", "--work", str(tmp_path / "w")])
    assert error.value.code == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing recorded for a run that never started


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--population", "1"], "--population must be >= 2"),
        (["--alphas", "1.5"], "--alphas must lie in"),
        (["--stages", "train"], "--stages must name"),
        (["--widths", "a,b"], "comma-separated floats"),
        (["--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_bad_arguments_exit_with_code_2(bad, message, capsys):
    with pytest.raises(SystemExit) as error:
        reproduce.parse_args(bad)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_correlations_of_enough_architectures_are_estimated():
    rng = np.random.default_rng(0)
    records = []
    for arch in range(12):
        clean = rng.uniform(0.3, 0.5)
        corrupted = clean - rng.uniform(0.05, 0.1)
        records.append({
            "arch": arch, "params": 1e5 * (arch + 1), "val_accuracy": clean + 0.01,
            "robustness": 10 * (0.5 - clean) + rng.uniform(0, 0.3),
            "robustness_loss_gap": rng.uniform(0, 0.1), "test_accuracy": clean,
            "ood_clean_accuracy": clean, "corruption_accuracy": corrupted,
            "drop": 100 * (clean - corrupted), "relative": corrupted / clean,
            "mce": 100 * (1 - corrupted), "total_s": 1.0,
        })  # fmt: skip
    rows = reproduce.correlation_rows(records, resamples=200)
    assert len(rows) == len(reproduce.CORRELATIONS) + len(reproduce.PARTIAL)
    first = rows[0]["spearman"]
    assert first.n == 12 and first.value < -0.5  # R falls as accuracy rises
    assert first.low <= first.value <= first.high
    assert all(not math.isnan(r["spearman"].value) for r in rows)
    records[3]["robustness"] = math.nan  # a diverged model is left out, not a NaN table
    assert reproduce.correlation_rows(records, resamples=50)[0]["spearman"].n == 11


@pytest.mark.parametrize(
    "value, low, high, predicted, expected",
    [
        (-0.6, -0.9, -0.2, "-", "negative, interval excludes 0: consistent with the claim"),
        (0.5, 0.1, 0.8, "-", "positive, interval excludes 0: against the claim"),
        (0.5, 0.1, 0.8, "+", "positive, interval excludes 0: consistent with the claim"),
        (0.5, 0.1, 0.8, "", "positive, interval excludes 0"),
        (-0.3, -0.7, 0.2, "-", "the interval includes 0: no evidence either way at this budget"),
        (math.nan, math.nan, math.nan, "-", "not estimable with these observations"),
    ],
)
def test_verdict_reads_the_interval_against_the_predicted_sign(
    value, low, high, predicted, expected
):
    correlation = reproduce.rank_stats.Correlation(value, low, high, 12)
    assert reproduce.verdict(correlation, predicted) == expected


def test_wall_time_counts_overlapping_invocations_once():
    runs = [{"start": 0, "end": 10}, {"start": 5, "end": 12}, {"start": 20, "end": 21}]
    assert reproduce.wall_time(runs) == 13
    assert reproduce.wall_time([*runs, {"start": 30}]) == 13  # still running: not counted
    assert reproduce.wall_time([]) == 0


def test_trade_off_point_is_nearest_the_ideal_corner_after_scaling():
    front = np.array([[10.0, 9e5], [12.0, 3e5], [30.0, 1e5]])
    assert reproduce.trade_off_point(front) == 1
    assert reproduce.trade_off_point(front[:1]) == 0
    # Two extremes are equally far: the lower first objective wins.
    assert reproduce.trade_off_point(np.array([[5.0, 2.0], [1.0, 4.0]])) == 1
