"""Weight sharing: `FlatNASHyperModel`'s space as one elastic supernet (Once-For-All).

The supernet is the largest network of the space at one width multiplier w
(width is a property of the supernet, as in OFA): every stage at the largest
depth, every depthwise kernel at the largest size K, every expansion at the
largest ratio. Which sub-network it computes is held in four non-trainable
vectors with one entry per MBConv slot (stage i, layer j):

    kernel[s]    depthwise kernel k: the centre k x k taps of the K x K kernel,
                 the others masked to 0 (OFA's centre crop; its kernel
                 transformation matrices are not used)
    mid[s]       expanded channels make_divisible(in * e): a prefix of the
                 largest expansion's channels; the others are set to 0 after
                 each activation, so no later layer reads them
    squeezed[s]  squeeze-and-excitation channels make_divisible(mid / 4), a prefix
    active[s]    1 if j <= the stage's depth; layers j >= 2 are residual, and an
                 inactive one adds 0 to its input

A sub-network therefore computes exactly what the static network of the same
architecture computes with the sliced weights (`extract`: kernels cut to the
centre and to the channel prefix, BatchNorm and SE parameters of the prefix).
`select(hp)` maps hyperparameters to the four vectors; the mapping reads
`FlatNASHyperModel.architecture`, so any architecture the space describes at
width w has exactly one sub-network. Because selecting only assigns
variables, the train, evaluate and flatness functions traced for the supernet
serve every candidate: one trace per input resolution (the resolution
changes the graph's shapes, and its strides). The price is arithmetic: masks
do not skip work, so every sub-network costs what the largest one costs
(measured by `benchmarks/weight_sharing.py`: `epoch_time_masked_vs_static`).

`SubNetworkModel` is the supernet seen at one resolution as an ordinary
compiled Keras model (a `SAMModel` when the space trains with SAM): `fit`,
`evaluate`, `recalibrate_batch_norm` and `PerturbedEvaluator` work on it
unchanged and train or measure the selected sub-network.

Reference: H. Cai, C. Gan, T. Wang, Z. Zhang, S. Han. Once-for-All: Train One
Network and Specialize it for Efficient Deployment. ICLR 2020. arXiv:1908.09791.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf
from keras import ops

from flatnas_tf.checks import check_number
from flatnas_tf.space.hypermodel import (
    STAGES,
    Architecture,
    BlockSpec,
    FlatNASHyperModel,
    batch_norm,
    make_divisible,
)
from flatnas_tf.space.resizing import Resizing
from flatnas_tf.training.sam import SAMModel
from flatnas_tf.training.tracing import build_training_state

__all__ = ["ElasticMBConv", "SubNetwork", "SubNetworkModel", "Supernet", "space_config"]


def _activation(name: str) -> Callable:
    return keras.activations.get(name)


def space_config(hypermodel: FlatNASHyperModel) -> dict[str, Any]:
    """The arguments that rebuild `hypermodel`'s space (training settings aside).

    Args:
        hypermodel: A `FlatNASHyperModel`.

    Returns:
        A JSON-ready dict of `FlatNASHyperModel` keyword arguments.
    """
    return {
        "input_shape": list(hypermodel.input_shape),
        "num_classes": hypermodel.num_classes,
        "width_multipliers": list(hypermodel.width_multipliers),
        "resolutions": list(hypermodel.resolutions),
        "depths": list(hypermodel.depths),
        "kernels": list(hypermodel.kernels),
        "expands": list(hypermodel.expands),
        "dropout": hypermodel.dropout,
    }


class ElasticMBConv(keras.layers.Layer):
    """The largest MBConv block of a slot, computing any smaller one through masks.

    Weights have the largest shapes (kernel K x K, expansion to the largest
    ratio); `call` takes the sub-block's kernel, expanded and squeezed channel
    counts as tensors (see the module docstring). The residual connection is
    the caller's.

    Args:
        largest: The slot's largest block (its `stride` is ignored: strides
            depend on the resolution and are given to `call`).
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).
    """

    def __init__(self, largest: BlockSpec, **kwargs):
        super().__init__(**kwargs)
        self.largest = largest
        self.expand_bn = batch_norm() if largest.expand != 1 else None
        self.depthwise_bn = batch_norm()
        self.project_bn = batch_norm()

    def build(self, input_shape):
        spec = self.largest
        mid = spec.mid_channels
        self.expand_kernel = None
        if spec.expand != 1:
            self.expand_kernel = self.add_weight(
                (1, 1, spec.in_channels, mid), "glorot_uniform", name="expand_kernel"
            )
        self.depthwise_kernel = self.add_weight(
            (spec.kernel, spec.kernel, mid, 1), "glorot_uniform", name="depthwise_kernel"
        )
        if spec.squeeze_excite:
            squeezed = make_divisible(mid // 4)
            self.reduce_kernel = self.add_weight(
                (1, 1, mid, squeezed), "glorot_uniform", name="reduce_kernel"
            )
            self.reduce_bias = self.add_weight((squeezed,), "zeros", name="reduce_bias")
            self.excite_kernel = self.add_weight(
                (1, 1, squeezed, mid), "glorot_uniform", name="excite_kernel"
            )
            self.excite_bias = self.add_weight((mid,), "zeros", name="excite_bias")
        self.project_kernel = self.add_weight(
            (1, 1, mid, spec.out_channels), "glorot_uniform", name="project_kernel"
        )

    def call(self, x, kernel, mid, squeezed, stride: int = 1, training=None):
        spec = self.largest
        activation = _activation(spec.activation)
        channels = ops.cast(ops.arange(spec.mid_channels), "float32")
        mid_mask = ops.cast(channels < mid, x.dtype)
        h = x
        if self.expand_kernel is not None:
            h = ops.conv(h, self.expand_kernel, padding="same")
            h = activation(self.expand_bn(h, training=training)) * mid_mask
        offsets = ops.abs(ops.cast(ops.arange(spec.kernel) - spec.kernel // 2, "float32"))
        taps = ops.cast(2 * offsets + 1 <= kernel, self.depthwise_kernel.dtype)
        crop = ops.reshape(taps, (-1, 1, 1, 1)) * ops.reshape(taps, (1, -1, 1, 1))
        h = ops.depthwise_conv(h, self.depthwise_kernel * crop, strides=stride, padding="same")
        h = activation(self.depthwise_bn(h, training=training)) * mid_mask
        if spec.squeeze_excite:
            squeeze_channels = ops.cast(ops.arange(self.reduce_bias.shape[0]), "float32")
            squeeze_mask = ops.cast(squeeze_channels < squeezed, x.dtype)
            scale = ops.mean(h, axis=(1, 2), keepdims=True)
            scale = ops.relu(ops.conv(scale, self.reduce_kernel) + self.reduce_bias) * squeeze_mask
            scale = ops.hard_sigmoid(ops.conv(scale, self.excite_kernel) + self.excite_bias)
            h = h * scale
        h = ops.conv(h, self.project_kernel, padding="same")
        return self.project_bn(h, training=training)

    def sub_weights(self, spec: BlockSpec) -> list[np.ndarray]:
        """The weights of the static block `spec`, cut from this block's, in Keras' order.

        Args:
            spec: A sub-block of this slot (same in/out channels).

        Returns:
            Arrays in the order `FlatNASHyperModel.build_block`'s layers hold
            them (expand conv, BN, depthwise conv, BN, SE convs, project conv, BN).
        """
        mid = spec.mid_channels
        centre, half = self.largest.kernel // 2, spec.kernel // 2
        taps = slice(centre - half, centre + half + 1)

        def bn(layer, channels):
            return [np.asarray(v)[:channels] for v in layer.weights]

        weights = []
        if self.expand_kernel is not None:
            weights += [np.asarray(self.expand_kernel)[..., :mid], *bn(self.expand_bn, mid)]
        weights += [np.asarray(self.depthwise_kernel)[taps, taps, :mid, :]]
        weights += bn(self.depthwise_bn, mid)
        if spec.squeeze_excite:
            squeezed = make_divisible(mid // 4)
            weights += [
                np.asarray(self.reduce_kernel)[:, :, :mid, :squeezed],
                np.asarray(self.reduce_bias)[:squeezed],
                np.asarray(self.excite_kernel)[:, :, :squeezed, :mid],
                np.asarray(self.excite_bias)[:mid],
            ]
        weights += [np.asarray(self.project_kernel)[:, :, :mid, :]]
        weights += bn(self.project_bn, spec.out_channels)
        return weights


@dataclasses.dataclass(frozen=True)
class SubNetwork:
    """A candidate as the supernet's architecture state.

    Attributes:
        resolution: Input resolution (None: the image size).
        kernel: Depthwise kernel per slot.
        mid: Expanded channels per slot.
        squeezed: Squeeze-and-excitation channels per slot (0 without SE).
        active: 1 per slot the candidate has, 0 per skipped layer.
        architecture: The static network (`FlatNASHyperModel.architecture`).
    """

    resolution: int | None
    kernel: tuple[int, ...]
    mid: tuple[int, ...]
    squeezed: tuple[int, ...]
    active: tuple[int, ...]
    architecture: Architecture


class Supernet(keras.Model):
    """An elastic MobileNetV3 supernet of `FlatNASHyperModel`'s space at one width.

    Args:
        hypermodel: The space: a `FlatNASHyperModel` with its own layers (a
            subclass that replaces `build`, `build_backbone`, `build_block` or
            `build_head` has no supernet).
        width: Width multiplier of the supernet; default: the space's only
            choice, or its largest.
        name: Model name.

    Example:
    ```python
    supernet = Supernet(FlatNASHyperModel((32, 32, 3), num_classes=10), width=0.5)
    hp = supernet.space.random_hyperparameters(seed=0)   # the space at width 0.5
    sub = supernet.select(hp)
    logits = supernet.forward(images, resolution=sub.resolution)  # that candidate's
    model = supernet.extract(hp)                  # a static candidate, same outputs
    ```
    """

    def __init__(self, hypermodel: FlatNASHyperModel, width: float | None = None, name="supernet"):
        super().__init__(name=name)
        if not isinstance(hypermodel, FlatNASHyperModel) or not (
            hypermodel.declares_whole_space and hypermodel._uses_default_layers()
        ):
            raise TypeError(
                "A supernet needs FlatNASHyperModel's own space; "
                f"{type(hypermodel).__name__} replaces its layers. Train its candidates "
                "from scratch with FlatNASTuner instead."
            )
        if width is None:
            width = max(hypermodel.width_multipliers)
        check_number(width, "width", 0, low_open=True)
        if 1 in hypermodel.expands:
            raise ValueError(
                "A supernet needs expand ratios > 1 (an expand-1 block has no expansion "
                f"layer to share); received expands={list(hypermodel.expands)}."
            )
        if any(k % 2 == 0 for k in hypermodel.kernels):
            raise ValueError(
                "Kernels are centre crops of the largest, so they must be odd; received "
                f"kernels={list(hypermodel.kernels)}."
            )
        config = space_config(hypermodel)
        config["width_multipliers"] = [float(width)]
        self.space = FlatNASHyperModel(**config, training=hypermodel.training)
        self.width = float(width)
        self.resolutions: tuple[int | None, ...] = self.space.resolutions or (None,)
        self.max_depth = max(self.space.depths)
        # The largest network at each resolution: channels of every slot, strides.
        self._plans = [
            self.space.architecture(self.extreme_hyperparameters(max, r)) for r in self.resolutions
        ]
        self.largest_resolution = max(self.resolutions, key=_order)
        self.smallest_resolution = min(self.resolutions, key=_order)
        largest = self._plans[self.resolutions.index(self.largest_resolution)]
        declared = kt.HyperParameters()
        self.space.declare_hyperparameters(declared)
        self._parameters = {p.name: p for p in declared.space}
        self.rescale = keras.layers.Rescaling(1.0 / 255.0, name="rescale")
        self.resizers = [
            Resizing(r, r, name=f"resize_{r}")
            for r in self.resolutions
            if r is not None and r != self.space.input_shape[0]
        ]
        self.stem_bn = batch_norm(name="stem_bn")
        self.blocks = [
            ElasticMBConv(spec, name=f"block{i}") for i, spec in enumerate(largest.blocks)
        ]
        self.head_expand = keras.layers.Conv2D(
            largest.head_channels, 1, use_bias=False, name="head_expand"
        )
        self.head_bn = batch_norm(name="head_bn")
        self.features = keras.layers.Dense(
            largest.feature_channels, use_bias=False, activation="hard_swish", name="features"
        )
        self.dropout = keras.layers.Dropout(self.space.dropout, name="dropout")
        self.classifier = keras.layers.Dense(self.space.num_classes, name="logits")
        slots = len(largest.blocks) - 1
        self.stem_kernel = self.add_weight(
            (3, 3, self.space.input_shape[2], largest.stem_channels),
            "glorot_uniform",
            name="stem_kernel",
        )
        state = {"trainable": False, "dtype": "float32"}
        self.arch_kernel = self.add_weight((slots,), "zeros", name="arch_kernel", **state)
        self.arch_mid = self.add_weight((slots,), "zeros", name="arch_mid", **state)
        self.arch_squeezed = self.add_weight((slots,), "zeros", name="arch_squeezed", **state)
        self.arch_active = self.add_weight((slots,), "zeros", name="arch_active", **state)
        # Forward passes built into graphs (tf.function traces and Keras' symbolic
        # builds; eager calls are not counted): what tests check stays constant.
        self.traces = 0
        self.select(self.extreme_hyperparameters(max))
        self(np.zeros((1, *self.space.input_shape), "float32"))  # creates every weight

    # -- the space ------------------------------------------------------------

    def extreme_hyperparameters(
        self, pick: Callable[[Sequence], Any], resolution: int | None | str = "pick"
    ) -> kt.HyperParameters:
        """The candidate with `pick` (max or min) of every choice.

        Args:
            pick: `max` for the largest sub-network, `min` for the smallest.
            resolution: Its resolution; default: `pick` of the choices.

        Returns:
            HyperParameters with a value for every hyperparameter.
        """
        hp = kt.HyperParameters()
        self.space.declare_hyperparameters(hp)
        for parameter in hp.space:
            hp.values[parameter.name] = pick(parameter.values)
        if resolution != "pick" and resolution is not None:
            hp.values["resolution"] = resolution
        return hp

    def sub_network(self, hp: kt.HyperParameters) -> SubNetwork:
        """The one sub-network of the supernet that `hp` describes.

        Args:
            hp: Hyperparameters of the space (at this supernet's width).

        Returns:
            The architecture state that `select` assigns.

        Raises:
            ValueError: `hp` is not an architecture of this supernet (another
                width, or a choice outside the space).
        """
        values = dict(hp.values)
        width = values.get("width_mult", self.width)
        if not np.isclose(width, self.width):
            raise ValueError(
                f"The candidate has width_mult={width}; this supernet is width {self.width:g}."
            )
        for name, value in values.items():
            if name == "width_mult" or value is None:
                continue
            parameter = self._parameters.get(name)
            if parameter is None or value not in parameter.values:
                raise ValueError(
                    f"{name}={value!r} is not in this supernet's space; choices: "
                    f"{parameter.values if parameter else 'none (unknown name)'}."
                )
        hp = hp.copy()
        hp.values["width_mult"] = self.width
        architecture = self.space.architecture(hp)
        kernel, mid, squeezed, active = [], [], [], []
        blocks = iter(architecture.blocks[1:])
        for stage in range(1, len(STAGES) + 1):
            depth = hp.get(f"stage{stage}_depth")
            for layer in range(1, self.max_depth + 1):
                largest = self.blocks[len(kernel) + 1].largest
                spec = next(blocks) if layer <= depth else largest
                kernel.append(spec.kernel)
                mid.append(spec.mid_channels)
                squeezed.append(
                    make_divisible(spec.mid_channels // 4) if spec.squeeze_excite else 0
                )
                active.append(int(layer <= depth))
        return SubNetwork(
            resolution=architecture.resolution,
            kernel=tuple(kernel),
            mid=tuple(mid),
            squeezed=tuple(squeezed),
            active=tuple(active),
            architecture=architecture,
        )

    def select(self, hp: kt.HyperParameters) -> SubNetwork:
        """Makes the supernet compute the candidate `hp` describes (no retracing).

        Args:
            hp: Hyperparameters of the space.

        Returns:
            The selected `SubNetwork`.
        """
        sub = self.sub_network(hp)
        self.assign_state(self.state(sub))
        return sub

    # -- computing ------------------------------------------------------------

    def forward(self, x, training=None, resolution: int | None = None):
        """Logits of the selected sub-network at `resolution` (a Python value).

        Args:
            x: Images, pixels in [0, 255].
            training: Training mode (BatchNorm batch statistics, dropout).
            resolution: One of the supernet's resolutions; default the largest.

        Returns:
            Logits, shape (batch, num_classes).
        """
        if resolution is None:
            resolution = self.largest_resolution
        if resolution not in self.resolutions:
            raise ValueError(
                f"resolution={resolution!r} is not one of this supernet's {self.resolutions}."
            )
        if not tf.executing_eagerly():
            object.__setattr__(self, "traces", self.traces + 1)
        plan = self._plans[self.resolutions.index(resolution)]
        x = self.rescale(x)
        if resolution is not None and resolution != self.space.input_shape[0]:
            x = next(r for r in self.resizers if r.height == resolution)(x)
        x = ops.conv(x, self.stem_kernel, strides=plan.stem_stride, padding="same")
        x = ops.hard_silu(self.stem_bn(x, training=training))
        first = plan.blocks[0]
        y = self.blocks[0](
            x,
            kernel=first.kernel,
            mid=first.mid_channels,
            squeezed=0,
            stride=first.stride,
            training=training,
        )
        x = x + y if first.residual else y
        for slot, (block, spec) in enumerate(zip(self.blocks[1:], plan.blocks[1:], strict=True)):
            y = block(
                x,
                kernel=self.arch_kernel[slot],
                mid=self.arch_mid[slot],
                squeezed=self.arch_squeezed[slot],
                stride=spec.stride,
                training=training,
            )
            if slot % self.max_depth == 0:  # first layer of a stage: always there
                x = x + y if spec.residual else y
            else:
                x = x + ops.cast(self.arch_active[slot], y.dtype) * y
        x = ops.hard_silu(self.head_bn(self.head_expand(x), training=training))
        x = self.features(ops.mean(x, axis=(1, 2)))
        return self.classifier(self.dropout(x, training=training))

    def build(self, input_shape):
        pass  # every weight is created by the first call, in __init__

    def call(self, inputs, training=None):
        return self.forward(inputs, training=training)

    # -- sampling inside a graph ----------------------------------------------

    def state(self, sub: SubNetwork) -> tuple[np.ndarray, ...]:
        """The four architecture vectors of `sub` (what `assign_state` takes)."""
        return tuple(
            np.asarray(values, "float32")
            for values in (sub.kernel, sub.mid, sub.squeezed, sub.active)
        )

    def random_state(self, seed: keras.random.SeedGenerator) -> tuple[tf.Tensor, ...]:
        """A uniform draw of every choice, as the four vectors, computed in the graph.

        Each slot's kernel and expand ratio and each stage's depth are drawn
        independently and uniformly, as `FlatNASHyperModel.random_hyperparameters`
        draws them.

        Args:
            seed: The generator to draw from.

        Returns:
            (kernel, mid, squeezed, active) float32 vectors.
        """
        slots = len(self.blocks) - 1
        kernels = np.asarray(self.space.kernels, "float32")
        expands = self.space.expands
        mids, squeezes = [], []
        for block in self.blocks[1:]:
            specs = [dataclasses.replace(block.largest, expand=e) for e in expands]
            mids.append([spec.mid_channels for spec in specs])
            squeezes.append(
                [make_divisible(s.mid_channels // 4) if s.squeeze_excite else 0 for s in specs]
            )
        kernel = ops.take(kernels, keras.random.randint((slots,), 0, len(kernels), seed=seed))
        choice = keras.random.randint((slots, 1), 0, len(expands), seed=seed)
        mid = ops.take_along_axis(np.asarray(mids, "float32"), choice, axis=1)[:, 0]
        squeezed = ops.take_along_axis(np.asarray(squeezes, "float32"), choice, axis=1)[:, 0]
        depths = np.asarray(self.space.depths, "float32")
        depth = ops.take(depths, keras.random.randint((len(STAGES),), 0, len(depths), seed=seed))
        layer = np.tile(np.arange(1, self.max_depth + 1, dtype="float32"), len(STAGES))
        active = ops.cast(layer <= ops.repeat(depth, self.max_depth), "float32")
        return kernel, mid, squeezed, active

    def assign_state(self, state: Sequence) -> None:
        """Selects the sub-network given by the four vectors (in a graph or eagerly)."""
        for variable, value in zip(
            (self.arch_kernel, self.arch_mid, self.arch_squeezed, self.arch_active),
            state,
            strict=True,
        ):
            variable.assign(value)

    # -- candidates -----------------------------------------------------------

    def model_at(self, resolution: int | None = None) -> keras.Model:
        """The compiled `SubNetworkModel` at `resolution`, made once and then reused.

        Reusing it is what keeps its traced train, evaluate and predict
        functions across candidates.

        Args:
            resolution: One of the supernet's resolutions (default: the largest).

        Returns:
            The model; its optimizer state is built (see `candidate`).
        """
        resolution = self.largest_resolution if resolution is None else resolution
        models = self.__dict__.setdefault("_models", {})  # a cache, not tracked by Keras
        if resolution not in models:
            model = SubNetworkModel(self, resolution)
            example = (np.zeros((1, *self.space.input_shape), "float32"), np.zeros((1,), "int64"))
            build_training_state(model, example)
            initial = [tf.identity(v.value) for v in model.optimizer.variables]
            model.__dict__["_initial_optimizer_state"] = initial
            models[resolution] = model
        return models[resolution]

    @contextlib.contextmanager
    def candidate(self, hp: kt.HyperParameters) -> Iterator[keras.Model]:
        """Selects the candidate `hp` and lends its model; every weight is restored after.

        Inside the block, train (fine-tune), recalibrate and measure the
        yielded model as any compiled Keras model; `extract(hp)` inside the
        block gives the standalone candidate with those weights. On leaving
        (also on an error) every variable of the supernet (weights, BatchNorm
        statistics, random-generator states) is restored bit for bit. The
        model's optimizer starts from its initial state for every candidate.

        Args:
            hp: Hyperparameters of the space.

        Yields:
            The `SubNetworkModel` at the candidate's resolution.

        Example:
        ```python
        with supernet.candidate(hp) as model:
            model.fit(train_ds, epochs=2)
            recalibrate_batch_norm(model, train_ds)
            accuracy = model.evaluate(val_ds, return_dict=True)["accuracy"]
            standalone = supernet.extract(hp)
        ```
        """
        sub = self.select(hp)
        model = self.model_at(sub.resolution)
        for variable, value in zip(
            model.optimizer.variables, model._initial_optimizer_state, strict=True
        ):
            variable.assign(value)
        saved = [(v, tf.identity(v.value)) for v in self.variables]
        try:
            yield model
        finally:
            for variable, value in saved:
                variable.assign(value)

    # -- extraction -----------------------------------------------------------

    def sub_weights(self, hp: kt.HyperParameters) -> list[np.ndarray]:
        """The weights of the static candidate `hp`, in `self.space.build(hp)`'s order."""
        sub = self.sub_network(hp)
        active = [self.blocks[0]] + [
            block for block, on in zip(self.blocks[1:], sub.active, strict=True) if on
        ]
        weights = [np.asarray(self.stem_kernel), *(np.asarray(v) for v in self.stem_bn.weights)]
        for block, spec in zip(active, sub.architecture.blocks, strict=True):
            weights += block.sub_weights(spec)
        for layer in (self.head_expand, self.head_bn, self.features, self.classifier):
            weights += [np.asarray(v) for v in layer.weights]
        return weights

    def extract(self, hp: kt.HyperParameters) -> keras.Model:
        """The candidate `hp` as a standalone compiled model, with the supernet's weights.

        Args:
            hp: Hyperparameters of the space.

        Returns:
            `self.space.build(hp)` (a compiled `SAMModel`, or a plain model
            without SAM) holding the sliced weights, its optimizer state built
            fresh; its outputs equal the supernet's with `hp` selected.
        """
        model = self.space.build(hp.copy())
        weights = self.sub_weights(hp)
        expected = [tuple(v.shape) for v in model.weights]
        got = [w.shape for w in weights]
        if expected != got:  # the mapping and build_block disagree: a bug, not user input
            raise AssertionError(f"Extracted weight shapes {got} do not fit the model {expected}.")
        model.set_weights(weights)
        # A fresh optimizer state, built, so a saved checkpoint loads without
        # Keras skipping it (the fine-tuning's momentum has the supernet's shapes).
        model.optimizer.build(model.trainable_variables)
        return model


def _order(resolution: int | None) -> int:
    return -1 if resolution is None else resolution


class _AtResolution:
    """Mixin: a model whose call is the supernet's forward at one resolution."""

    def __init__(self, *, supernet: Supernet, resolution: int | None, **kwargs):
        super().__init__(**kwargs)
        self.supernet = supernet
        self.resolution = resolution

    def call(self, inputs, training=None):
        return self.supernet.forward(inputs, training=training, resolution=self.resolution)


class _SAMSubNetwork(_AtResolution, SAMModel):
    pass


class _PlainSubNetwork(_AtResolution, keras.Model):
    pass


def SubNetworkModel(supernet: Supernet, resolution: int | None = None) -> keras.Model:  # noqa: N802
    """The supernet at one resolution as a compiled model that trains its selected candidate.

    Compiled as the space's candidates are (`TrainingSettings.compile`): a
    `SAMModel` with the space's radius, or a plain model when SAM is off. Its
    variables are the supernet's: `fit` fine-tunes the shared weights (save
    and restore them around it), and its traced functions serve every
    candidate that `supernet.select` picks at this resolution.

    Args:
        supernet: The supernet.
        resolution: One of its resolutions (default: the largest).

    Returns:
        A compiled Keras model.

    Example:
    ```python
    model = SubNetworkModel(supernet, resolution=32)
    supernet.select(hp)
    model.fit(train_ds, epochs=2)
    ```
    """
    if resolution is None:
        resolution = supernet.largest_resolution
    if resolution not in supernet.resolutions:
        raise ValueError(
            f"resolution={resolution!r} is not one of this supernet's {supernet.resolutions}."
        )
    settings = supernet.space.training
    name = f"{supernet.name}_at_{resolution or 'input'}"
    if settings.sam:
        model = _SAMSubNetwork(
            supernet=supernet,
            resolution=resolution,
            rho=settings.rho,
            adaptive=settings.adaptive,
            name=name,
        )
    else:
        model = _PlainSubNetwork(supernet=supernet, resolution=resolution, name=name)
    return settings.compile(model)
