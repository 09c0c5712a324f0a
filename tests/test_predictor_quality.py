"""The predictor-quality benchmark's learning curve on a small records file it writes."""

import json

import numpy as np
import predictor_quality

from flatnas_tf import FlatNASHyperModel
from flatnas_tf.tuners.predictors import POOL


def _records(path, n=30):
    """Study records whose accuracy and R follow the width and the first stage's depth."""
    hypermodel = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=(0.25, 0.5))
    rng = np.random.default_rng(0)
    lines = []
    for arch in range(n):
        values = hypermodel.random_hyperparameters(seed=arch).values
        signal = values["width_mult"] + 0.1 * values["stage1_depth"]
        lines.append({
            "stage": "study", "arch": arch, "train_seed": 0, "hyperparameters": values,
            "val_accuracy": 0.8 + 0.1 * signal + rng.normal(0, 0.002),
            "R": {"0.05": 3.0 - 2.0 * signal + rng.normal(0, 0.02)},
        })  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")


def test_the_learning_curve_finds_a_planted_signal(tmp_path, capsys):
    _records(tmp_path / "records.jsonl")
    out = tmp_path / "quality.json"
    argv = ["--records", str(tmp_path / "records.jsonl"), "--sizes", "16,40", "--folds", "3"]
    result = predictor_quality.main([*argv, "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["points"] == 30 and result["source"] == "study"
    (row,) = result["curve"]  # 40 is not below the 30 points: left out
    assert (row["train_points"], row["test_points"]) == (16, 14)
    for target in ("val_accuracy", "robustness", "objective"):
        assert set(row[target]["member_tau"]) == set(POOL)
        assert row[target]["winner"] in POOL and row[target]["fit_s"] > 0
    # Accuracy rises and R falls with the signal, so both rank the held-out half well,
    # and objective 1 (low error, low R) follows them.
    assert row["val_accuracy"]["adaptive_tau"] > 0.5
    assert row["robustness"]["adaptive_tau"] > 0.5
    assert row["objective_combined_tau"] > 0.5


def test_search_trials_are_taken_from_one_training_only(tmp_path):
    # ASAM trials follow the signal, SGD ones run against it: mixed, no ranking would hold.
    hypermodel = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=(0.25, 0.5))
    lines = []
    for i in range(48):
        values = hypermodel.random_hyperparameters(seed=i).values
        signal = values["width_mult"] + 0.1 * values["stage1_depth"]
        sign = 1 if i % 3 else -1  # a third of the trials are SGD's
        lines.append({
            "training": "asam" if sign > 0 else "sgd", "hyperparameters": values,
            "figures": {"val_accuracy": 0.8 + 0.1 * sign * signal,
                        "robustness": 3.0 - 2.0 * sign * signal},
        })  # fmt: skip
    (tmp_path / "trials.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    argv = ["--records", str(tmp_path / "records.jsonl"), "--source", "trials", "--folds", "3"]
    result = predictor_quality.main([*argv, "--sizes", "16", "--training", "asam"])
    assert result["points"] == 32 and result["training"] == "asam"
    assert result["curve"][0]["val_accuracy"]["adaptive_tau"] > 0.5
    assert predictor_quality.main([*argv, "--sizes", "6", "--training", "sgd"])["points"] == 16
