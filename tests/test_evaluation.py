"""evaluate_model: test accuracy from predictions, the OOD table, evaluation.json written last."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from flatnas_tf.app.evaluation import EVALUATION_FILE, accuracy_on_test_split, evaluate_model


@pytest.fixture(scope="module")
def digits_data(digits_split):
    return digits_split[1]


class FixedAnswer(keras.Model):
    """Logits that pick class `label` for every image."""

    def __init__(self, label: int):
        super().__init__()
        self.label = label

    def call(self, images):
        return keras.ops.one_hot(
            keras.ops.full((keras.ops.shape(images)[0],), self.label, "int32"), 10
        )


def test_the_accuracy_counts_the_right_answers_of_the_test_split(digits_data):
    _, labels = zip(*digits_data.test.as_numpy_iterator(), strict=True)
    expected = float(np.mean(np.array(labels) == 3))
    assert accuracy_on_test_split(FixedAnswer(3), digits_data) == pytest.approx(expected)


def test_an_evaluation_writes_its_summary_and_ood_table(digits_data, tmp_path):
    lines = []
    evaluation = evaluate_model(
        FixedAnswer(3), digits_data, tmp_path / "eval", target="fixed", trial_id="007",
        ood_source=digits_data, corruptions=["gaussian_noise", "brightness"], severities=[1, 3],
        max_examples=20, echo=lines.append,
    )  # fmt: skip
    summary = json.loads((tmp_path / "eval" / EVALUATION_FILE).read_text())
    assert evaluation.summary_file == tmp_path / "eval" / EVALUATION_FILE
    assert summary["target"] == "fixed" and summary["trial"] == "007"
    assert summary["test_accuracy"] == pytest.approx(evaluation.test_accuracy)
    assert summary["ood"] == evaluation.ood.to_dict()
    assert list(evaluation.ood.accuracy) == ["gaussian_noise", "brightness"]
    assert evaluation.ood.severities == (1, 3)
    assert lines[0].startswith("test accuracy (digits): ") and "| corruption |" in lines[1]
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        EVALUATION_FILE, "ood.csv", "ood.json", "ood.md",
    ]  # fmt: skip
    plain = evaluate_model(FixedAnswer(3), digits_data, tmp_path / "plain", target="fixed")
    assert plain.ood is None and "ood" not in json.loads(plain.summary_file.read_text())
