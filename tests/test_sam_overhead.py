"""benchmarks/sam_overhead.py: plain and SAM steps of the same network timed side by side."""

import sam_overhead
from support.benchmarks import run_benchmark


def test_both_models_are_timed_on_the_same_network(tmp_path):
    argv = ["--steps", "2", "--warmup", "1", "--batch-size", "8"]
    result = run_benchmark(sam_overhead.main, tmp_path / "sam_overhead.json", *argv)
    assert result["steps"] == 2 and result["jit_compile"] is False
    assert result["params"] > 60_000  # common.small_cnn, not a stub
    plain, sam = result["plain_step_median_s"], result["sam_step_median_s"]
    assert plain > 0 and sam > 0
    assert abs(result["ratio_sam_over_plain"] - sam / plain) <= 1e-3 * sam / plain + 1e-4
