"""benchmarks/trial_noise.py: the same architectures under several seeds, resumable."""

import trial_noise
from support.benchmarks import run_benchmark


def test_seeds_are_paired_per_architecture_and_a_rerun_trains_nothing(tmp_path):
    records = tmp_path / "models.jsonl"
    argv = ["--archs", "2", "--seeds", "2", "--epochs", "1", "--max-train", "128", "--depths", "1"]
    argv += ["--samples", "2", "--records", str(records)]
    first = run_benchmark(trial_noise.main, tmp_path / "trial_noise.json", *argv)
    assert [row["arch"] for row in first["architectures"]] == [0, 1]
    assert all(len(row["val_accuracy_pct"]) == 2 for row in first["architectures"])
    assert len(first["kendall_tau_by_seed_pair"]["val_accuracy"]) == 1  # one pair of seeds
    lines = records.read_text()
    assert len(lines.splitlines()) == 4
    again = run_benchmark(trial_noise.main, tmp_path / "trial_noise.json", *argv)
    assert records.read_text() == lines  # every model reused
    assert again["architectures"] == first["architectures"]
