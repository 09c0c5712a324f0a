"""The search comparison of the flatness/OOD study: picks, shared trials, smoke mode."""

import json

import flatness_ood_search as search
import numpy as np
import pytest
import study_analysis


def test_the_tradeoff_pick_is_nearest_the_ideal_corner_of_the_scaled_front():
    front = np.array([[10.0, 9e4], [14.0, 3e4], [40.0, 1e4]])
    # Scaled: (0, 1), (0.13, 0.25), (1, 0): the middle member is nearest (0, 0).
    assert search.tradeoff_index(front) == 1
    # Scaling is per objective over the front: units do not move the pick.
    assert search.tradeoff_index(front * np.array([100.0, 1e-3])) == 1
    # Unscaled, params (1e4..9e4) would swamp the error and pick the smallest network.
    assert int(np.argmin(np.linalg.norm(front, axis=1))) == 2
    assert search.tradeoff_index(np.array([[5.0, 2e4]])) == 0  # a front of one
    assert search.tradeoff_index(np.array([[5.0, 2e4], [5.0, 2e4]])) == 0  # a tie: the first


def test_the_most_accurate_pick_prefers_fewer_params_on_a_tie():
    accuracy = np.array([0.90, 0.97, 0.97, 0.95])
    assert search.most_accurate_index(accuracy, np.array([1e3, 5e4, 2e4, 1e3])) == 2
    assert search.most_accurate_index(accuracy, np.array([1e3, 2e4, 2e4, 1e3])) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--arms", "A,D"], "--arms takes some of A, B, C"),
        (["--population", "1"], "--population must be >= 2"),
        (["--trials", "0"], "--trials must be >= 1"),
        (["--retrain-seeds", ""], "--retrain-seeds need at least one value"),
    ],
)
def test_bad_options_stop_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        search.parse_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture
def smoke(flatness_ood_smoke):
    """(directory, arguments, returned) of the search's --smoke run (tests/conftest.py)."""
    root, runs = flatness_ood_smoke
    arguments, written = runs["search"]
    return root, arguments, written


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_arms_of_one_seed_share_the_first_generation_and_its_trainings(smoke):
    root, _, written = smoke
    records = _lines(root / "search.jsonl")
    assert records == json.loads(json.dumps(written))
    searches = {r["arm"]: r for r in records if r["stage"] == "search"}
    assert sorted(searches) == ["A", "B", "C"]
    # A trains the first generation; B (the same ASAM training) reads it; C (SGD) trains its own.
    assert (searches["A"]["trials_trained"], searches["A"]["trials_reused"]) == (2, 0)
    assert (searches["B"]["trials_trained"], searches["B"]["trials_reused"]) == (0, 2)
    assert (searches["C"]["trials_trained"], searches["C"]["trials_reused"]) == (2, 0)
    trained = _lines(root / "trials.jsonl")
    assert sorted(t["training"] for t in trained) == ["asam", "asam", "sgd", "sgd"]
    configurations = {t["training"]: [] for t in trained}
    for t in trained:
        configurations[t["training"]].append(t["hyperparameters"])
    assert configurations["asam"] == configurations["sgd"]  # one seed, one first generation
    accuracy = {arm: [t["val_accuracy"] for t in s["trials"]] for arm, s in searches.items()}
    assert accuracy["A"] == accuracy["B"]  # B's figures are A's trainings
    assert searches["A"]["alpha"] == 0.5 and searches["B"]["alpha"] == 1.0


def test_each_pick_is_a_front_member_chosen_by_the_rule(smoke):
    root, _, _ = smoke
    for record in _lines(root / "search.jsonl"):
        if record["stage"] != "search":
            continue
        front = [t for t in record["trials"] if t["on_front"]]
        ids = [t["trial_id"] for t in front]
        tradeoff = search.tradeoff_index(np.array([t["objectives"] for t in front]))
        assert record["picks"]["tradeoff"]["trial_id"] == ids[tradeoff]
        accuracy = np.array([t["val_accuracy"] for t in front])
        best = search.most_accurate_index(accuracy, np.array([t["params"] for t in front]))
        assert record["picks"]["most_accurate"]["trial_id"] == ids[best]


def test_every_pick_is_retrained_once_per_seed_and_repeats_are_copied(smoke):
    root, _, _ = smoke
    records = _lines(root / "search.jsonl")
    picks = [r for r in records if r["stage"] == "pick"]
    assert sorted((r["arm"], r["pick"]) for r in picks) == [
        (arm, pick) for arm in "ABC" for pick in ("most_accurate", "tradeoff")
    ]
    searches = {r["arm"]: r for r in records if r["stage"] == "search"}
    for record in picks:
        assert record["retrain_seed"] == 0 and record["chance_p_value"] < 1e-3
        chosen = searches[record["arm"]]["picks"][record["pick"]]["hyperparameters"]
        assert record["hyperparameters"] == chosen
        assert record["training"] == ("sgd" if record["arm"] == "C" else "asam")
    measured = [r for r in picks if "copied_from" not in r]
    key = lambda r: (json.dumps(r["hyperparameters"], sort_keys=True), r["training"])  # noqa: E731
    assert len({key(r) for r in measured}) == len(measured)  # nothing trained twice
    for copy in (r for r in picks if "copied_from" in r):
        (source,) = [r for r in measured if key(r) == key(copy)]
        assert copy["corruption_accuracy"] == source["corruption_accuracy"]
        assert copy["R"] == source["R"] and copy["copied_from"]["arm"] == source["arm"]


def test_a_second_run_resumes_and_records_nothing_again(smoke):
    root, arguments, _ = smoke
    before = (root / "search.jsonl").read_bytes(), (root / "trials.jsonl").read_bytes()
    assert search.main(arguments) == []
    assert ((root / "search.jsonl").read_bytes(), (root / "trials.jsonl").read_bytes()) == before


def test_the_analysis_reads_the_search_records_beside_the_picks(smoke):
    root, _, _ = smoke
    records = study_analysis.read_records(root / "search.jsonl")
    result = study_analysis.analyse(records, resamples=20)
    assert result["models"] == sum(r["stage"] == "pick" for r in records) == 6
    assert result["searches"]["B"]["trials_reused"] == 2
    assert result["searches"]["C"]["front_sizes"] == [
        sum(t["on_front"] for t in r["trials"])
        for r in records
        if r["stage"] == "search" and r["arm"] == "C"
    ]
