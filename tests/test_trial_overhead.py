"""benchmarks/trial_overhead.py: every phase of a trial timed, after and before the fixes."""

import trial_overhead
from support.benchmarks import run_benchmark


def test_every_phase_is_timed_for_both_variants(tmp_path):
    argv = ["--trials", "1", "--epochs", "1", "--samples", "2", "--depths", "1"]
    result = run_benchmark(trial_overhead.main, tmp_path / "trial_overhead.json", *argv)
    for variant in ("after", "before"):
        phases = result[variant]
        assert set(trial_overhead.PHASES) <= set(phases)
        assert all(phases[p] >= 0 for p in trial_overhead.PHASES if p != "rest")
        assert abs(phases["rest"]) <= 0.05 * phases["wall"]  # the phases account for the trial
        assert 0 < phases["overhead_fraction"] < 1 and phases["step_count"] > 1
    assert result["after"]["step_count"] == result["before"]["step_count"]  # the same trial
