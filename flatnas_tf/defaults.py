"""Choices and defaults that the library, the CLI and run.json share, stated once.

TensorFlow-free, so that the CLI's option declarations and the readers of a
search directory can use them without importing TensorFlow.
"""

__all__ = [
    "LABEL_SMOOTHING",
    "LEARNING_RATE",
    "MAX_WIDTH",
    "MOMENTUM",
    "RHO",
    "SAM_CHOICES",
    "SCHEDULES",
    "VALIDATION_FRACTION",
    "WARMUP",
    "WEIGHT_DECAY",
]

#: Learning-rate schedules of a trial (`flatnas_tf.TrainingRegime`, --schedule); the first
#: is the default.
SCHEDULES = ("cosine", "constant")
#: Fraction of a trial's steps spent warming the learning rate up (--warmup).
WARMUP = 0.1
#: Peak SGD learning rate of a candidate trained from random weights (--learning-rate).
LEARNING_RATE = 0.1
#: SGD momentum of a candidate and of a supernet (--momentum).
MOMENTUM = 0.9
#: Decoupled weight decay of their SGD optimizer (--weight-decay).
WEIGHT_DECAY = 5e-4
#: Label smoothing of their cross-entropy (--label-smoothing).
LABEL_SMOOTHING = 0.1
#: A candidate's step (--sam): adaptive SAM, SAM, or plain SGD (the accuracy-only
#: baseline); the first is the default.
SAM_CHOICES = ("asam", "sam", "off")
#: SAM/ASAM radius of a candidate trained from random weights (--rho; FlatNAS fine-tunes
#: pretrained networks with 2.0, which holds training from random weights back).
RHO = 0.5
#: The widest width multiplier of the space (`FlatNASHyperModel`, --widths).
MAX_WIDTH = 4.0
#: Fraction of the training data held out for validation (`load_dataset`, --validation-fraction).
VALIDATION_FRACTION = 0.1
