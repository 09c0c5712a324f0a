"""benchmarks/weight_sharing.py: each architecture measured four ways, resumable."""

import weight_sharing
from support.benchmarks import run_benchmark

WAYS = ("inherited", "supernet", "scratch", "equal_time")


def test_every_way_is_measured_once_and_a_rerun_reuses_the_records(tmp_path):
    records = tmp_path / "candidates.jsonl"
    argv = ["--data", "digits", "--max-train", "128", "--archs", "3", "--depths", "1"]
    argv += ["--supernet-epochs", "1"]
    argv += ["--scratch-epochs", "1", "--cost-archs", "1", "--samples", "2", "--amortise-trials"]
    argv += ["10", "--records", str(records), "--supernet-dir", str(tmp_path / "supernet")]
    first = run_benchmark(weight_sharing.main, tmp_path / "weight_sharing.json", *argv)
    assert [a["arch"] for a in first["architectures"]] == [0, 1, 2]
    for row in first["architectures"]:
        assert all(0 <= row[way][0] <= 100 for way in WAYS)  # val accuracy %, then R
    assert set(first["ranking"]) == {"supernet_vs_scratch", "inherited_vs_scratch"}
    tau = first["ranking"]["supernet_vs_scratch"]["val_accuracy"]["kendall_tau"]
    assert -1 <= tau[1] <= tau[0] <= tau[2] <= 1  # value inside its interval
    assert first["equal_time"]["scratch_epochs_in_budget"] >= 1
    (cost,) = first["cost"]["epoch_time_masked_vs_static"]
    assert cost["static_epoch_s"] > 0 and cost["supernet_epoch_s"] > 0
    lines = records.read_text()
    assert len(lines.splitlines()) == 3 * len(WAYS)

    again = run_benchmark(weight_sharing.main, tmp_path / "weight_sharing.json", *argv)
    assert records.read_text() == lines  # nothing measured twice
    assert again["architectures"] == first["architectures"]
    assert again["supernet_training_s"] == first["supernet_training_s"]  # resumed, not retrained
