"""Choices and defaults that the library, the CLI and run.json share, stated once.

TensorFlow-free, so that the CLI's option declarations and the readers of a
search directory can use them without importing TensorFlow.
"""

__all__ = ["MAX_WIDTH", "SCHEDULES", "VALIDATION_FRACTION"]

#: Learning-rate schedules of a trial (`flatnas_tf.TrainingRegime`, --schedule).
SCHEDULES = ("cosine", "constant")
#: The widest width multiplier of the space (`FlatNASHyperModel`, --widths).
MAX_WIDTH = 4.0
#: Fraction of the training data held out for validation (`load_dataset`, --validation-fraction).
VALIDATION_FRACTION = 0.1
