"""Resizing that leaves the training mode of the layers after it alone.

Keras resolves a layer call's `training` argument from (1) the call itself,
(2) an enclosing call, (4) the default of the layer's own `call` signature,
and keeps what it resolved in the call context for the layers called after
it. `keras.layers.Resizing.call(data, training=True)` has a default of True,
so in a model called as `model(x)` (no `training`) every layer after a
`keras.layers.Resizing` ran in training mode: BatchNorm normalised with the
batch's statistics (a prediction depended on the other images of the batch)
and updated its moving statistics, and `model.export` saved that graph (its
TFLite conversion then failed on training-mode FusedBatchNormV3). Resizing
computes the same thing in both modes, so this subclass declares no
`training` argument and the model's mode reaches the layers after it.
"""

from __future__ import annotations

import keras

__all__ = ["Resizing"]


@keras.saving.register_keras_serializable(package="flatnas_tf")
class Resizing(keras.layers.Resizing):
    """`keras.layers.Resizing` without a `training` argument (see the module docstring).

    Same arguments and outputs as Keras' layer.

    Example:
    ```python
    x = Resizing(40, 40, name="resize")(inputs)
    ```
    """

    def call(self, data):
        return super().call(data, training=False)  # resizing ignores the mode
