"""The search-efficiency benchmark, tiny: three set-ups, one scale, in chunks that resume."""

import json

import keras_tuner
import pytest
import surrogate_search
from common import Chunk


def test_three_setups_are_measured_on_one_scale_in_chunks_that_resume(tmp_path, capsys):
    out, work = tmp_path / "search.json", tmp_path / "work"
    argv = ["--trials", "5", "--population", "2", "--epochs", "1", "--supernet-epochs", "2"]
    argv += ["--fine-tune-epochs", "0", "--samples", "2", "--surrogate-initial", "4"]
    argv += ["--surrogate-candidates", "1", "--depths", "1", "--out", str(out)]
    argv += ["--work", str(work)]
    # A chunk with no time left starts nothing: not a supernet epoch, not a trial.
    assert surrogate_search.main([*argv, "--max-minutes", "0"]) is None
    assert surrogate_search.main([*argv, "--max-minutes", "0", "--setups", "plain"]) is None
    assert not (work / "supernet").exists() and not (work / "trials.jsonl").exists()
    plain = surrogate_search.main([*argv, "--setups", "plain"])  # one set-up, then the rest
    assert list(plain["setups"]) == ["plain"] and plain["setups"]["plain"]["trials"] == 5
    first = (work / "trials.jsonl").read_text().splitlines()
    with pytest.raises(SystemExit):
        surrogate_search.main([*argv, "--epochs", "2"])
    assert "other settings (epochs); pass another --work" in capsys.readouterr().err
    result = surrogate_search.main(argv)
    lines = [json.loads(line) for line in (work / "trials.jsonl").read_text().splitlines()]
    assert lines[:5] == [json.loads(line) for line in first]  # kept, and none run twice:
    for setup in surrogate_search.SETUPS:
        ids = [line["trial_id"] for line in lines if line["setup"] == setup]
        assert len(ids) == len(set(ids)) == 5
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["setups"]) == set(surrogate_search.SETUPS)
    # The same plain trials and seconds (the hypervolumes' scale is now that of every set-up).
    times = [[k, s] for k, s, _ in plain["setups"]["plain"]["curve"]]
    assert [[k, s] for k, s, _ in result["setups"]["plain"]["curve"]] == times
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


class _Oracle:
    """What the logging tuner reads of KerasTuner's oracle."""

    def __init__(self, trials: int):
        self.trials, self.max_trials = {}, trials

    @property
    def remaining_trials(self):
        return self.max_trials - len(self.trials)


class _Tuner:
    def __init__(self, oracle):
        self.oracle = oracle

    def on_trial_end(self, trial):
        trial.status = "COMPLETED"


def _trial(oracle, trial_id, **metrics):
    trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id=trial_id)
    for name, value in metrics.items():
        trial.metrics.register(name)
        trial.metrics.update(name, value)
    oracle.trials[trial_id] = trial
    return trial


def test_a_failed_trial_is_logged_without_figures_and_the_budget_ends_only_an_unfinished_search(
    tmp_path,
):
    log, now = tmp_path / "trials.jsonl", [0.0]
    chunk = Chunk(1, clock=lambda: now[0])  # 60 s
    tuner = surrogate_search._logged(_Tuner, log, "plain", chunk)(_Oracle(trials=3))
    tuner.last_ended = 0.0
    now[0] = 20.0
    tuner.on_trial_end(_trial(tuner.oracle, "00"))  # failed: no metrics at all
    figures = {"val_accuracy": 0.9, "robustness": 1.5, "params": 100}
    now[0] = 45.0  # 45 s used, and another trial of the mean 22.5 s would end past 60
    with pytest.raises(surrogate_search.ChunkEnded, match="plain: trial 01 ended"):
        tuner.on_trial_end(_trial(tuner.oracle, "01", **figures))
    now[0] = 70.0
    tuner.on_trial_end(_trial(tuner.oracle, "02", **figures))  # the last: nothing to stop
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["accuracy"] for line in lines] == [None, 0.9, 0.9]
    assert [line["seconds"] for line in lines] == [20.0, 25.0, 25.0]
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())  # all ended
    # The failed trial's seconds are charged to the next one.
    assert [t["seconds"] for t in surrogate_search.trial_log(log, "plain")] == [45.0, 25.0]


def test_the_supernet_stops_between_epochs_when_the_next_would_overrun():
    import keras

    now = [0.0]
    chunk = Chunk(1, clock=lambda: now[0])  # 60 s
    callback, model = surrogate_search.stop_at_budget(chunk), keras.Sequential()
    callback.set_model(model)
    model.stop_training = False  # as `fit` sets it
    for epoch, ends in enumerate((25.0, 50.0)):
        callback.on_epoch_begin(epoch)
        now[0] = ends
        callback.on_epoch_end(epoch)
        # After 25 s another 25 s epoch fits; after 50 s it does not.
        assert bool(model.stop_training) == (epoch == 1)
    assert chunk.durations == [25.0, 25.0]
