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


def test_the_defaults_are_one_variant_and_a_failing_search_says_why():
    assert parse_args([]).variant == [""]
    assert parse_args(["--variant", "--epochs 2"]).variant == ["--epochs 2"]
    with pytest.raises(RuntimeError, match="--alpha"):
        run_search("--alpha 7")
