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


def test_the_smoke_settings_are_the_stages_own_smoke_settings(tmp_path):
    args = paper.parse_args(["--smoke", "--study", str(tmp_path)])
    study_argv, search_argv = paper.stage_arguments(args)
    assert "--smoke" in study_argv and "--smoke" in search_argv
    assert "--arms=A" in search_argv and "--arms=A" not in study_argv
    records = tmp_path / "smoke" / "records.jsonl"
    for stage, argv in ((flatness_ood_study, study_argv), (flatness_ood_search, search_argv)):
        parsed = stage.parse_args(argv)
        assert parsed.data == "digits" and parsed.epochs == 2 and parsed.records == records
    assert flatness_ood_search.parse_args(search_argv).arms == ["A"]
    assert paper.parse_args(["--smoke"]).study != paper.parse_args([]).study  # a temporary dir


def test_the_smoke_run_drives_both_stages_and_reports_them(
    flatness_ood_smoke, tmp_path, monkeypatch
):
    # The stages' own smoke runs (tests/conftest.py) are in the smoke study's
    # records: run with the same settings, the driver must resume, train nothing
    # and report them.
    root, _ = flatness_ood_smoke
    records = tmp_path / "smoke" / "records.jsonl"
    records.parent.mkdir()
    records.write_text((root / "study.jsonl").read_text() + (root / "search.jsonl").read_text())
    (records.parent / "trials.jsonl").write_text((root / "trials.jsonl").read_text())
    before = records.read_bytes()
    calls = []
    for stage in (flatness_ood_study, flatness_ood_search):
        monkeypatch.setattr(stage, "main", _recording(stage.main, calls))
    results = paper.main(["--smoke", "--study", str(tmp_path)])
    assert [written for _, written in calls] == [[], []]  # both stages ran, nothing new
    assert records.read_bytes() == before
    smoke = results["smoke"]
    assert smoke["models"] >= 3  # two study models and the retrained picks
    assert smoke["searches"]["A"]["trials_trained"] == 2
    assert smoke["machine_hours"]["study"] > 0 and "h1" in smoke


def _recording(main, calls):
    def recorded(argv):
        calls.append((argv, main(argv)))
        return calls[-1][1]

    return recorded
