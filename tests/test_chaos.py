"""The chaos benchmark, small: chief and workers killed at random moments; nothing lost."""

import json

import pytest

pytest.importorskip("grpc", reason="the distributed search needs grpcio")

import chaos  # noqa: E402


def test_a_search_whose_processes_are_killed_loses_nothing(tmp_path):
    out = tmp_path / "chaos.json"
    argv = ["--rounds", "3", "--workers", "2", "--trials", "40", "--population", "4"]
    argv += ["--intruder-every", "3", "--seed", "1", "--out", str(out)]
    result = chaos.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["rounds"] >= 1 and sum(result["kills"].values()) == result["rounds"]
    assert (result["lost"], result["duplicated"], result["mismatched"]) == (0, 0, 0)
    assert result["completed"] == 40 and result["ended_in_time"]
    assert result["failed_exits"] == []
    assert result["intruders"] == result["intruders_refused"] == 1
    assert result["intruders_served"] == 0
