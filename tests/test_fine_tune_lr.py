"""benchmarks/fine_tune_lr.py: every (rate, epochs) pair is measured on the supernet's own space."""

import json

import fine_tune_lr
import keras

from flatnas_tf import FlatNASHyperModel, Supernet, SupernetSettings, train_supernet


def test_each_rate_and_epochs_pair_is_a_row_and_zero_epochs_needs_no_rate(tmp_path, digits):
    keras.utils.set_random_seed(0)
    space = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=[0.25], depths=[1])
    train_supernet(
        Supernet(space), digits[0], SupernetSettings(epochs=1), tmp_path / "sn", verbose=0
    )
    argv = ["--supernet-dir", str(tmp_path / "sn"), "--data", "digits", "--max-train", "128"]
    argv += ["--archs", "2", "--rates", "0.1,0.01", "--epochs", "0,1", "--samples", "2"]
    result = fine_tune_lr.main([*argv, "--out", str(tmp_path / "run.json")])
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(json.dumps(result))
    assert result["supernet_epochs"] == 1
    rows = result["rows"]
    assert [(row["epochs"], row["learning_rate"]) for row in rows] == [
        (0, None),
        (1, 0.1),
        (1, 0.01),
    ]
    for row in rows:
        assert len(row["val_accuracy_pct"]) == 2 and all(
            0 <= a <= 100 for a in row["val_accuracy_pct"]
        )
    # One epoch at a rate 10x larger moves the inherited weights more: the candidates differ.
    assert rows[1]["val_accuracy_pct"] != rows[2]["val_accuracy_pct"]
