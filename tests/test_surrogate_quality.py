"""The small-budget surrogate benchmark: every budget, problem and method reported."""

import json

import surrogate_quality


def test_each_budget_reports_every_method_on_every_problem(tmp_path):
    out = tmp_path / "quality.json"
    argv = ["--budgets", "21,22", "--seeds", "1", "--problems", "ZDT1", "--candidates", "2"]
    methods = ["surrogate_oracle", "surrogate_spread", "random_search"]
    result = surrogate_quality.main([*argv, "--methods", *methods, "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["budgets"]) == {"21", "22"}
    for budget in result["budgets"].values():
        medians = budget["problems"]["ZDT1"]["median_hypervolume"]
        assert set(medians) == set(methods) and all(v > 0 for v in medians.values())
        assert set(budget["targets"]) == {
            "surrogate_ahead_of_all_others_on_at_least_3_of_4",
            "hypervolume_choice_ge_spread_on_at_least_3_of_4",
        }
