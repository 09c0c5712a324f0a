"""flatnas-tf: FlatNAS neural architecture search in TensorFlow/Keras.

The public API is re-exported here:

- `SAMModel`: a `keras.Model` whose `train_step` runs Sharpness-Aware
  Minimization (SAM) or its adaptive form (ASAM).
"""

from flatnas_tf._version import __version__
from flatnas_tf.sam import SAMModel

__all__ = ["SAMModel", "__version__"]
