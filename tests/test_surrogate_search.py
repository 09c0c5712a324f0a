"""The search-efficiency benchmark, tiny: three set-ups, one scale, in chunks that resume."""

import json

import pytest
import surrogate_search


def test_three_setups_are_measured_on_one_scale_in_chunks_that_resume(tmp_path):
    out, work = tmp_path / "search.json", tmp_path / "work"
    argv = ["--trials", "5", "--population", "2", "--epochs", "1", "--supernet-epochs", "2"]
    argv += ["--fine-tune-epochs", "0", "--samples", "2", "--surrogate-initial", "4"]
    argv += ["--surrogate-candidates", "1", "--depths", "1", "--out", str(out)]
    argv += ["--work", str(work)]
    # A chunk of no time: one supernet epoch, then one trial, per call.
    assert surrogate_search.main([*argv, "--max-minutes", "0"]) is None
    state = json.loads((work / "supernet" / "supernet.json").read_text())
    assert state["epochs_done"] == 1 and not out.exists()
    assert surrogate_search.main([*argv, "--max-minutes", "0"]) is None
    first = (work / "trials.jsonl").read_text().splitlines()
    assert [json.loads(line)["setup"] for line in first] == ["plain"]
    with pytest.raises(SystemExit, match="holds a run with other epochs: pass another --work"):
        surrogate_search.main([*argv, "--epochs", "2"])
    result = surrogate_search.main(argv)
    assert (work / "trials.jsonl").read_text().splitlines()[0] == first[0]  # kept, not redone
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["setups"]) == set(surrogate_search.SETUPS)
    epochs = json.loads((work / "supernet" / "supernet.json").read_text())["history"]
    assert len(epochs) == 2 and all(epoch["seconds"] > 0 for epoch in epochs)
    assert result["supernet_s"] == pytest.approx(sum(e["seconds"] for e in epochs), abs=0.1)
    assert result["settings"]["depths"] == [1]
    for setup in result["setups"].values():
        curve = setup["curve"]
        assert [k for k, _, _ in curve] == list(range(1, len(curve) + 1)) and len(curve) >= 4
        seconds = [s for _, s, _ in curve]
        volumes = [v for _, _, v in curve]
        assert seconds == sorted(seconds) and volumes == sorted(volumes)  # never falls
        assert 0 < volumes[-1] == setup["final_hv"]
    # The supernet's training is charged to the set-ups that use it.
    assert result["setups"]["supernet"]["curve"][0][1] >= result["supernet_s"]
    assert "surrogate_trials_to_plain_hv" in result


def test_the_trial_log_counts_a_trial_run_twice_once_with_the_seconds_of_both(tmp_path):
    log = tmp_path / "trials.jsonl"
    figures = {"accuracy": 0.9, "robustness": 1.0, "params": 100}
    lines = [
        {"setup": "plain", "trial_id": "00", "seconds": 10.0, **figures},
        {"setup": "plain", "trial_id": "01", "seconds": 5.0, **figures},  # killed before saved
        {"setup": "supernet", "trial_id": "00", "seconds": 1.0, **figures},
        {"setup": "plain", "trial_id": "02", "seconds": 3.0, **figures, "accuracy": None},
        {"setup": "plain", "trial_id": "01", "seconds": 6.0, **figures, "accuracy": 0.8},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    plain = surrogate_search.trial_log(log, "plain")
    assert [t["trial_id"] for t in plain] == ["00", "01"]
    # Trial 01: both runs and the failed trial 02 before its second run; its last figures.
    assert [t["seconds"] for t in plain] == [10.0, 14.0] and plain[1]["accuracy"] == 0.8
    assert [t["seconds"] for t in surrogate_search.trial_log(log, "supernet")] == [1.0]
    assert surrogate_search.trial_log(tmp_path / "absent.jsonl", "plain") == []
