"""Choices and defaults that the library, the CLI and run.json share, stated once.

TensorFlow-free, so that the CLI's option declarations and the readers of a
search directory can use them without importing TensorFlow.
"""

__all__ = [
    "BATCH_SIZE",
    "CHIEF_TIMEOUT_S",
    "DEPTHS",
    "DISTILLATION",
    "LABEL_SMOOTHING",
    "LEARNING_RATE",
    "MAX_DEPTH",
    "MAX_WIDTH",
    "MOMENTUM",
    "OOD_EXAMPLES",
    "RANDOM_SUBNETS",
    "RHO",
    "SAM_CHOICES",
    "SCHEDULES",
    "SEVERITIES",
    "SIGMA",
    "SUPERNET_EPOCHS",
    "SUPERNET_WARMUP",
    "SUPERNET_WIDTH",
    "TRAIN_EPOCHS",
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
#: The space's choices of stage depth (blocks per stage; `FlatNASHyperModel`, --depths),
#: and the deepest a stage can be.
DEPTHS = (2, 3, 4)
MAX_DEPTH = 4
#: Fraction of the training data held out for validation (`load_dataset`, --validation-fraction).
VALIDATION_FRACTION = 0.1
#: Examples per training step of a candidate, a trained architecture and a supernet (--batch-size).
BATCH_SIZE = 64
#: Epochs of `flatnas-tf train` / `train_architecture` (--epochs).
TRAIN_EPOCHS = 10
#: Relative weight-noise scale of R, the flatness figure (`weight_robustness`, --sigma).
SIGMA = 0.05
#: Test images per corruption and severity in a search's finishing OOD check (--ood-examples).
OOD_EXAMPLES = 500
#: A supernet (`SupernetSettings`, `flatnas-tf supernet`): its width multiplier, epochs,
#: warm-up fraction, random sub-networks per step besides the largest and the smallest
#: (sandwich rule) and in-place distillation weight (0: labels only).
SUPERNET_WIDTH = 0.25
SUPERNET_EPOCHS = 30
SUPERNET_WARMUP = 0.05
RANDOM_SUBNETS = 2
DISTILLATION = 0.0
#: Seconds a distributed worker waits for the chief before it gives up (--chief-timeout).
CHIEF_TIMEOUT_S = 600.0
#: The severity scale of a corruption (CIFAR-10-C's, which the built-in corruptions follow).
SEVERITIES = (1, 2, 3, 4, 5)
