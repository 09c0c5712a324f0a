"""benchmarks/trial_memory.py: resident memory per trial, with and without the release."""

import pytest
import trial_memory
from support.benchmarks import run_benchmark


def test_both_runs_report_memory_after_every_trial(tmp_path):
    result = run_benchmark(trial_memory.main, tmp_path / "trial_memory.json", "--trials", "4")
    for run in ("released", "kept"):
        figures = result[run]
        assert len(figures["resident_mb"]) == len(figures["objects"]) == 4
        assert min(figures["resident_mb"]) > 100  # TensorFlow is loaded: a real process
        assert figures["mb_growth_after_trial_3"] == figures["resident_mb"][3] - figures[
            "resident_mb"][2]  # fmt: skip
    assert "growth_ratio_released_over_kept" in result


def test_fewer_trials_than_the_growth_needs_are_refused(capsys):
    with pytest.raises(SystemExit) as refused:
        trial_memory.main(["--trials", "3"])
    assert refused.value.code == 2 and "at least 4" in capsys.readouterr().err
