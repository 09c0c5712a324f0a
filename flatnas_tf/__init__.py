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
- `TrainingConfig`: every training setting of a candidate (optimizer, loss,
  SAM/ASAM, schedule) in one TensorFlow-free value, from which a search
  derives `TrainingSettings` and `TrainingRegime`.
- `TrainingRegime`, `measure_candidate`: how a trial trains a candidate
  (warm-up + cosine schedule, NaN guard, BatchNorm recalibration via
  `recalibrate_batch_norm`, one trace of the step) and measures it
  (validation accuracy and loss, R, the chance test): the one trainer and
  the one measurer of the tuner, `flatnas-tf train` and the benchmarks.
- `load_dataset`: data sets by name (bundled `digits`, `npz:`, `folder:`,
  TFDS) with their tf.data pipelines.
- `evaluate_ood`, `corrupt`: accuracy under corruptions (TFDS CIFAR-10-C or
  17 built-in TensorFlow corruptions), mCE; `write_corrupted_set` /
  `load_corrupted_set` compute a data set's corrupted test images once and
  read them back for every later evaluation.
- `load_model`, `export_model`, `tflite_predict`: export directories
  (SavedModel, `.keras`, TFLite, manifest), loading and running them.

The namespace is lazy: `import flatnas_tf` imports neither TensorFlow nor
Keras; each name imports its module on first use (`flatnas-tf --help` and
`flatnas_tf.tuners.pareto` stay light). The Keras classes a `.keras` file
names (`SAMModel`, `FusedBatchNormalization`, ...) are registered with Keras
as soon as both Keras and flatnas_tf are imported, in either order, so
`keras.models.load_model("model.keras")` works after `import flatnas_tf`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flatnas_tf import _lazy, _registration
from flatnas_tf._version import __version__

#: Each public name and the module that defines it, imported on first use.
_EXPORTS = {
    "BENCHMARK_CORRUPTIONS": "robustness.corruptions",
    "CORRUPTIONS": "robustness.corruptions",
    "corrupt": "robustness.corruptions",
    "CorruptedSet": "robustness.corrupted_set",
    "load_corrupted_set": "robustness.corrupted_set",
    "write_corrupted_set": "robustness.corrupted_set",
    "DatasetUnavailableError": "data",
    "ImageDataset": "data",
    "from_arrays": "data",
    "load_dataset": "data",
    "FusedBatchNormalization": "training.batchnorm",
    "recalibrate_batch_norm": "training.batchnorm",
    "FlatnessCallback": "robustness.flatness",
    "PerturbedEvaluator": "robustness.flatness",
    "RobustnessResult": "robustness.flatness",
    "weight_robustness": "robustness.flatness",
    "FlatNASHyperModel": "space.hypermodel",
    "ResNetHyperModel": "space.hypermodel",
    "TrainingSettings": "space.hypermodel",
    "SparseCrossentropyWithSmoothing": "training.losses",
    "OODResult": "robustness.ood",
    "evaluate_ood": "robustness.ood",
    "measure_candidate": "robustness.measurement",
    "TrainingConfig": "training.config",
    "TrainingConfigError": "training.config",
    "TrainingDivergedError": "training.regime",
    "TrainingRegime": "training.regime",
    "SAMModel": "training.sam",
    "SupernetSettings": "space.sandwich",
    "load_supernet": "space.sandwich",
    "train_supernet": "space.sandwich",
    "SubNetworkModel": "space.supernet",
    "Supernet": "space.supernet",
    "export_model": "persistence.export",
    "load_model": "persistence.export",
    "tflite_predict": "persistence.export",
}

__all__ = sorted([*_EXPORTS, "__version__"])


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS, __all__)


_registration.register_when_keras_is_imported()

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from flatnas_tf.data import DatasetUnavailableError, ImageDataset, from_arrays, load_dataset
    from flatnas_tf.persistence.export import export_model, load_model, tflite_predict
    from flatnas_tf.robustness.corrupted_set import (
        CorruptedSet,
        load_corrupted_set,
        write_corrupted_set,
    )
    from flatnas_tf.robustness.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, corrupt
    from flatnas_tf.robustness.flatness import (
        FlatnessCallback,
        PerturbedEvaluator,
        RobustnessResult,
        weight_robustness,
    )
    from flatnas_tf.robustness.measurement import measure_candidate
    from flatnas_tf.robustness.ood import OODResult, evaluate_ood
    from flatnas_tf.space.hypermodel import FlatNASHyperModel, ResNetHyperModel, TrainingSettings
    from flatnas_tf.space.sandwich import SupernetSettings, load_supernet, train_supernet
    from flatnas_tf.space.supernet import SubNetworkModel, Supernet
    from flatnas_tf.training.batchnorm import FusedBatchNormalization, recalibrate_batch_norm
    from flatnas_tf.training.config import TrainingConfig, TrainingConfigError
    from flatnas_tf.training.losses import SparseCrossentropyWithSmoothing
    from flatnas_tf.training.regime import TrainingDivergedError, TrainingRegime
    from flatnas_tf.training.sam import SAMModel
