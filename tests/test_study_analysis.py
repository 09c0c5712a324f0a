"""Tests of benchmarks/study_analysis.py, the pre-registered analysis, on synthetic records."""

import json

import numpy as np
import pytest
import study_analysis as sa

SIGMAS = ("0.025", "0.05", "0.1", "0.2", "0.4")


def _study(effect=-1.0, archs=40, seeds=3, seed=0, zeros_below="0.05"):
    """Records whose corruption accuracy depends on clean accuracy and, by `effect`, on R."""
    rng = np.random.default_rng(seed)
    records = []
    for arch in range(archs):
        clean, flat = rng.uniform(0.9, 0.99), rng.uniform(0.5, 2.0)
        for train_seed in range(seeds):
            r = flat + rng.normal(0, 0.05)
            corruption = 0.8 * clean + 0.02 * effect * r + rng.normal(0, 0.002)
            curve = {s: (0.0 if float(s) < float(zeros_below) else r * float(s) / 0.1)
                     for s in SIGMAS}  # fmt: skip
            records.append({
                "stage": "study", "data": "synthetic", "arch": arch, "train_seed": train_seed,
                "params": 1000, "val_accuracy": clean, "test_accuracy": clean,
                "corruption_accuracy": corruption, "chance_p_value": 1e-30, "R": curve,
                "loss_gap": {s: v / 50 for s, v in curve.items()},
            })  # fmt: skip
    return records


def _picks(gain=0.02, clean_gap=0.0, seeds=3, seed=0):
    """Pick records where arm A's corruption accuracy exceeds B's by `gain` at equal clean."""
    rng = np.random.default_rng(seed)
    records = []
    for search_seed in range(seeds):
        for arm, extra, clean_extra in (("A", gain, clean_gap), ("B", 0.0, 0.0), ("C", 0.0, 0.0)):
            for retrain_seed in range(3):
                clean = 0.95 + clean_extra + rng.normal(0, 0.002)
                records.append({
                    "stage": "pick", "data": "synthetic", "arm": arm, "search_seed": search_seed,
                    "pick": "tradeoff", "retrain_seed": retrain_seed, "params": 1000,
                    "test_accuracy": clean, "chance_p_value": 1e-30, "R": {"0.05": 1.0},
                    "corruption_accuracy": 0.8 * clean + extra + rng.normal(0, 0.002),
                })  # fmt: skip
    return records


def test_sigma_star_is_the_smallest_sigma_with_few_zero_r():
    assert sa.sigma_star(_study(zeros_below="0.05")) == "0.05"
    assert sa.sigma_star(_study(zeros_below="0.2")) == "0.2"
    # With 10 % of models at R = 0 exactly, that sigma does not qualify (fewer than 10 %).
    records = _study(zeros_below="0.025", archs=10, seeds=1)
    records[0]["R"]["0.025"] = 0.0
    assert sa.sigma_star(records) == "0.05"


@pytest.mark.parametrize(
    "effect, verdict",
    [(-1.0, "support"), (1.0, "contrary evidence"), (0.0, "no support")],
)
def test_h1_verdicts_follow_the_partial_correlation_given_clean_accuracy(effect, verdict):
    table = sa.architectures(_study(effect), "0.05")
    outcome = sa.h1(table, resamples=300)
    assert outcome["architectures"] == 40
    assert outcome["verdict"].startswith(verdict), outcome["primary"]
    if effect == 0.0:
        # Corruption accuracy is clean accuracy plus noise: R's raw correlation is nil too.
        assert outcome["primary"].low < 0 < outcome["primary"].high


def test_h1_waits_for_the_planned_architectures():
    table = sa.architectures(_study(-1.0), "0.05")  # 40 architectures, a clear effect
    interim = sa.h1(table, resamples=300, planned=41)
    assert interim["verdict"] == "not decided yet (40 of 41 architectures, an interim look)"
    assert interim["primary"].high < 0  # the figures are still given
    assert sa.h1(table, resamples=300, planned=40)["verdict"].startswith("support")


def test_h1_is_not_fooled_by_a_raw_correlation_that_runs_through_clean_accuracy():
    rng = np.random.default_rng(5)
    records = _study(effect=0.0, seed=5)
    noise = rng.normal(0, 0.5, 40)  # per architecture
    for record in records:  # flatter networks are the more accurate ones, nothing more
        r = (1 - record["test_accuracy"]) * 50 + noise[record["arch"]]
        record["R"] = dict.fromkeys(SIGMAS, r)
        record["loss_gap"] = dict(record["R"])
    outcome = sa.h1(sa.architectures(records, "0.05"), resamples=300)
    assert outcome["raw_spearman"].high < -0.5  # a strong raw correlation ...
    assert outcome["verdict"].startswith("no support")  # ... that the control removes


def test_architecture_means_average_the_training_seeds():
    records = _study(archs=2, seeds=3)
    table = sa.architectures(records, "0.1")
    first = [r for r in records if r["arch"] == 0]
    assert table.R[0] == pytest.approx(np.mean([r["R"]["0.1"] for r in first]))
    assert table.clean[0] == pytest.approx(np.mean([r["test_accuracy"] for r in first]))
    pairs = list(zip(SIGMAS[:-1], SIGMAS[1:], strict=True))
    area = np.mean(
        [sum((r["R"][a] + r["R"][b]) / 2 * (float(b) - float(a)) for a, b in pairs) for r in first]
    )
    assert table.area[0] == pytest.approx(area)


@pytest.mark.parametrize(
    "gain, clean_gap, verdict",
    [
        (0.02, 0.0, "support"),
        (-0.02, 0.0, "contrary evidence"),
        (0.0, 0.0, "no support (the interval contains 0)"),
        (0.02, -0.03, "no support (the gain comes with a clean-accuracy loss"),
    ],
)
def test_h2_verdicts_on_the_clean_adjusted_difference(gain, clean_gap, verdict):
    b = 0.8  # the slope the synthetic records are built with
    outcome = sa.h2(_picks(gain, clean_gap), b, resamples=500)
    assert outcome["search_seeds"] == 3
    assert outcome["verdict"].startswith(verdict), outcome
    assert outcome["delta_adj"] == pytest.approx(gain, abs=0.004)
    assert outcome["interval"][0] <= outcome["delta_adj"] <= outcome["interval"][1]


def test_h2_adjusts_for_a_clean_accuracy_difference():
    # A is 2 points more accurate on clean images and nothing else: b * 2 points explains
    # its corruption gain, so the adjusted difference is about 0.
    outcome = sa.h2(_picks(gain=0.0, clean_gap=0.02), 0.8, resamples=500)
    assert outcome["delta_adj"] == pytest.approx(0.0, abs=0.004)
    assert outcome["clean_difference"] == pytest.approx(0.02, abs=0.004)


def test_exclusions_are_counted_and_left_out():
    records = _study(archs=5, seeds=1)
    records[0]["chance_p_value"] = 0.5
    records[1]["corruption_accuracy"] = float("nan")
    kept, excluded = sa.kept_and_excluded(records)
    assert len(kept) == 3 and excluded == records[:2]


def test_the_report_is_rebuilt_from_the_records_files_alone(tmp_path):
    for data, effect in (("digits", -1.0), ("cifar10", 0.0)):
        (tmp_path / data).mkdir()
        lines = [json.dumps(r) for r in _study(effect) + _picks()]
        (tmp_path / data / "records.jsonl").write_text("\n".join(lines) + "\n")
    results = sa.main(["--study", str(tmp_path), "--resamples", "200"])
    report = (tmp_path / "report.md").read_text()
    assert "## cifar10" in report and "## digits" in report
    assert "**Verdict on H1: support.**" in report
    assert results["digits"]["h2"]["verdict"] == "support"
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["digits"]["sigma_star"] == "0.05" and analysis["digits"]["excluded"] == 0
    sa.main(["--study", str(tmp_path), "--resamples", "200"])
    assert (tmp_path / "report.md").read_text() == report  # seeded: the same report again


def test_a_study_under_way_reports_no_slope_and_no_verdict_yet():
    records = _study(archs=1, seeds=2)  # the first architecture of a new data set
    result = sa.analyse(records, resamples=200)
    assert np.isnan(result["slope_b"])  # one architecture: no line to fit
    assert result["verdict_h1"] == "not decided yet (too few architectures for an interval)"
    assert sa.analyse(_study(archs=6, seeds=1), resamples=200)["slope_b"] == pytest.approx(
        0.8, abs=0.2
    )  # from two architectures on, the slope the records are built with


def test_seed_agreement_is_the_rank_agreement_of_training_seeds_over_architectures():
    rng = np.random.default_rng(0)

    def rows(noise, archs=30, seeds=(0, 1, 2)):
        quality = rng.uniform(0, 1, size=archs)
        return [
            {"arch": a, "train_seed": s, "x": quality[a] + rng.normal(0, noise)}
            for a in range(archs)
            for s in seeds
        ]

    figure = lambda record: record["x"]  # noqa: E731
    assert sa.seed_agreement(rows(0.0), figure, 200).value == pytest.approx(1.0)
    reproducible = sa.seed_agreement(rows(0.05), figure, 200)
    assert 0.6 < reproducible.low < reproducible.value < 1.0 and reproducible.n == 30
    noise = sa.seed_agreement(rows(100.0), figure, 200)  # seeds decide everything
    assert noise.low < 0 < noise.high and abs(noise.value) < 0.3
    # An architecture without every seed is left out; one seed gives no figure.
    partial = [r for r in rows(0.05) if not (r["arch"] == 0 and r["train_seed"] == 2)]
    assert sa.seed_agreement(partial, figure, 200).n == 29
    assert np.isnan(sa.seed_agreement(rows(0.05, seeds=(0,)), figure, 200).value)


def test_the_report_gives_each_figures_seed_agreement(tmp_path):
    result = sa.analyse(_study(archs=10, seeds=2), resamples=200)
    agreement = result["seed_agreement"]
    assert list(agreement) == list(sa.AGREEMENT_FIGURES)
    # _study draws one clean accuracy per architecture and R with a small seed noise.
    assert agreement["clean test accuracy"].value == pytest.approx(1.0)
    assert agreement["R(sigma*)"].value > 0.8
    assert "| R(sigma*) | 10 |" in sa.markdown({"synthetic": result})


@pytest.mark.parametrize("within, sign", [(-1.0, -1), (0.0, 0)])
def test_within_architectures_sees_only_the_seeds_of_each_architecture(within, sign):
    rng = np.random.default_rng(1)
    records = []
    for arch in range(20):
        level = rng.uniform(0, 1)  # between architectures: flatter goes with *less* robust
        for seed in range(3):
            r, clean = level + rng.normal(0, 0.1), rng.uniform(0.9, 0.95)
            corruption = 0.5 * clean + 0.3 * level + 0.3 * within * (r - level)
            records.append({
                "arch": arch, "train_seed": seed, "R": {"0.05": r}, "test_accuracy": clean,
                "corruption_accuracy": corruption + rng.normal(0, 0.002),
            })  # fmt: skip
    result = sa.within_architectures(records, "0.05", resamples=200)
    assert result.n == 20
    if sign < 0:
        assert result.high < -0.8  # the seeds' flatness goes with their robustness
    else:
        assert result.low < 0 < result.high  # the architectures' positive trend is not seen
    lonely = [r for r in records if r["train_seed"] == 0]  # one model per architecture
    assert np.isnan(sa.within_architectures(lonely, "0.05", resamples=20).value)


def test_machine_hours_count_each_training_once_and_the_clean_accuracy_is_stated():
    study = _study(archs=3, seeds=1)
    picks = _picks(seeds=1)[:2]
    for record, seconds in zip(study + picks, (3600, 1800, 1800, 900, 900), strict=True):
        record["wall_s"] = seconds
    picks[1]["copied_from"] = {"arm": "A"}  # the same training as another pick: not again
    search = {"stage": "search", "wall_s": 7200.0}
    hours = sa.machine_hours([*study, *picks, search])
    assert hours == {"study": 2.0, "pick": 0.25, "search": 2.0, "total": 4.25}
    result = sa.analyse([*study, *picks], resamples=50)
    clean = sorted(100 * r["test_accuracy"] for r in study)
    assert result["clean_accuracy_pct"] == {"median": clean[1], "min": clean[0], "max": clean[2]}
    assert result["machine_hours"]["total"] == 2.25
    report = sa.markdown({"synthetic": result})
    assert "- machine hours in the records: 2.2 (study models 2.0, picks 0.2" in report
    assert f"median {clean[1]:.1f} % (range {clean[0]:.1f}-{clean[2]:.1f} %)" in report
