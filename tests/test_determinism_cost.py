"""benchmarks/determinism_cost.py: one trial per setting, each in its own process."""

import math

import determinism_cost
from support.benchmarks import run_benchmark


def test_each_setting_trains_the_same_trial_in_a_fresh_process(tmp_path):
    argv = ["--rounds", "1", "--epochs", "1", "--depths", "1"]
    result = run_benchmark(determinism_cost.main, tmp_path / "determinism_cost.json", *argv)
    for setting in ("on", "off"):
        summary = result[f"determinism_{setting}"]
        assert summary["median_wall_s"] > 0 and summary["identical_across_runs"] is True
        (figures,) = summary["figures"]
        assert set(figures) == {"val_accuracy", "val_loss", "robustness", "loss"}
        assert all(math.isfinite(v) for v in figures.values())
        assert 0.1 < figures["val_accuracy"] <= 1  # one epoch of digits learns something
    assert result["ratio_on_over_off"] == round(
        result["determinism_on"]["median_wall_s"] / result["determinism_off"]["median_wall_s"], 3
    )
