"""The FlatNAS search space: a MobileNetV3 / Once-For-All space, made to be subclassed.

A candidate network, for an input of H x W x C pixels in [0, 255]:

    Rescaling(1/255) -> Resizing(r, r) if the resolution r differs from H
    stem: 3x3 conv, 16w channels, BatchNorm, hard-swish
    first block: MBConv, expand 1, 3x3, 16w channels, ReLU
    5 stages (channels 24, 40, 80, 112, 160 times w; ReLU, ReLU, h-swish x 3;
              squeeze-and-excitation in stages 2, 4 and 5, as MobileNetV3):
        depth d in {2, 3, 4}; for each of the d layers: MBConv with
        depthwise kernel k in {3, 5, 7} and expand ratio e in {3, 4, 6}
    head: 1x1 conv to 6 x 160w channels, BatchNorm, h-swish, global average
          pool, dense 1280w with h-swish, dropout, dense num_classes (logits)

MBConv(in, out, k, e, stride): 1x1 expand to e*in (BN, act) -> k x k depthwise
(BN, act) -> [SE: pool, 1x1 to e*in/4 ReLU, 1x1 back, hard sigmoid, scale] ->
1x1 project (BN) -> + input when stride 1 and in == out. Channels are rounded
to multiples of 8.

Hyperparameters: `width_mult` (w), `resolution` (only when the images are
square and at least 16 pixels: default choices H-8, H-4, H), `stage{i}_depth`
and, per layer j, `stage{i}_layer{j}_kernel` / `stage{i}_layer{j}_expand`.
Layers 3 and 4 of a stage sit in KerasTuner conditional scopes on the stage's
depth, so a stage of depth 2 has no active layer-3/4 choices.

Strides adapt to the resolution r so that every input size builds: the
network halves the resolution n = clamp(floor(log2 r) - 2, 0, 5) times, at
stages 1, 2, 3, 5 and then the stem, in that order (224 -> 7 as MobileNetV3;
32 -> 4; 8 -> 4). Departures from OFA for small inputs: these strides, the
resolution choices, and head widths that scale with w.

The built model is a compiled `SAMModel` (by default ASAM rho 0.5 over SGD lr
0.1, momentum 0.9, weight decay 5e-4, label smoothing 0.1; see `TrainingSettings`,
which a search derives from its `TrainingConfig`), or a plain `keras.Model`
when SAM is off. These are the FlatNAS settings but
for rho: FlatNAS fine-tunes pretrained weights with rho 2.0, which from random
weights holds a short training back (two default digits candidates, 6 epochs
under the cosine schedule: 82-83 % validation accuracy at 2.0, 94-97 % at
0.5); 0.5 is ASAM's radius for CIFAR-10.

`count_params(hp)` counts the parameters of a candidate from its block list
without building anything, so an over-budget candidate can be rejected before
training; it equals `model.count_params()` (BatchNorm moving statistics
included). Subclasses replace `build_backbone`, `build_block` or `build_head`
and keep compilation, SAM and parameter counting (by building the model when
the default layers are replaced).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Sequence

import keras
import keras_tuner as kt

from flatnas_tf.checks import check_integer, check_number, is_number
from flatnas_tf.defaults import (
    DEPTHS,
    LABEL_SMOOTHING,
    LEARNING_RATE,
    MAX_DEPTH,
    MAX_WIDTH,
    MOMENTUM,
    RHO,
    WEIGHT_DECAY,
)
from flatnas_tf.space.resizing import Resizing
from flatnas_tf.training.batchnorm import FusedBatchNormalization
from flatnas_tf.training.config import RANGES
from flatnas_tf.training.losses import SparseCrossentropyWithSmoothing
from flatnas_tf.training.optimizers import FusedSGD
from flatnas_tf.training.sam import SAMModel

#: (channels, stride-2 priority or None, activation, squeeze-excite) per stage.
STAGES = (
    (24, 0, "relu", False),
    (40, 1, "relu", True),
    (80, 2, "hard_swish", False),
    (112, None, "hard_swish", True),
    (160, 3, "hard_swish", True),
)
STEM_CHANNELS = 16
HEAD_EXPAND = 6
FEATURE_CHANNELS = 1280


def batch_norm(**kwargs) -> keras.layers.BatchNormalization:
    """BatchNorm with PyTorch's statistics momentum (0.1 there, 0.9 in Keras terms).

    Candidates train for a few epochs only: with Keras' default 0.99 the moving
    statistics would still be mostly their initial values at the end of
    training (the reference code is PyTorch, whose default this is). The
    layer is `FusedBatchNormalization`: Keras' function with TensorFlow's
    fused training kernel, which halves the BatchNorm part of a training
    step's graph.
    """
    return FusedBatchNormalization(momentum=0.9, **kwargs)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds channels to a multiple of `divisor`, never below 90 % of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One MBConv block of a candidate network.

    Attributes:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel: Depthwise kernel size.
        expand: Expansion ratio of the inverted residual.
        stride: Depthwise stride (1 or 2).
        activation: "relu" or "hard_swish".
        squeeze_excite: Whether the block has squeeze-and-excitation.
    """

    in_channels: int
    out_channels: int
    kernel: int
    expand: int
    stride: int
    activation: str
    squeeze_excite: bool

    @property
    def mid_channels(self) -> int:
        """Channels after expansion."""
        return make_divisible(self.in_channels * self.expand)

    @property
    def residual(self) -> bool:
        """Whether the block adds its input to its output."""
        return self.stride == 1 and self.in_channels == self.out_channels

    def count_params(self) -> int:
        """Parameters of the block (BatchNorm counts 4 per channel)."""
        mid = self.mid_channels
        count = 0
        if self.expand != 1:
            count += self.in_channels * mid + 4 * mid
        count += self.kernel * self.kernel * mid + 4 * mid
        if self.squeeze_excite:
            squeezed = make_divisible(mid // 4)
            count += mid * squeezed + squeezed + squeezed * mid + mid
        count += mid * self.out_channels + 4 * self.out_channels
        return count


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A candidate network as plain numbers: what `build` builds and `count_params` counts.

    Attributes:
        resolution: Square input resolution, or None to keep the input size.
        stem_channels: Stem output channels.
        stem_stride: Stem stride.
        blocks: MBConv blocks, first block included.
        head_channels: Channels of the final 1x1 expansion.
        feature_channels: Width of the dense feature layer.
    """

    resolution: int | None
    stem_channels: int
    stem_stride: int
    blocks: tuple[BlockSpec, ...]
    head_channels: int
    feature_channels: int


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How candidates are compiled: FlatNAS's settings for training from scratch.

    All overridable. A search derives it from its `TrainingConfig`
    (`TrainingConfig.compile_settings`), whose defaults are these; the
    learning rate over a training (warm-up, cosine decay) is the training
    regime's (`flatnas_tf.training.regime.TrainingRegime`).

    Attributes:
        learning_rate: SGD learning rate (the peak of the regime's schedule).
        momentum: SGD momentum.
        weight_decay: Decoupled weight decay of the SGD optimizer.
        label_smoothing: Label smoothing of the cross-entropy.
        sam: Train with SAM (False: plain SGD, the accuracy-only baseline).
        rho: SAM/ASAM radius (0.5; FlatNAS fine-tunes with 2.0, see the module
            docstring).
        adaptive: ASAM (True) or SAM (False).
        jit_compile: Passed to `compile`.
    """

    learning_rate: float = LEARNING_RATE
    momentum: float = MOMENTUM
    weight_decay: float = WEIGHT_DECAY
    label_smoothing: float = LABEL_SMOOTHING
    sam: bool = True
    rho: float = RHO
    adaptive: bool = True
    jit_compile: bool | str = "auto"

    def compile(self, model: keras.Model) -> keras.Model:
        """Compiles `model` with these settings' optimizer, loss and accuracy metric.

        Args:
            model: A Keras model (a `SAMModel` when `sam` is True; its radius
                is the model's own).

        Returns:
            `model`, compiled.
        """
        model.compile(
            optimizer=FusedSGD(
                self.learning_rate,
                momentum=self.momentum,
                weight_decay=self.weight_decay or None,
            ),
            loss=SparseCrossentropyWithSmoothing(self.label_smoothing),
            metrics=["accuracy"],
            jit_compile=self.jit_compile,
        )
        return model

    def __post_init__(self):
        for name in ("learning_rate", "momentum", "weight_decay", "label_smoothing", "rho"):
            check_number(getattr(self, name), name, **RANGES[name])


def _choices(name: str, values: Sequence) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"`{name}` must list at least one choice; received an empty list.")
    return values


class FlatNASHyperModel(kt.HyperModel):
    """The FlatNAS search space (MobileNetV3 / OFA style) for KerasTuner.

    See the module docstring for the space. Subclass it and override
    `build_backbone(hp, x)` (the whole feature extractor), `build_block(x, spec)`
    (one MBConv block) or `build_head(hp, x)` (features to logits).

    Args:
        input_shape: Image shape (H, W, C), pixels in [0, 255].
        num_classes: Number of classes (size of the classifier).
        training: Compilation settings; default `TrainingSettings()` (FlatNAS).
        width_multipliers: Choices of the width multiplier w.
        resolutions: Choices of the square input resolution; None picks
            (H-8, H-4, H) for square images of at least 16 pixels, and no
            choice otherwise.
        depths: Choices of stage depth (values in 1..MAX_DEPTH, 4).
        kernels: Choices of depthwise kernel size.
        expands: Choices of expansion ratio.
        dropout: Dropout before the classifier.
        name: Hypermodel name.

    Example:
    ```python
    hypermodel = FlatNASHyperModel((32, 32, 3), num_classes=10)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)            # default choices
    hypermodel.count_params(hp)             # == model.count_params()
    ```
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        training: TrainingSettings | None = None,
        width_multipliers: Sequence[float] = (0.5, 0.75, 1.0),
        resolutions: Sequence[int] | None = None,
        depths: Sequence[int] = DEPTHS,
        kernels: Sequence[int] = (3, 5, 7),
        expands: Sequence[int] = (3, 4, 6),
        dropout: float = 0.1,
        name: str | None = None,
    ):
        super().__init__(name=name)
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(
                f"`input_shape` must be (height, width, channels); received {input_shape!r}."
            )
        num_classes = check_integer(num_classes, "num_classes", 2)
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.training = training or TrainingSettings()
        self.width_multipliers = _choices("width_multipliers", width_multipliers)
        if not all(is_number(w) and 0 < w <= MAX_WIDTH for w in self.width_multipliers):
            raise ValueError(
                f"`width_multipliers` must be numbers in (0, {MAX_WIDTH:g}]; received "
                f"{self.width_multipliers!r}."
            )
        self.depths = _choices("depths", depths)
        if not set(self.depths) <= set(range(1, MAX_DEPTH + 1)):
            raise ValueError(
                f"`depths` must be values in 1..{MAX_DEPTH}; received {self.depths!r}."
            )
        self.kernels = _choices("kernels", kernels)
        self.expands = _choices("expands", expands)
        self.dropout = float(dropout)
        height, width = input_shape[:2]
        if resolutions is None:
            square = height == width and height >= 16
            resolutions = (height - 8, height - 4, height) if square else ()
        elif height != width:
            raise ValueError(
                f"`resolutions` needs square images; the input shape is {input_shape!r}."
            )
        self.resolutions = tuple(check_integer(r, "resolutions", 1) for r in resolutions)

    # -- the space ------------------------------------------------------------

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        """Registers every hyperparameter of the space (conditional ones included).

        With the default backbone the space is known without building; a
        subclass with its own backbone is discovered by KerasTuner's builds.
        """
        if type(self).build_backbone is FlatNASHyperModel.build_backbone:
            self.architecture(hp)

    @property
    def declares_whole_space(self) -> bool:
        """Whether `declare_hyperparameters` registers everything `build` reads.

        True unless a subclass replaces `build`, `build_backbone` or
        `build_head`, whose hyperparameters only building discovers. When
        True, `FlatNASTuner` skips KerasTuner's discovery builds (one build
        per conditional scope: 37 builds, about 34 s on 2 CPU cores, for the
        default space at every start of a search, resume or worker).
        """
        cls = type(self)
        return all(
            getattr(cls, method) is getattr(FlatNASHyperModel, method)
            for method in ("build", "build_backbone", "build_head")
        )

    def architecture(self, hp: kt.HyperParameters) -> Architecture:
        """Reads (and registers) the hyperparameters and returns the candidate's layout.

        Args:
            hp: KerasTuner hyperparameters.

        Returns:
            The `Architecture`: plain numbers that `build` and `count_params` use.
        """
        width = hp.Choice("width_mult", list(self.width_multipliers))
        resolution = None
        if self.resolutions:
            resolution = hp.Choice("resolution", list(self.resolutions))
        size = resolution or min(self.input_shape[:2])
        halvings = min(5, max(0, int(math.floor(math.log2(size))) - 2))

        channels = make_divisible(STEM_CHANNELS * width)
        blocks = [BlockSpec(channels, channels, 3, 1, 1, "relu", False)]
        max_depth = max(self.depths)
        for stage, (base, priority, activation, squeeze) in enumerate(STAGES, start=1):
            depth = hp.Choice(f"stage{stage}_depth", list(self.depths))
            out_channels = make_divisible(base * width)
            for layer in range(1, max_depth + 1):
                needed = [d for d in self.depths if d >= layer]
                with hp.conditional_scope(f"stage{stage}_depth", needed):
                    kernel = hp.Choice(f"stage{stage}_layer{layer}_kernel", list(self.kernels))
                    expand = hp.Choice(f"stage{stage}_layer{layer}_expand", list(self.expands))
                if layer > depth:
                    continue
                first = layer == 1
                stride = 2 if first and priority is not None and priority < halvings else 1
                blocks.append(
                    BlockSpec(channels, out_channels, kernel, expand, stride, activation, squeeze)
                )
                channels = out_channels
        return Architecture(
            resolution=resolution,
            stem_channels=make_divisible(STEM_CHANNELS * width),
            stem_stride=2 if halvings >= 5 else 1,
            blocks=tuple(blocks),
            head_channels=make_divisible(HEAD_EXPAND * channels),
            feature_channels=make_divisible(FEATURE_CHANNELS * width),
        )

    def random_hyperparameters(self, seed: int) -> kt.HyperParameters:
        """A seeded uniform draw from the space (conditional layers drawn only when active).

        Args:
            seed: Seed of the draw; the same seed gives the same candidate.

        Returns:
            HyperParameters with a value for every active hyperparameter.

        Example:
        ```python
        hp = hypermodel.random_hyperparameters(seed=3)
        model = hypermodel.build(hp)
        ```
        """
        if type(self).build_backbone is not FlatNASHyperModel.build_backbone:
            raise NotImplementedError(
                f"{type(self).__name__} replaces build_backbone, so its space is only known "
                "by building; draw candidates with a KerasTuner oracle instead."
            )
        rng = random.Random(seed)
        hp = kt.HyperParameters()
        self.declare_hyperparameters(hp)
        for parameter in hp.space:  # parents precede children, so activity is known
            if hp.is_active(parameter):
                hp.values[parameter.name] = parameter.random_sample(rng.randrange(2**31))
        return hp

    # -- building -------------------------------------------------------------

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """Builds and compiles the candidate that `hp` describes.

        Args:
            hp: KerasTuner hyperparameters.

        Returns:
            A compiled `SAMModel` (a plain `keras.Model` when SAM is off).
        """
        inputs = keras.Input(self.input_shape, name="pixels")
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
        features = self.build_backbone(hp, x)
        logits = self.build_head(hp, features)
        settings = self.training
        if settings.sam:
            model = SAMModel(
                inputs, logits, rho=settings.rho, adaptive=settings.adaptive, name="candidate"
            )
        else:
            model = keras.Model(inputs, logits, name="candidate")
        settings.compile(model)
        return model

    def build_backbone(self, hp: kt.HyperParameters, x: keras.KerasTensor) -> keras.KerasTensor:
        """Resizing, stem and MBConv blocks: pixels scaled to [0, 1] to feature maps.

        Args:
            hp: KerasTuner hyperparameters.
            x: Input images, scaled to [0, 1].

        Returns:
            The last feature map.
        """
        arch = self.architecture(hp)
        if arch.resolution is not None and arch.resolution != self.input_shape[0]:
            x = Resizing(arch.resolution, arch.resolution, name="resize")(x)
        x = keras.layers.Conv2D(
            arch.stem_channels, 3, arch.stem_stride, padding="same", use_bias=False, name="stem"
        )(x)
        x = batch_norm(name="stem_bn")(x)
        x = keras.layers.Activation("hard_swish", name="stem_act")(x)
        for spec in arch.blocks:
            x = self.build_block(x, spec)
        return x

    def build_block(self, x: keras.KerasTensor, spec: BlockSpec) -> keras.KerasTensor:
        """One MBConv block (inverted residual, optional squeeze-and-excitation).

        Args:
            x: Input feature map with `spec.in_channels` channels.
            spec: The block's layout.

        Returns:
            The block's output feature map.
        """
        shortcut = x
        mid = spec.mid_channels
        if spec.expand != 1:
            x = keras.layers.Conv2D(mid, 1, use_bias=False)(x)
            x = batch_norm()(x)
            x = keras.layers.Activation(spec.activation)(x)
        x = keras.layers.DepthwiseConv2D(spec.kernel, spec.stride, padding="same", use_bias=False)(
            x
        )
        x = batch_norm()(x)
        x = keras.layers.Activation(spec.activation)(x)
        if spec.squeeze_excite:
            scale = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
            scale = keras.layers.Conv2D(make_divisible(mid // 4), 1, activation="relu")(scale)
            scale = keras.layers.Conv2D(mid, 1, activation="hard_sigmoid")(scale)
            x = keras.layers.Multiply()([x, scale])
        x = keras.layers.Conv2D(spec.out_channels, 1, use_bias=False)(x)
        x = batch_norm()(x)
        if spec.residual:
            x = keras.layers.Add()([shortcut, x])
        return x

    def build_head(self, hp: kt.HyperParameters, x: keras.KerasTensor) -> keras.KerasTensor:
        """Final expansion, pooling, feature layer and classifier: features to logits.

        Args:
            hp: KerasTuner hyperparameters.
            x: The backbone's last feature map.

        Returns:
            Logits, shape (batch, num_classes).
        """
        width = hp.Choice("width_mult", list(self.width_multipliers))
        head_channels = make_divisible(HEAD_EXPAND * x.shape[-1])
        x = keras.layers.Conv2D(head_channels, 1, use_bias=False, name="head_expand")(x)
        x = batch_norm(name="head_bn")(x)
        x = keras.layers.Activation("hard_swish", name="head_act")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = keras.layers.Dense(
            make_divisible(FEATURE_CHANNELS * width),
            use_bias=False,
            activation="hard_swish",
            name="features",
        )(x)
        x = keras.layers.Dropout(self.dropout, name="dropout")(x)
        return keras.layers.Dense(self.num_classes, name="logits")(x)

    # -- parameter counting ---------------------------------------------------

    def _uses_default_layers(self) -> bool:
        cls = type(self)
        return all(
            getattr(cls, method) is getattr(FlatNASHyperModel, method)
            for method in ("build_backbone", "build_block", "build_head")
        )

    def count_params(self, hp: kt.HyperParameters) -> int:
        """Parameter count of the candidate `hp` describes, without training.

        For the default layers the count comes from the block list (no model is
        built); a subclass that replaces layers gets the count of a freshly
        built, untrained model. Either way it equals `model.count_params()`.

        Args:
            hp: KerasTuner hyperparameters.

        Returns:
            The number of parameters, BatchNorm moving statistics included.
        """
        if not self._uses_default_layers():
            return int(self.build(hp.copy()).count_params())
        # deepcopy, not KerasTuner's serialising `copy` (3x slower): a surrogate
        # refit counts every candidate its inner search predicts (~800).
        arch = self.architecture(copy.deepcopy(hp))
        in_channels = self.input_shape[2]
        count = 3 * 3 * in_channels * arch.stem_channels + 4 * arch.stem_channels
        count += sum(block.count_params() for block in arch.blocks)
        last = arch.blocks[-1].out_channels
        count += last * arch.head_channels + 4 * arch.head_channels
        count += arch.head_channels * arch.feature_channels
        count += arch.feature_channels * self.num_classes + self.num_classes
        return count


class ResNetHyperModel(FlatNASHyperModel):
    """A small plain ResNet space: the example of replacing the backbone.

    Three stages of basic residual blocks (two 3x3 convolutions), with
    hyperparameters `base_filters` in {16, 32}, `blocks_per_stage` in {1, 2}
    and `kernel` in {3, 5}. Head, compilation, SAM and parameter counting come
    from `FlatNASHyperModel`; the MobileNetV3 head's widths follow
    `width_mult`.

    Example:
    ```python
    tuner = FlatNASTuner(ResNetHyperModel((32, 32, 3), num_classes=10), ...)
    ```
    """

    def build_backbone(self, hp: kt.HyperParameters, x: keras.KerasTensor) -> keras.KerasTensor:
        filters = hp.Choice("base_filters", [16, 32])
        repeats = hp.Choice("blocks_per_stage", [1, 2])
        kernel = hp.Choice("kernel", [3, 5])
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        for stage in range(3):
            for repeat in range(repeats):
                stride = 2 if stage > 0 and repeat == 0 and x.shape[1] >= 4 else 1
                shortcut = x
                y = batch_norm()(x)
                y = keras.layers.ReLU()(y)
                y = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(y)
                y = batch_norm()(y)
                y = keras.layers.ReLU()(y)
                y = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False)(y)
                if stride != 1 or shortcut.shape[-1] != filters:
                    shortcut = keras.layers.Conv2D(filters, 1, stride, use_bias=False)(shortcut)
                x = keras.layers.Add()([shortcut, y])
            filters *= 2
        return x
