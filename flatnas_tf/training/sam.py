"""Sharpness-Aware Minimization (SAM) and adaptive SAM (ASAM) as a `keras.Model`.

One training step on a batch (x, y), with base optimizer `opt` and radius rho:

    g     = grad L(w)                          # pass 1: loss, metrics, BatchNorm
                                               #         statistics are taken here
    SAM:  eps = rho * g / (||g||_2 + 1e-12)                    (Foret et al., 2021)
    ASAM: T   = |w| + eta on kernels, 1 on other variables     (Kwon et al., 2021)
          eps = rho * T^2 * g / (||T * g||_2 + 1e-12)
    w_adv = w + eps                            # w is kept as a copy
    g_sam = grad L(w_adv)                      # pass 2: its side effects are undone
    w     = copy of w                          # restored before the update, so
    opt.apply(g_sam, w)                        # weight decay sees the true weights

Choices this implementation makes, each tested in `tests/test_sam.py`:

- The norm is the global L2 norm over all trainable variables, computed in
  float32. A non-finite first gradient (e.g. a mixed-precision overflow) gives
  eps = 0, so the step degenerates to the base optimizer's step and the loss
  scale optimizer skips it; NaN never reaches the weights.
- ASAM scales *kernels*, defined as trainable variables of rank >= 2 (dense,
  convolution and depthwise kernels). Rank 0/1 variables (biases and
  normalisation scales/offsets) get T = 1. The official PyTorch code scales
  every parameter named "weight", which there also includes BatchNorm's gamma;
  rank is the rule that does not depend on variable names.
- Pass 2 sees the same dropout masks as pass 1 (random-generator states are
  rewound), and every state change it makes (BatchNorm moving statistics,
  metric trackers of the compiled loss) is undone: moving statistics are
  updated once per step, from the unperturbed pass, and the reported loss and
  metrics are those of the unperturbed weights.
- Under `tf.distribute` each replica computes its own eps from its own
  gradients (m-sharpness with m = the per-replica batch, as in the SAM paper);
  `sync_epsilon=True` all-reduces a copy of the first gradients so every
  replica uses the global-batch eps. The final gradients are reduced once, by
  `optimizer.apply`.
- rho = 0 gives eps = 0 exactly, so the step equals the base optimizer's.
- Both passes call one nested `tf.function` when the step is traced (built
  model, one replica), so the forward and backward graph is traced once.

References:
    P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur. Sharpness-Aware Minimization
    for Efficiently Improving Generalization. ICLR 2021. arXiv:2010.01412.
    J. Kwon, J. Kim, H. Park, I. K. Choi. ASAM: Adaptive Sharpness-Aware
    Minimization for Scale-Invariant Learning of Deep Neural Networks.
    ICML 2021. arXiv:2102.11600.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import keras
import tensorflow as tf

from flatnas_tf import compat
from flatnas_tf.checks import check_number, is_number
from flatnas_tf.compat import Functional

_NORM_GUARD = 1e-12


def sam_perturbation(
    gradients: Sequence[tf.Tensor],
    weights: Sequence[tf.Tensor],
    rho: float,
    adaptive: bool = False,
    eta: float = 0.01,
) -> list[tf.Tensor]:
    """Computes SAM's (or ASAM's) weight perturbation eps from gradients.

    Args:
        gradients: One gradient per weight tensor (no `None`).
        weights: The weight tensors, used by ASAM for `|w| + eta`.
        rho: Neighbourhood radius, >= 0.
        adaptive: If True, ASAM scaling on kernels (rank >= 2 variables).
        eta: ASAM's offset in `T = |w| + eta`.

    Returns:
        One perturbation tensor per weight, in the weight's dtype. All zeros when
        the gradients are not finite.

    Example:
    >>> eps = sam_perturbation([tf.constant([3.0, 4.0])], [tf.zeros(2)], rho=1.0)
    >>> [round(float(e), 4) for e in eps[0]]
    [0.6, 0.8]
    """
    offsets = [
        tf.abs(tf.cast(w, tf.float32)) + eta if adaptive and w.shape.rank >= 2 else None
        for w in weights
    ]
    directions = [
        tf.cast(g, tf.float32) if t is None else tf.cast(g, tf.float32) * t
        for g, t in zip(gradients, offsets, strict=True)
    ]
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(d)) for d in directions]))
    scale = tf.where(tf.math.is_finite(norm), rho / (norm + _NORM_GUARD), 0.0)
    epsilons = []
    for direction, offset, weight in zip(directions, offsets, weights, strict=True):
        if offset is not None:
            direction = direction * offset
        # multiply_no_nan: a zero scale also zeroes inf/NaN directions.
        epsilons.append(tf.cast(tf.math.multiply_no_nan(direction, scale), weight.dtype))
    return epsilons


def _snapshot(variables: Sequence[keras.Variable]) -> list[tf.Tensor]:
    return [tf.identity(v.value) for v in variables]


def _restore(variables: Sequence[keras.Variable], values: Sequence[tf.Tensor]) -> None:
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _is_functional_call(args: tuple, kwargs: dict) -> bool:
    """Whether constructor arguments are Keras' functional form (inputs, outputs)."""
    return (
        len(args) == 2
        or (len(args) == 1 and "outputs" in kwargs)
        or ("inputs" in kwargs and "outputs" in kwargs)
    )


def _graph_ends(model: keras.Model) -> tuple:
    """A model's symbolic (inputs, outputs), or (None, None) if it has no graph."""
    try:
        return model.input, model.output  # functional: keeps dict/list structure
    except (AttributeError, ValueError):
        pass
    try:  # Sequential: single input and output
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return None, None
    if not inputs or not outputs:
        return None, None
    unpack = lambda tensors: tensors[0] if len(tensors) == 1 else tensors  # noqa: E731
    return unpack(inputs), unpack(outputs)


def _check_radius(name: str, value: float) -> float:
    if not is_number(value):
        raise TypeError(f"`{name}` must be a number >= 0; received {name}={value!r}.")
    return check_number(value, name, 0)


@keras.saving.register_keras_serializable(package="flatnas_tf")
class SAMModel(keras.Model):
    """A `keras.Model` trained with Sharpness-Aware Minimization (SAM / ASAM).

    Use it as any Keras model: functional (`SAMModel(inputs, outputs, rho=...)`),
    by subclassing (pass `rho` etc. to `super().__init__`), or by wrapping a
    built functional or Sequential model with `SAMModel.from_model`. Compile it
    with any optimizer, loss and metrics; `fit` then takes SAM steps. Evaluation
    and prediction are unchanged.

    Args:
        *args: Passed to `keras.Model` (e.g. `inputs, outputs`).
        rho: Neighbourhood radius (>= 0). 0.05 is usual for SAM, 0.5 to 2.0 for
            ASAM; 0 makes every step the base optimizer's step.
        adaptive: If True, use ASAM: perturbations scaled by `|w| + eta` on
            kernels (variables of rank >= 2), which makes sharpness invariant to
            rescaling of the weights.
        eta: ASAM's offset (>= 0); ignored when `adaptive` is False.
        sync_epsilon: Under `tf.distribute`, compute eps from the all-reduced
            first gradients (one global eps) instead of per replica.
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Example:
    ```python
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = SAMModel(inputs, outputs, rho=2.0, adaptive=True)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images, labels, epochs=6)
    ```
    """

    def __new__(cls, *args, **kwargs):
        # keras.Model handles `Model(inputs, outputs)` by splicing Functional
        # into the bases of the class being built, which would turn every later
        # subclass of SAMModel into a broken functional model. The functional
        # form gets its own class instead, `FunctionalSAMModel`.
        if cls is SAMModel and _is_functional_call(args, kwargs):
            cls = FunctionalSAMModel
        return super().__new__(cls, *args, **kwargs)

    def __init__(
        self,
        *args,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        sync_epsilon: bool = False,
        **kwargs,
    ):
        rho = _check_radius("rho", rho)
        eta = _check_radius("eta", eta)
        if not _is_functional_call(args, kwargs):
            keras.Model.__init__(self, *args, **kwargs)
        elif isinstance(self, Functional):
            Functional.__init__(self, *args, **kwargs)
        else:
            raise TypeError(
                f"{type(self).__name__} is a SAMModel subclass: build it by subclassing "
                "(layers in __init__, a call() method). For a model given by inputs and "
                "outputs use SAMModel(inputs, outputs, ...) or SAMModel.from_model(model)."
            )
        self.rho = rho
        self.adaptive = bool(adaptive)
        self.eta = eta
        self.sync_epsilon = bool(sync_epsilon)

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        sync_epsilon: bool = False,
        name: str | None = None,
    ) -> SAMModel:
        """Wraps a built functional or Sequential model as a `SAMModel`.

        The new model shares its layers, and therefore its weights, with
        `model`: training one trains the other. Compile the returned model.

        Args:
            model: A functional or Sequential `keras.Model` with known inputs
                (built from `keras.Input`).
            rho: See `SAMModel`.
            adaptive: See `SAMModel`.
            eta: See `SAMModel`.
            sync_epsilon: See `SAMModel`.
            name: Name of the new model; defaults to `model.name`.

        Returns:
            A `SAMModel` computing the same function as `model`.

        Example:
        ```python
        base = keras.applications.MobileNetV3Small(weights=None, classes=10)
        model = SAMModel.from_model(base, rho=2.0, adaptive=True)
        ```
        """
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"SAMModel.from_model expects a keras.Model; received {type(model).__name__}."
            )
        inputs, outputs = _graph_ends(model)
        if inputs is None or outputs is None:
            raise ValueError(
                f"SAMModel.from_model needs a functional or Sequential model with known "
                f"inputs; {model.name!r} has none (build it from keras.Input). For a "
                "subclassed model, subclass SAMModel instead of keras.Model."
            )
        return cls(
            inputs=inputs,
            outputs=outputs,
            rho=rho,
            adaptive=adaptive,
            eta=eta,
            sync_epsilon=sync_epsilon,
            name=name or model.name,
        )

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`; a `tf.data.Dataset` is fitted with `shuffle=False` by default.

        Keras ignores `shuffle` for a dataset (it shuffles itself, if at
        all) and warns on every call that leaves the default True: the
        default here changes nothing but the warning.
        """
        if not args and "shuffle" not in kwargs and isinstance(x, tf.data.Dataset):
            kwargs["shuffle"] = False
        return super().fit(x, y, *args, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            rho=self.rho,
            adaptive=self.adaptive,
            eta=self.eta,
            sync_epsilon=self.sync_epsilon,
        )
        return config

    def _rng_state_variables(self) -> list[keras.Variable]:
        """Random-generator states (e.g. dropout seeds): variables that are not weights."""
        weight_ids = {id(v) for v in self.non_trainable_weights}
        return [v for v in self.non_trainable_variables if id(v) not in weight_ids]

    def _state_variables(self) -> list[keras.Variable]:
        """Everything a forward pass and `compute_loss` may change, besides weights."""
        seen: set[int] = set()
        state = []
        for variable in list(self.non_trainable_variables) + list(self.metrics_variables):
            if id(variable) not in seen:
                seen.add(id(variable))
                state.append(variable)
        return state

    def _loss_and_gradients(self, x, y, sample_weight):
        """Forward pass, loss and the gradients for every trainable variable (None if unused).

        The variables are read after the forward pass, which builds a subclassed
        model on its first call.
        """
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        return y_pred, loss, tape.gradient(scaled_loss, list(self.trainable_variables))

    def _pass_function(self):
        """`_loss_and_gradients`, traced once for both SAM passes when that is safe.

        Inside a traced train step, calling one nested `tf.function` twice
        traces the forward and backward graph once instead of twice (about a
        third of the step's tracing time). Eager runs, unbuilt models (whose
        variables the first pass creates) and multi-replica strategies call
        the method directly.
        """
        if (
            tf.executing_eagerly()
            or not self.built
            or tf.distribute.get_strategy().num_replicas_in_sync > 1
        ):
            return self._loss_and_gradients
        if getattr(self, "_traced_pass", None) is None:
            # Not a tracked attribute: a cache of a function of this model.
            object.__setattr__(self, "_traced_pass", tf.function(self._loss_and_gradients))
        return self._traced_pass

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        rng_variables = self._rng_state_variables()
        rng_before = _snapshot(rng_variables)

        # Pass 1 at w: the reported loss/metrics and the BatchNorm statistics.
        loss_and_gradients = self._pass_function()
        y_pred, loss, gradients = loss_and_gradients(x, y, sample_weight)
        variables = list(self.trainable_variables)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        # Keras losses are divided by the replica count; the tracker wants the mean.
        compat.loss_tracker(self).update_state(loss * replicas, sample_weight=batch_size)
        used = [i for i, gradient in enumerate(gradients) if gradient is not None]
        if not used:
            warnings.warn(
                "The model has no trainable weights that the loss depends on.", stacklevel=2
            )
            return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        variables = [variables[i] for i in used]
        gradients = [gradients[i] for i in used]

        state_variables = self._state_variables()
        state_after_pass1 = _snapshot(state_variables)
        weights = _snapshot(variables)
        ascent = gradients
        if self.sync_epsilon and replicas > 1:
            ascent = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, gradients
            )
        epsilons = sam_perturbation(ascent, weights, self.rho, self.adaptive, self.eta)
        for variable, epsilon in zip(variables, epsilons, strict=True):
            variable.assign_add(epsilon)
        _restore(rng_variables, rng_before)

        # Pass 2 at w + eps (same dropout masks): only its gradients are kept.
        _, _, all_sam_gradients = loss_and_gradients(x, y, sample_weight)
        sam_gradients = [all_sam_gradients[i] for i in used]
        _restore(variables, weights)
        _restore(state_variables, state_after_pass1)

        self.optimizer.apply(sam_gradients, variables)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="flatnas_tf")
class FunctionalSAMModel(SAMModel, Functional):
    """The class of `SAMModel(inputs, outputs, ...)`: a functional SAMModel.

    Not constructed directly: `SAMModel(inputs, outputs)` returns one, and
    `isinstance(model, SAMModel)` holds. It exists so that the functional and
    the subclassing forms of SAMModel can be used in the same program.
    """
