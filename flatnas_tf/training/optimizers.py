"""SGD with momentum and decoupled weight decay, on TensorFlow's fused kernels.

Keras 3's SGD is written in backend-neutral ops: per variable, about ten
graph nodes for the momentum update and seven for weight decay (whose
learning rate it also reads once per variable). In a candidate of the search
space, with ~190 trainable variables, that is ~3,200 nodes of every training
step, a quarter of a SAM step; on a CPU a step's time and its tracing time
grow with its node count. `FusedSGD` performs the same update with one
TensorFlow kernel per variable for each part:

    decay:    w = w - (lr * weight_decay) * w      ResourceApplyGradientDescent
    momentum: m = momentum * m - lr * g            ResourceApplyKerasMomentum
              w = w + m        (nesterov: w = w + momentum * m - lr * g)

which is `keras.optimizers.SGD`'s arithmetic, in the same order (decay
first, on the weights the gradient was taken at). Other backends, sparse
gradients, and SGD without momentum use Keras' own code.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from flatnas_tf import compat

__all__ = ["FusedSGD"]


def _tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


@keras.saving.register_keras_serializable(package="flatnas_tf")
class FusedSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose updates run as fused TensorFlow kernels.

    Same arguments, variables, configuration and arithmetic as Keras' SGD
    (see the module docstring); a drop-in replacement that makes training
    steps smaller graphs.

    Example:
    ```python
    model.compile(optimizer=FusedSGD(0.1, momentum=0.9, weight_decay=5e-4), loss=...)
    ```
    """

    def update_step(self, gradient, variable, learning_rate):
        if not _tensorflow() or self.momentum == 0 or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[compat.variable_index(self, variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=momentum.value.handle,
            lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype),
            momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=self.nesterov,
        )

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not _tensorflow():
            return super()._apply_weight_decay(variables)
        decay = self.learning_rate * self.weight_decay  # read once, not per variable

        def decay_fn(variable):
            tf.raw_ops.ResourceApplyGradientDescent(
                var=variable.handle,
                alpha=tf.cast(decay, variable.dtype),
                delta=variable.read_value(),
            )

        def distributed(distribution, variables):
            for variable in variables:
                if compat.uses_weight_decay(self, variable):
                    if isinstance(variable, keras.Variable):
                        variable = variable.value
                    distribution.extended.update(variable, decay_fn, group=False)

        compat.merge_call(distributed, self, variables)
