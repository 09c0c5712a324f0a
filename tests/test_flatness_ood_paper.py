"""benchmarks/flatness_ood_paper.py: the study's GPU command, its options routed, its smoke run."""

import flatness_ood_paper as paper
import flatness_ood_search
import flatness_ood_study


def test_each_stage_gets_the_preset_then_the_users_options_and_accepts_them(tmp_path):
    args = paper.parse_args(["--study", str(tmp_path), "--archs", "30", "--trials=5"])
    args.stage_options += ["--epochs", "3", "--arms", "A,B"]
    study_argv, search_argv = paper.stage_arguments(args)
    assert "--trials=5" not in study_argv and "--arms" not in study_argv
    assert "--archs" not in search_argv and "--train-seeds=0,1" not in search_argv
    study = flatness_ood_study.parse_args(study_argv)
    search = flatness_ood_search.parse_args(search_argv)
    records = tmp_path / "cifar10_full" / "records.jsonl"
    for stage in (study, search):
        assert stage.data == "cifar10" and stage.widths == [1.0] and stage.depths == [2, 3, 4]
        assert stage.epochs == 3 and stage.batch_size == 128  # the user's value wins
        assert stage.corruptions == "benchmark" and stage.records == records
        assert stage.max_minutes > 1e6  # a GPU job runs to its end
    assert study.archs == 30 and study.train_seeds == [0, 1]
    assert search.trials == 5 and search.population == 20 and search.arms == ["A", "B"]
    assert search.search_seeds == [0, 1] and search.retrain_seeds == [0, 1, 2]


def test_the_smoke_run_records_both_stages_and_reports_them():
    results = paper.main(["--smoke"])
    smoke = results["smoke"]
    assert smoke["models"] >= 3  # two study models and at least one retrained pick
    assert set(smoke["searches"]) == {"A"} and smoke["searches"]["A"]["trials_trained"] == 2
    assert smoke["machine_hours"]["study"] > 0 and "h1" in smoke
