"""The names of the figures flatnas-tf measures, importable without TensorFlow.

A trial of a search records, under these names (KerasTuner metrics, the
columns of `flatnas-tf report`'s tables):

    val_accuracy, val_loss    Keras' metrics on the validation data, measured once
    accuracy, loss            the same on the training data (last epoch)
    LOG_NAMES                 the flatness figures (`flatnas_tf.robustness.flatness`)
    params                    the candidate's parameter count
    CHANCE_METRIC             the binomial test against the majority-class rate
    train_time_s, measure_time_s

They live apart from the code that measures them so that reading a finished
search (`SearchResult`, `flatnas-tf report`) needs neither TensorFlow nor
KerasTuner.
"""

from __future__ import annotations

__all__ = ["CHANCE_METRIC", "FIGURES", "LOG_NAMES"]

#: Names under which `FlatnessCallback` writes its figures into `logs`, with
#: the direction in which each is better.
LOG_NAMES = {
    "robustness": "min",
    "robustness_loss_gap": "min",
    "perturbed_accuracy": "max",
    "perturbed_loss": "min",
}

#: The constraint metric of the above-chance test (`flatnas_tf.robustness.chance`).
CHANCE_METRIC = "chance_p_value"

#: Figures every trial of a search records (trained ones; over-budget ones
#: record params and the chance test only).
FIGURES = (
    "val_accuracy",
    "val_loss",
    "accuracy",
    "loss",
    *LOG_NAMES,
    "params",
    CHANCE_METRIC,
    "train_time_s",
    "measure_time_s",
)
