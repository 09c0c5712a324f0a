"""BatchNorm for short trainings: a fused training kernel and statistics recalibration.

Fused training kernel. Keras 3 computes a training-mode BatchNorm from about
a dozen small ops (moments, normalisation, two moving-average updates), and
their gradients from about thirty more: in a MobileNetV3 candidate, BatchNorm
was close to half of the nodes of a SAM training step, and on a CPU a step's
time and its tracing time grow with the node count, not with the arithmetic.
`FusedBatchNormalization` computes the same normalisation with TensorFlow's
fused kernel (one op forward, one op backward), which also updates the
moving statistics:

    y           = gamma * (x - mean) / sqrt(var + epsilon) + beta    (batch moments)
    moving_mean = momentum * moving_mean + (1 - momentum) * mean
    moving_var  = momentum * moving_var  + (1 - momentum) * var * n / (n - 1)
                  n = batch * height * width

The moving variance averages the unbiased batch variance, as PyTorch (the
FlatNAS reference code) and Keras 2's fused layer do; Keras 3 averages the
biased one, a factor (n - 1) / n smaller (0.999 for n = 1,024). Inference,
masked, renormalised, synchronised or non-NHWC calls take Keras' own path, so
saved and exported models compute what a plain `BatchNormalization` computes.

Recalibration. After a short training at a high learning rate the moving
statistics lag behind the final weights (each is an exponential average of
statistics of earlier weights), and inference-mode accuracy can sit tens of
points below training accuracy. `recalibrate_batch_norm` replaces them with
the statistics of the final weights, as Once-For-All does for sub-networks:

    for each batch b of training images (up to max_examples), in training mode:
        momentum_b = seen / (seen + |b|)        (a running mean, weighted by size)
        forward(b)                              (updates every BatchNorm)
    => moving_mean = mean over batches of batch means,
       moving_var  = mean over batches of batch variances (as each layer
                     averages them: unbiased for the fused layer)

Reference: H. Cai, C. Gan, T. Wang, Z. Zhang, S. Han. Once-for-All: Train One
Network and Specialize it for Efficient Deployment. ICLR 2020 (BatchNorm
statistics recalibration of sub-networks). arXiv:1908.09791.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from flatnas_tf import compat
from flatnas_tf.checks import check_integer

__all__ = ["FusedBatchNormalization", "batch_norm_layers", "recalibrate_batch_norm"]


@keras.saving.register_keras_serializable(package="flatnas_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with TensorFlow's fused kernel in training.

    Same arguments, weights and outputs as Keras' layer; the moving variance
    averages unbiased batch variances (see the module docstring). Only a
    training-mode call on a 4-D channels-last input takes the fused kernel,
    which makes a training step's graph smaller and faster to trace and to run.

    Example:
    ```python
    x = FusedBatchNormalization(momentum=0.9)(keras.layers.Conv2D(16, 3)(inputs))
    ```
    """

    def _fusable(self, inputs, training, mask) -> bool:
        return (
            bool(training)
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (3, -1)
            and keras.backend.backend() == "tensorflow"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # as Keras: statistics in float32
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        y, moving_mean, moving_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=gamma,
            offset=beta,
            mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0 - self.momentum,
            data_format="NHWC",
            is_training=True,
        )
        self.moving_mean.assign(moving_mean)
        self.moving_variance.assign(moving_variance)
        return tf.cast(y, self.compute_dtype)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNorm layer of a model, nested ones included, in model order.

    Args:
        model: Any Keras model.

    Returns:
        The `keras.layers.BatchNormalization` instances (subclasses included).
    """
    layers = compat.layers_within(model)
    return [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]


def _examples(data, batch_size: int, max_examples: int) -> tf.data.Dataset:
    if isinstance(data, tf.data.Dataset):
        examples = data.unbatch()
    elif isinstance(data, (tuple, list)) and len(data) in (1, 2, 3):
        examples = tf.data.Dataset.from_tensor_slices(tuple(data))
    else:
        raise TypeError(
            "`data` must be a tf.data.Dataset of (x, y) batches or a tuple of arrays (x, y); "
            f"received {type(data).__name__}."
        )
    return examples.take(max_examples).batch(batch_size)


def recalibrate_batch_norm(
    model: keras.Model, data, max_examples: int = 2000, batch_size: int = 500
) -> int:
    """Sets BatchNorm moving statistics to the statistics of the current weights.

    Runs the model in training mode over up to `max_examples` training
    examples (re-batched to `batch_size`) and makes every trainable BatchNorm
    layer's moving mean and variance the size-weighted mean of its batch
    statistics (see the module docstring). Weights are not touched; layers
    frozen with `trainable=False` keep their statistics, as in training.

    Args:
        model: A Keras model (any model; one without BatchNorm is left as is).
        data: Training data: a tf.data.Dataset of `(x, y)` or `(x, y, w)`
            batches, or a tuple of arrays. Augmented batches are fine (the
            statistics then match what training saw).
        max_examples: Examples to use at most (Once-For-All uses 2,000).
        batch_size: Examples per forward pass; larger is faster, but peak
            memory grows with it.

    Returns:
        The number of examples the statistics were computed from (0 when the
        model has no trainable BatchNorm layer).

    Example:
    ```python
    model.fit(train_ds, epochs=5)
    recalibrate_batch_norm(model, train_ds)
    model.evaluate(val_ds)          # inference mode, statistics of the final weights
    ```
    """
    for name, value in (("max_examples", max_examples), ("batch_size", batch_size)):
        check_integer(value, name, 1)
    layers = [layer for layer in batch_norm_layers(model) if layer.trainable]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    seen = 0
    try:
        for batch in _examples(data, batch_size, max_examples):
            x = keras.utils.unpack_x_y_sample_weight(batch)[0]
            size = int(tf.shape(tf.nest.flatten(x)[0])[0])
            for layer in layers:
                layer.momentum = seen / (seen + size)
            model(x, training=True)
            seen += size
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return seen
