"""The study command's smoke mode: records in the analysis' schema, resumed, analysed."""

import json

import flatness_ood_study as study
import pytest
import study_analysis


@pytest.fixture
def smoke(flatness_ood_smoke):
    """(directory, arguments, returned) of the study's --smoke run (tests/conftest.py)."""
    root, runs = flatness_ood_smoke
    arguments, written = runs["study"]
    return root, arguments, written


def test_the_smoke_run_records_each_model_in_the_analysis_schema(smoke):
    root, _, written = smoke
    records = [json.loads(line) for line in (root / "study.jsonl").read_text().splitlines()]
    assert records == json.loads(json.dumps(written))  # every model, once, as returned
    assert [(r["arch"], r["train_seed"]) for r in records] == [(0, 0), (1, 0)]
    for record in records:
        assert record["stage"] == "study" and record["data"] == "digits"
        assert set(record["R"]) == set(record["loss_gap"]) == {"0.05", "0.4"}
        assert record["R"]["0.4"] > record["R"]["0.05"]  # stronger noise moves accuracy more
        assert record["chance_p_value"] < 1e-3 and record["epochs"] == 2  # above chance
        assert record["git"]["commit"] and len(record["corrupted_set_sha256"]) == 64
        assert "2 corruptions" in record["ood_set"] and "48 images per cell" in record["ood_set"]
    assert records[0]["hyperparameters"] != records[1]["hyperparameters"]


def test_a_second_run_resumes_and_records_nothing_again(smoke):
    root, arguments, _ = smoke
    before = (root / "study.jsonl").read_bytes()
    assert study.main(arguments) == []
    assert (root / "study.jsonl").read_bytes() == before


def test_the_analysis_reads_the_records(smoke):
    root, _, _ = smoke
    result = study_analysis.analyse(study_analysis.read_records(root / "study.jsonl"), resamples=50)
    assert result["models"] == 2
    assert result["sigma_star"] in ("0.05", "0.4")
    assert result["h1"]["architectures"] == 2 - result["excluded"]


def test_the_architectures_of_one_width_can_go_first():
    from flatnas_tf import FlatNASHyperModel

    space = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=[0.25, 0.5], depths=[1])
    width = {a: space.random_hyperparameters(seed=a).values["width_mult"] for a in range(8)}
    assert set(width.values()) == {0.25, 0.5}  # both widths among the first eight draws
    assert study.architecture_order(space, 8, None) == list(range(8))
    order = study.architecture_order(space, 8, 0.5)
    assert sorted(order) == list(range(8))
    first = [a for a in range(8) if width[a] == 0.5]
    assert order == first + [a for a in range(8) if width[a] != 0.5]  # each group in order
