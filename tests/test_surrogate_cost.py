"""benchmarks/surrogate_cost.py: a refit and a proposal timed beside one real trial."""

import surrogate_cost
from support.benchmarks import run_benchmark

from flatnas_tf.tuners.predictors import POOL


def test_each_archive_size_is_timed_against_the_trial(tmp_path):
    argv = ["--sizes", "12,20", "--folds", "2", "--population", "6", "--generations", "2"]
    argv += ["--candidates", "2", "--epochs", "1"]
    result = run_benchmark(surrogate_cost.main, tmp_path / "surrogate_cost.json", *argv)
    assert result["trial_s"] > 0 and set(result["archives"]) == {"12", "20"}
    for timing in result["archives"].values():
        assert set(timing["winners"]) == {"val_accuracy", "robustness"}
        assert set(timing["winners"].values()) <= set(POOL)
        assert timing["predicted_candidates"] >= 2
        total = timing["refit_s"] + timing["propose_s"]
        assert abs(timing["ratio_to_trial"] - total / result["trial_s"]) <= 0.01
