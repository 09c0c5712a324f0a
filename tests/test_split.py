"""DataSplit: one typed value for a data set and its split, read back from what runs record."""

from __future__ import annotations

import pytest

from flatnas_tf.app.split import DataSplit


def test_recorded_settings_round_trip_and_options_given_win():
    split = DataSplit("npz:x.npz", seed=4, validation_fraction=0.25, data_dir="/tfds")
    assert DataSplit.from_settings(split.to_settings()) == split
    recorded = {"data": "digits", "seed": 2, "validation_fraction": 0.2, "mode": "flatnas"}
    assert DataSplit.from_settings(recorded, seed=None, data="cifar10") == DataSplit(
        "cifar10", 2, 0.2
    )
    assert DataSplit.from_settings({}) == DataSplit()  # settings older than the keys
    assert split.identity() == {"data": "npz:x.npz", "seed": 4, "validation_fraction": 0.25}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"data": ""}, "`data` must be a data set spec"),
        ({"seed": 1.5}, "`seed` must be an integer"),
        ({"seed": True}, "`seed` must be an integer"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"validation_fraction": float("nan")}, "validation_fraction"),
    ],
)
def test_a_split_that_cannot_be_is_refused_with_its_name(values, message):
    with pytest.raises(ValueError, match=message):
        DataSplit(**values)


def test_loading_gives_the_data_set_of_the_spec():
    data = DataSplit("digits", seed=1).load()
    assert data.name == "digits" and data.input_shape == (8, 8, 1)
    with pytest.raises(ValueError, match="no such file"):
        DataSplit("npz:/nowhere.npz").load()
