"""The search-efficiency benchmark, tiny: three set-ups, one scale, the figures it reports."""

import json

import surrogate_search


def test_three_setups_are_measured_on_one_scale(tmp_path):
    out = tmp_path / "search.json"
    argv = ["--trials", "5", "--population", "2", "--epochs", "1", "--supernet-epochs", "1"]
    argv += ["--fine-tune-epochs", "0", "--samples", "2", "--surrogate-initial", "4"]
    argv += ["--surrogate-candidates", "1", "--depths", "1", "--out", str(out)]
    result = surrogate_search.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["setups"]) == set(surrogate_search.SETUPS)
    assert result["supernet_s"] > 0 and result["settings"]["depths"] == [1]
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
