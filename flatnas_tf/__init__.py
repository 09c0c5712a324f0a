"""flatnas-tf: FlatNAS neural architecture search in TensorFlow/Keras.

The public API is re-exported here:

- `SAMModel`: a `keras.Model` whose `train_step` runs Sharpness-Aware
  Minimization (SAM) or its adaptive form (ASAM).
- `weight_robustness`, `FlatnessCallback`: FlatNAS's flatness figure R, the
  robustness of accuracy to random weight perturbations.
- `FlatNASHyperModel`: the MobileNetV3 / Once-For-All search space for
  KerasTuner, made to be subclassed (`ResNetHyperModel` is an example).
- `Supernet`, `train_supernet`, `load_supernet`: weight sharing. The space
  as one elastic supernet trained with the sandwich rule; candidates inherit
  its weights (`flatnas_tf.tuners.SupernetTuner` searches through it).
- `TrainingRegime`: how a trial trains a candidate from random weights
  (warm-up + cosine schedule, BatchNorm recalibration via
  `recalibrate_batch_norm`, one trace of the step).
- `load_dataset`: data sets by name (bundled `digits`, `npz:`, `folder:`,
  TFDS) with their tf.data pipelines.
- `evaluate_ood`, `corrupt`: accuracy under corruptions (TFDS CIFAR-10-C or
  17 built-in TensorFlow corruptions), mCE.
"""

from flatnas_tf._version import __version__
from flatnas_tf.batchnorm import FusedBatchNormalization, recalibrate_batch_norm
from flatnas_tf.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, corrupt
from flatnas_tf.data import DatasetUnavailableError, ImageDataset, from_arrays, load_dataset
from flatnas_tf.flatness import (
    FlatnessCallback,
    PerturbedEvaluator,
    RobustnessResult,
    weight_robustness,
)
from flatnas_tf.hypermodel import FlatNASHyperModel, ResNetHyperModel, TrainingSettings
from flatnas_tf.losses import SparseCrossentropyWithSmoothing
from flatnas_tf.ood import OODResult, evaluate_ood
from flatnas_tf.regime import TrainingRegime
from flatnas_tf.sam import SAMModel
from flatnas_tf.sandwich import SupernetSettings, load_supernet, train_supernet
from flatnas_tf.supernet import SubNetworkModel, Supernet

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "DatasetUnavailableError",
    "FlatNASHyperModel",
    "FlatnessCallback",
    "FusedBatchNormalization",
    "ImageDataset",
    "OODResult",
    "PerturbedEvaluator",
    "ResNetHyperModel",
    "RobustnessResult",
    "SAMModel",
    "SparseCrossentropyWithSmoothing",
    "SubNetworkModel",
    "Supernet",
    "SupernetSettings",
    "TrainingRegime",
    "TrainingSettings",
    "__version__",
    "corrupt",
    "evaluate_ood",
    "from_arrays",
    "load_dataset",
    "load_supernet",
    "recalibrate_batch_norm",
    "train_supernet",
    "weight_robustness",
]
