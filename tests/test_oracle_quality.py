"""benchmarks/oracle_quality.py: hypervolumes per method and the bookkeeping timings, tiny."""

import oracle_quality
import pytest
from support.benchmarks import run_benchmark

from flatnas_tf.tuners import pareto


def test_each_method_gets_the_budget_and_a_hypervolume_no_better_than_the_true_front():
    _, n_variables, _, reference = oracle_quality.PROBLEMS["ZDT1"]
    # ZDT1's true front f2 = 1 - sqrt(f1) bounds what any run can reach.
    f1 = [i / 1000 for i in range(1001)]
    best = pareto.hypervolume([[a, 1 - a**0.5] for a in f1], "min", reference=reference)
    for method in ("nsga2_oracle", "random_search", "surrogate_oracle"):
        volume = oracle_quality.run_method(method, "ZDT1", 1, 24, 8, candidates=2)
        assert 0 < volume <= best, method


def test_a_small_run_reports_every_section(tmp_path):
    argv = ["--seeds", "1", "--budget", "16", "--population-size", "8", "--problems", "DTLZ2"]
    argv += ["--methods", "nsga2_oracle", "random_search", "--overhead-trials", "100"]
    argv += ["--curve-trials", "100"]
    result = run_benchmark(oracle_quality.main, tmp_path / "oracle_quality.json", *argv)
    medians = result["problems"]["DTLZ2"]["median_hypervolume"]
    assert set(medians) == {"nsga2_oracle", "random_search"} and min(medians.values()) > 0
    overhead = result["overhead"]["nsga2_oracle"]
    assert 0 < overhead["nsga2_code_ms_per_trial_last_100"] < overhead["mean_ms_last_100_trials"]
    curves = result["bookkeeping_curves"]["after"]
    assert set(curves) == {"nsga2_oracle", "archive_normalised_objectives"}
    assert all(set(curve) == {"at_100"} for curve in curves.values())
    assert "nsga2_overhead_below_10_ms" in result["targets"]


def test_optuna_is_needed_only_by_its_method(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)  # not installed
    assert oracle_quality.run_method("nsga2_oracle", "ZDT1", 1, 8, 4) > 0
    with pytest.raises(ImportError):
        oracle_quality.run_method("optuna_nsgaii", "ZDT1", 1, 8, 4)
