"""A search with a TensorBoard callback: HParams sessions with every figure as a metric."""

import keras
import pytest
import tensorflow as tf
from support.searches import one_conv_space, small_tuner

from flatnas_tf.figures import FIGURES

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import metadata  # noqa: E402


def _events(directory) -> EventAccumulator:
    events = EventAccumulator(str(directory))
    events.Reload()
    return events


def test_a_search_logs_hparams_sessions_with_every_figure(tmp_path, digits):
    tuner = small_tuner(one_conv_space(), tmp_path, samples=2)
    logs = tmp_path / "logs"
    train, validation = digits
    tuner.search(
        train,
        validation_data=validation,
        epochs=1,
        callbacks=[keras.callbacks.TensorBoard(str(logs))],
        verbose=0,
    )
    root = _events(logs)
    content = root.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    experiment = metadata.parse_experiment_plugin_data(content)
    assert [m.name.tag for m in experiment.metric_infos] == list(FIGURES)
    space_names = [hp.name for hp in tuner.oracle.get_space().space]
    assert [h.name for h in experiment.hparam_infos] == space_names
    assert "filters" in space_names
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(trials) == 2
    for trial in trials:
        session = logs / trial.trial_id / "execution0"
        events = _events(session)
        content = events.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
        start = metadata.parse_session_start_info_plugin_data(content)
        for name, value in trial.hyperparameters.values.items():
            assert start.hparams[name].number_value == value
        logged = {
            tag: float(tf.make_ndarray(events.Tensors(tag)[-1].tensor_proto))
            for tag in events.Tags()["tensors"]
            if not tag.startswith("_hparams_")
        }
        for name in ("val_accuracy", "robustness", "robustness_loss_gap", "params"):
            assert logged[name] == pytest.approx(trial.metrics.get_last_value(name), rel=1e-6)
        assert set(logged) <= set(FIGURES)
        assert (session / "train").is_dir()  # Keras' epoch curves
