"""benchmarks/corruption_throughput.py: both sides checked, then timed, on the same images."""

import corruption_throughput
from support.benchmarks import run_benchmark


def test_a_small_run_checks_every_corruption_before_timing_both_sides(tmp_path):
    argv = ["--images", "2", "--repeats", "1", "--runs", "1"]
    result = run_benchmark(
        corruption_throughput.main, tmp_path / "corruption_throughput.json", *argv
    )
    checks = result["checks"]
    assert set(checks["exact"]) | set(checks["statistical"]) == set(
        corruption_throughput.CORRUPTIONS
    )
    assert result["images"] == result["timed"]["images"] == 2
    assert len(result["speedup_per_run"]) == 1 and result["speedup_median"] > 0
    assert min(result["tensorflow_images_per_s_per_run"] + result["numpy_images_per_s_per_run"]) > 0
