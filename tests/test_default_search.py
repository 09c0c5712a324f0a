"""benchmarks/default_search.py: the front's figures read back; a failing search says why."""

from __future__ import annotations

import pytest
from cli_startup import _make_search
from default_search import front_figures, parse_args, run_search

from flatnas_tf.tuners.result import SearchResult


def test_the_front_figures_of_a_finished_search(tmp_path):
    _make_search(tmp_path, trials=12)
    figures = front_figures(tmp_path)
    front = SearchResult.load(tmp_path / "search").front()
    best = max(100 * t.figures["val_accuracy"] for t in front)
    assert figures["trials"] == 12 and figures["front"] == len(front) >= 1
    assert figures["front_best"] == round(best, 2) >= figures["front_median"]
    assert len(figures["trial_s"]) == 12 and all(s > 0 for s in figures["trial_s"])


def test_the_defaults_are_one_variant_and_a_failing_search_says_why():
    assert parse_args([]).variant == [""]
    assert parse_args(["--variant", "--epochs 2"]).variant == ["--epochs 2"]
    with pytest.raises(RuntimeError, match="--alpha"):
        run_search("--alpha 7")


def test_runs_alternate_with_the_other_checkout_and_the_ratio_is_of_medians(monkeypatch):
    import default_search

    calls = []

    def fake_run(options, python=default_search.sys.executable):
        calls.append(python)
        return {"wall_s": 300.0 if python == "old-python" else 330.0 + len(calls)}

    monkeypatch.setattr(default_search, "run_search", fake_run)
    result = default_search.main(["--repeats", "2", "--before-python", "old-python"])
    assert calls[1::2] == ["old-python"] * 2 and "old-python" not in calls[::2]
    (variant,) = result["variants"]
    assert variant["median_wall_s"] == 332.0 and variant["before"]["median_wall_s"] == 300.0
    assert variant["wall_ratio"] == 1.107
