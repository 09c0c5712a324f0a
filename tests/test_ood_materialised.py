"""benchmarks/ood_materialised.py: both OOD paths give one table, each timed per model."""

import ood_materialised
import pytest
from support.benchmarks import run_benchmark


def test_the_two_paths_agree_and_each_is_timed(tmp_path):
    argv = ["--images", "6", "--models", "1", "--corruptions", "gaussian_noise,contrast"]
    result = run_benchmark(ood_materialised.main, tmp_path / "ood_materialised.json", *argv)
    assert result["tables_equal"] is True and result["images"] == 6
    assert result["corruptions"] == ["gaussian_noise", "contrast"] and result["cells"] == 10
    assert len(result["on_the_fly_s"]) == len(result["from_set_s"]) == 1
    assert result["write_s"] > 0


def test_a_run_without_images_is_refused():
    with pytest.raises(SystemExit) as refused:
        ood_materialised.main(["--images", "0"])
    assert refused.value.code == 2
