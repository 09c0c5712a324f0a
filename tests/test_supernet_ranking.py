"""The supernet-ranking benchmark, tiny: the study's records as the scratch reference."""

import json

import pytest
import supernet_ranking

from flatnas_tf import FlatNASHyperModel


def _record(arch, values, seed, accuracy, r, **changes):
    record = {
        "stage": "study", "arch": arch, "train_seed": seed, "data": "digits",
        "hyperparameters": values, "val_accuracy": accuracy, "R": {"0.05": r, "0.1": 2 * r},
        "test_accuracy": accuracy, "corruption_accuracy": accuracy / 2, "chance_p_value": 0.0,
        "samples": 50,
    }  # fmt: skip
    return {**record, **changes}


def test_the_reference_is_the_seed_mean_of_usable_records_at_the_width():
    wide = {"width_mult": 0.5}
    narrow = {"width_mult": 0.25}
    records = [
        _record(0, narrow, 0, 0.60, 1.0),
        _record(0, narrow, 1, 0.70, 3.0),
        _record(1, wide, 0, 0.90, 1.0),  # another width: not through this supernet
        _record(2, narrow, 0, 0.50, 2.0),
        _record(2, narrow, 1, 0.99, 2.0, chance_p_value=0.5),  # not above chance: left out
        _record(3, narrow, 0, 0.50, 2.0, data="cifar10"),  # another data set
        _record(4, narrow, 0, 0.50, 2.0, stage="search"),  # not the correlation stage
    ]
    reference = supernet_ranking.scratch_reference(records, "digits", 0.25, 0.05)
    assert list(reference) == [0, 2]
    assert reference[0]["val_accuracy"] == pytest.approx(0.65)
    assert reference[0]["robustness"] == pytest.approx(2.0) and reference[0]["seeds"] == 2
    assert reference[2]["seeds"] == 1
    assert supernet_ranking.scratch_reference(records, "digits", 0.25, 0.1)[0]["robustness"] == 4
    with pytest.raises(SystemExit, match="no R at sigma 0.2"):
        supernet_ranking.scratch_reference(records, "digits", 0.25, 0.2)
    with pytest.raises(SystemExit, match="no usable study record"):
        supernet_ranking.scratch_reference(records, "digits", 1.0, 0.05)


def test_the_supernet_is_compared_with_a_second_scratch_seed_on_architectures_with_every_seed():
    narrow = {"width_mult": 0.25}
    records = [  # seed 1 ranks accuracy as seed 0 does and R the other way round
        _record(arch, narrow, seed, 0.5 + arch / 10 + seed / 100, (arch if seed else -arch))
        for arch in range(5)
        for seed in (0, 1)
    ]
    records.append(_record(5, narrow, 0, 0.9, 0.0))  # one seed only: left out
    records.append(_record(6, {"width_mult": 0.5}, 0, 0.9, 0.0))  # another width
    # The supernet ranks accuracy backwards and R as seed 1 does.
    supernet = {arch: {"val_accuracy": -arch, "robustness": arch} for arch in (0, 1, 2, 3, 5)}
    compared = supernet_ranking.seed_comparison(records, "digits", 0.25, 0.05, supernet)
    assert compared["architectures"] == 4 and compared["seeds"] == 2
    accuracy, robustness = compared["val_accuracy"], compared["robustness"]
    assert accuracy["seed_vs_seed"][0] == 1.0 and accuracy["supernet_vs_seed"][0] == -1.0
    assert accuracy["difference"][0] == -2.0
    assert robustness["seed_vs_seed"][0] == -1.0 and robustness["supernet_vs_seed"][0] == 0.0
    assert robustness["difference"][0] == 1.0
    for statistic in (*accuracy.values(), *robustness.values()):
        assert statistic[1] <= statistic[0] <= statistic[2]
    one_seed = [record for record in records if record["train_seed"] == 0]
    alone = supernet_ranking.seed_comparison(one_seed, "digits", 0.25, 0.05, supernet)
    assert alone["seeds"] == 1 and alone["val_accuracy"]["seed_vs_seed"] == [None] * 3
    assert alone["val_accuracy"]["supernet_vs_seed"][0] == -1.0


def test_the_study_architectures_are_measured_through_a_supernet_and_resume(tmp_path):
    space = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=[0.25], depths=[1])
    records = tmp_path / "records.jsonl"
    draws = [space.random_hyperparameters(seed=arch).values for arch in range(3)]
    lines = [
        _record(arch, values, 0, 0.5 + arch / 10, 3.0 - arch) for arch, values in enumerate(draws)
    ]
    records.write_text("".join(json.dumps(line) + "\n" for line in lines))
    measured = tmp_path / "work" / "measured.jsonl"
    argv = ["--records", str(records), "--depths", "1", "--supernet-epochs", "1"]
    argv += ["--fine-tune-epochs", "1", "--samples", "2", "--work", str(tmp_path / "work")]
    argv += ["--out", str(tmp_path / "ranking.json")]
    result = supernet_ranking.main(argv)
    assert json.loads((tmp_path / "ranking.json").read_text()) == json.loads(json.dumps(result))
    assert result["architectures"] == [0, 1, 2] and result["scratch_seeds"] == [1, 1, 1]
    for way in ("inherited", "supernet"):  # one seed: nothing to compare a second one with
        assert result["against_one_seed"][way]["seeds"] == 1
        assert result["against_one_seed"][way]["val_accuracy"]["difference"] == [None] * 3
    for way in ("inherited", "supernet"):
        for figure in ("val_accuracy", "robustness"):
            tau, low, high = result["ranking"][f"{way}_vs_scratch"][figure]["kendall_tau"]
            assert -1 <= low <= tau <= high <= 1
    assert [row["scratch"][0] for row in result["per_architecture"]] == [50.0, 60.0, 70.0]
    assert len(measured.read_text().splitlines()) == 6  # 3 architectures x 2 ways
    again = supernet_ranking.main(argv)  # everything measured: nothing is trained again
    assert len(measured.read_text().splitlines()) == 6
    assert again["per_architecture"] == result["per_architecture"]
    # No fine-tuning: the inherited way alone (the supernet is resumed, not trained again).
    inherited = supernet_ranking.main([*argv, "--fine-tune-epochs", "0"])
    assert list(inherited["ranking"]) == ["inherited_vs_scratch"]
    assert list(inherited["candidate_s_median"]) == ["inherited"]
    assert set(inherited["per_architecture"][0]) == {"arch", "inherited", "scratch"}
    assert inherited["supernet_training_s"] == result["supernet_training_s"]
    first = result["per_architecture"][0]
    assert inherited["per_architecture"][0]["inherited"] == first["inherited"]
    assert len(measured.read_text().splitlines()) == 6  # the inherited figures are reused
    # Records whose architecture 1 is another draw: its measurements are not reused.
    lines[1]["hyperparameters"] = draws[2]
    records.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(SystemExit, match="measured another architecture 1"):
        supernet_ranking.main(argv)
    # An architecture the supernet's space lacks is refused before anything is trained.
    with pytest.raises(SystemExit, match="architecture 0: .*stage1_depth=1 is not in the search"):
        supernet_ranking.main([*argv, "--depths", "2,3"])
