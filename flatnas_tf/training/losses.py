"""Cross-entropy on integer labels with label smoothing.

Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`, and FlatNAS
trains with label smoothing 0.1 on integer labels. This loss one-hot encodes the
labels and delegates to `keras.losses.categorical_crossentropy`:

    loss(y, logits) = CE((1 - s) * onehot(y) + s / K, softmax(logits))
"""

from __future__ import annotations

import keras
from keras import ops

from flatnas_tf.checks import check_number


@keras.saving.register_keras_serializable(package="flatnas_tf")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Categorical cross-entropy for integer labels, with label smoothing.

    Args:
        label_smoothing: Smoothing s in [0, 1): targets become
            `(1 - s) * onehot + s / num_classes`.
        from_logits: Whether predictions are logits (True) or probabilities.
        reduction: Keras loss reduction.
        name: Loss name.

    Example:
    ```python
    model.compile(loss=SparseCrossentropyWithSmoothing(0.1), metrics=["accuracy"])
    ```
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "sparse_crossentropy_with_smoothing",
    ):
        label_smoothing = check_number(label_smoothing, "label_smoothing", 0, 1, high_open=True)
        super().__init__(name=name, reduction=reduction)
        self.label_smoothing = label_smoothing
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
        }
