"""Tests for flatnas_tf.tuners.archive: completed trials with cached metrics."""

from __future__ import annotations

import math

import keras_tuner as kt
import numpy as np
import pytest
from keras_tuner.engine.trial import Trial

from flatnas_tf.tuners.archive import CompletedTrials, last_value


def trial(trial_id: str, **metrics: float) -> Trial:
    made = Trial(kt.HyperParameters(), trial_id=trial_id, status="COMPLETED")
    for name, value in metrics.items():
        made.metrics.register(name, "min")
        made.metrics.update(name, value)
    return made


def test_last_value_reads_the_highest_step_and_nan_when_missing():
    made = trial("0", loss=3.0)
    made.metrics.update("loss", 1.0, step=5)
    made.metrics.update("loss", 2.0, step=2)
    assert last_value(made, "loss") == 1.0
    assert math.isnan(last_value(made, "accuracy"))


def test_trials_stay_in_creation_order_with_their_columns():
    archive = CompletedTrials([(trial("5", f=5.0), 5), (trial("1", f=1.0), 1)])
    assert [t.trial_id for t in archive.trials] == ["1", "5"]
    np.testing.assert_array_equal(archive.values(["f"]), [[1.0], [5.0]])
    archive.add(trial("3", f=3.0, g=30.0), 3)  # completed out of order
    archive.add(trial("9", f=9.0), 9)
    assert [t.trial_id for t in archive.trials] == ["1", "3", "5", "9"]
    assert archive.numbers.tolist() == [1, 3, 5, 9]
    np.testing.assert_array_equal(
        archive.values(["g", "f"]), [[np.nan, 1.0], [30.0, 3.0], [np.nan, 5.0], [np.nan, 9.0]]
    )
    assert archive.values([]).shape == (4, 0)
    assert "3" in archive and "4" not in archive
    assert archive.rows(["9", "1"]) == [3, 0] and archive.rows(["9", "4"]) is None
    with pytest.raises(ValueError, match="already archived"):
        archive.add(trial("3"), 3)
    with pytest.raises(ValueError, match="already archived"):
        archive.add(trial("x"), 5)


def test_changes_are_counted_and_the_tuple_is_kept_until_one():
    archive = CompletedTrials()
    first = archive.trials
    assert first == () and archive.trials is first and archive.version == 0
    kept = trial("0", f=1.0)
    archive.add(kept, 0)
    archive.add(trial("1", f=2.0), 1)
    snapshot, before = archive.trials, archive.values(["f"])
    assert archive.trials is snapshot and archive.version == 2
    kept.metrics.update("f", 7.0, step=1)  # reported again after completing
    archive.refresh("0")
    assert archive.values(["f"])[:, 0].tolist() == [7.0, 2.0]
    assert before[:, 0].tolist() == [1.0, 2.0]  # what a caller read is not changed
    archive.remove("1")
    archive.remove("missing")  # nothing to do
    assert [t.trial_id for t in archive.trials] == ["0"] and len(archive) == 1
    assert [t.trial_id for t in snapshot] == ["0", "1"]  # snapshots are immutable
    assert archive.version == 4
