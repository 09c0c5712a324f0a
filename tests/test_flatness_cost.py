"""benchmarks/flatness_cost.py: the three ways of measuring R timed side by side."""

import flatness_cost
from support.benchmarks import run_benchmark


def test_every_path_is_timed_and_the_ratios_are_of_the_medians(tmp_path):
    argv = ["--samples", "2", "--examples", "64", "--batch-size", "32", "--rounds", "1"]
    result = run_benchmark(flatness_cost.main, tmp_path / "flatness_cost.json", *argv)
    assert result["examples"] == 64 and result["samples"] == 2
    a, b, c = (result[k] for k in ("a_weight_robustness_s", "b_m_times_evaluate_s",
                                   "c_clone_and_host_perturb_s"))  # fmt: skip
    assert min(a, b, c, result["a_warm_evaluator_reused_s"]) > 0
    assert abs(result["ratio_a_over_b"] - a / b) <= 0.01 * a / b + 1e-3
    assert abs(result["ratio_a_over_c"] - a / c) <= 0.01 * a / c + 1e-3
