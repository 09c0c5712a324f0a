"""Flatness as robustness of accuracy to random weight perturbations (FlatNAS's R).

For a trained classifier with weights w and held-out data D:

    acc0, loss0 = accuracy and loss of w on D               (inference mode)
    for m in 1..M:
        r_m   ~ N(0, I), drawn on the device from a stateless RNG keyed by
                (seed, m): one draw for all variables, split in their order
        w_m   = w * (1 + sigma * r_m)    multiplicative (default; a weight of
                                         exactly 0 stays 0)
              | w + sigma * r_m          additive
        acc_m, loss_m = accuracy and loss of w_m on D
    R        = 100 * mean_m |acc0 - acc_m|   (percentage points; lower = flatter)
    loss_gap = mean_m loss_m - loss0         (the "local energy" of Pittorino
                                              et al., ICLR 2021)

Perturbed: every trainable variable (kernels, biases, BatchNorm gamma/beta);
BatchNorm moving statistics and other non-trainable state are left as they are
and evaluation runs in inference mode, as in the FlatNAS code. sigma = 0.05 and
M = 20 are the paper's values.

Per sample: a compiled function perturbs the variables in place (noise drawn
on the device), a compiled per-batch function adds (correct, loss * size, size)
to running totals that stay on the device, and a compiled function restores
the variables from on-device copies; the only values that leave the device are
the three totals per sample. No model cloning, no get_weights/set_weights.
(A single tf.function looping over the dataset in the graph was measured
1.4x slower per pass on CPU than this: the loop body misses the fused kernels
that straight-line graphs get.) Weights are restored bit for bit, also when
evaluation raises or is interrupted. Using the same (seed, m) for every sigma
of a curve gives common random numbers, so R(sigma) is smooth.

Reference: M. Gambella, F. Pittorino, M. Roveri. FlatNAS: optimizing Flatness
in Neural Architecture Search for Out-of-Distribution Robustness. IJCNN 2024.
arXiv:2402.19102.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from flatnas_tf.checks import check_choice, check_integer, check_number, is_number
from flatnas_tf.defaults import SIGMA
from flatnas_tf.figures import LOG_NAMES as LOG_NAMES  # the names `logs()` writes

MODES = ("multiplicative", "additive")


@dataclasses.dataclass(frozen=True)
class RobustnessResult:
    """Weight-perturbation robustness of a model on a data set, at one sigma.

    Accuracies are fractions in [0, 1], as Keras reports them; `R` is in
    percentage points, as FlatNAS reports it.

    Attributes:
        sigma: Noise scale.
        mode: "multiplicative" or "additive".
        samples: Number of perturbations M.
        seed: RNG seed of the perturbations.
        clean_accuracy: Accuracy of the unperturbed model.
        clean_loss: Loss of the unperturbed model (compiled loss, including
            regularisation terms, as `model.evaluate` reports it).
        perturbed_accuracies: Accuracy under each perturbation.
        perturbed_losses: Loss under each perturbation.
    """

    sigma: float
    mode: str
    samples: int
    seed: int
    clean_accuracy: float
    clean_loss: float
    perturbed_accuracies: tuple[float, ...]
    perturbed_losses: tuple[float, ...]

    @property
    def R(self) -> float:  # noqa: N802 - the paper's name
        """Mean absolute accuracy change, in percentage points (lower = flatter)."""
        deltas = np.abs(self.clean_accuracy - np.asarray(self.perturbed_accuracies))
        return float(100.0 * np.mean(deltas))

    @property
    def loss_gap(self) -> float:
        """Mean perturbed loss minus clean loss (lower = flatter)."""
        return float(np.mean(self.perturbed_losses) - self.clean_loss)

    @property
    def perturbed_accuracy_mean(self) -> float:
        """Mean accuracy under perturbation."""
        return float(np.mean(self.perturbed_accuracies))

    @property
    def perturbed_accuracy_std(self) -> float:
        """Standard deviation of the accuracy under perturbation."""
        return float(np.std(self.perturbed_accuracies))

    @property
    def perturbed_loss_mean(self) -> float:
        """Mean loss under perturbation."""
        return float(np.mean(self.perturbed_losses))

    @property
    def perturbed_loss_std(self) -> float:
        """Standard deviation of the loss under perturbation."""
        return float(np.std(self.perturbed_losses))

    def logs(self) -> dict[str, float]:
        """The figures under the stable names of `LOG_NAMES`."""
        return {
            "robustness": self.R,
            "robustness_loss_gap": self.loss_gap,
            "perturbed_accuracy": self.perturbed_accuracy_mean,
            "perturbed_loss": self.perturbed_loss_mean,
        }

    def to_dict(self) -> dict:
        """Every field and derived figure, as plain JSON-ready Python values."""
        summary = dataclasses.asdict(self)
        summary.update(
            R=self.R,
            loss_gap=self.loss_gap,
            perturbed_accuracy_mean=self.perturbed_accuracy_mean,
            perturbed_accuracy_std=self.perturbed_accuracy_std,
            perturbed_loss_mean=self.perturbed_loss_mean,
            perturbed_loss_std=self.perturbed_loss_std,
        )
        return json.loads(json.dumps(summary))


def _accuracy_kind(compile_config: dict | None) -> str | None:
    """Finds the accuracy-like metric a model was compiled with.

    Returns "sparse", "categorical", "binary", "auto" (decided from shapes, as
    Keras' "accuracy") or None when there is none.
    """
    if not compile_config:
        return None
    found = []

    def walk(item):
        if isinstance(item, str):
            found.append(item.lower())
        elif isinstance(item, dict):
            for key in ("class_name", "name", "config"):
                if key in item:
                    walk(item[key])
        elif isinstance(item, (list, tuple)):
            for element in item:
                walk(element)

    walk(compile_config.get("metrics"))
    walk(compile_config.get("weighted_metrics"))
    for name in found:
        if "acc" not in name or "top_k" in name or "topk" in name:
            continue
        for kind in ("sparse", "categorical", "binary"):
            if kind in name:
                return kind
        return "auto"
    return None


def _correct(kind: str, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-example correctness (0/1 floats) for a classifier's predictions."""
    y_pred = tf.cast(y_pred, tf.float32)
    if kind == "auto":
        if y_pred.shape[-1] == 1:
            kind = "binary"
        elif y_true.shape.rank == y_pred.shape.rank and y_true.shape[-1] == y_pred.shape[-1]:
            kind = "categorical"
        else:
            kind = "sparse"
    if kind == "binary":
        return tf.reshape(keras.metrics.binary_accuracy(y_true, y_pred), [-1])
    if kind == "categorical":
        return tf.reshape(keras.metrics.categorical_accuracy(y_true, y_pred), [-1])
    return tf.reshape(keras.metrics.sparse_categorical_accuracy(y_true, y_pred), [-1])


def _check_batches(max_batches: int | None) -> int | None:
    return check_integer(max_batches, "max_batches", 1, optional=True)


def _as_dataset(data, batch_size: int, max_batches: int | None) -> tf.data.Dataset:
    if isinstance(data, tf.data.Dataset):
        dataset = data
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        dataset = tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    else:
        raise TypeError(
            "`data` must be a finite tf.data.Dataset of (x, y) batches or a tuple of "
            f"arrays (x, y); received {type(data).__name__}."
        )
    if _check_batches(max_batches) is not None:
        dataset = dataset.take(max_batches)
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`data` is an infinite dataset; pass a finite one (e.g. `dataset.take(n)`) "
            "or set `max_batches`."
        )
    if cardinality == 0:
        raise ValueError("`data` is empty; pass a dataset with at least one batch.")
    return dataset


def check_sigmas(sigma) -> list[float]:
    """Validates a noise scale or a list of them; returns them as floats."""
    sigmas = list(sigma) if isinstance(sigma, Iterable) else [sigma]
    if not sigmas:
        raise ValueError("`sigma` is an empty list; pass a number >= 0 or a list of them.")
    for value in sigmas:
        if not is_number(value):
            raise TypeError(f"`sigma` must be a number >= 0; received sigma={value!r}.")
    return [check_number(value, "sigma", 0) for value in sigmas]


def check_samples(samples, name: str = "samples") -> int:
    """Validates a count such as a number of perturbations (an integer >= 1)."""
    return check_integer(samples, name, 1)


class PerturbedEvaluator:
    """Compiled evaluation of a model under seeded weight perturbations.

    Builds its compiled functions once, so repeated measurements (a sigma
    curve, a callback at several epochs) do not retrace. Most users want
    `weight_robustness` or `FlatnessCallback`, which use this class.

    Args:
        model: A compiled single-output classifier with an accuracy-like metric.
        data: A finite `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`
            batches, or a tuple of arrays `(x, y)`. It is iterated once per
            sample: it should not shuffle or augment.
        mode: "multiplicative" (`w * (1 + sigma * r)`) or "additive"
            (`w + sigma * r`).
        variables: The variables to perturb; default: `model.trainable_variables`.
        batch_size: Batch size when `data` is arrays.
        max_batches: Use only the first `max_batches` batches of `data`.

    Example:
    ```python
    evaluator = PerturbedEvaluator(model, (x_val, y_val))
    accuracy, loss = evaluator(sigma=0.05, seed=0, sample=3)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        data,
        mode: str = "multiplicative",
        variables: Sequence[keras.Variable] | None = None,
        batch_size: int = 128,
        max_batches: int | None = None,
    ):
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model; received {type(model).__name__}.")
        if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
            raise ValueError(
                f"Model {model.name!r} is not compiled with a loss; call "
                "model.compile(loss=..., metrics=['accuracy']) before measuring robustness."
            )
        self._kind = _accuracy_kind(model.get_compile_config())
        if self._kind is None:
            raise ValueError(
                f"Model {model.name!r} was compiled without an accuracy metric; robustness "
                "is measured on accuracy: compile with metrics=['accuracy']."
            )
        check_choice(mode, "mode", MODES)
        self.model = model
        self.mode = mode
        self.dataset = _as_dataset(data, batch_size, max_batches)
        self.variables = list(model.trainable_variables if variables is None else variables)
        if not self.variables:
            raise ValueError(f"Model {model.name!r} has no trainable variables to perturb.")
        self._perturb = tf.function(self._perturb_variables)
        self._restore = tf.function(self._restore_variables)
        # One trace for every batch size (the last batch is usually smaller).
        self._evaluate_batch = tf.function(
            self._batch_totals,
            input_signature=[self.dataset.element_spec, tf.TensorSpec([3], tf.float64)],
        )

    def _perturb_variables(self, seed: tf.Tensor, sigma: tf.Tensor) -> None:
        # One draw for all variables, split into pieces: a graph of one RNG op
        # traces in a fraction of a second, one op per variable took seconds.
        sizes = [int(np.prod(v.shape)) for v in self.variables]
        draws = tf.split(
            tf.random.stateless_normal([sum(sizes)], seed=seed, dtype=tf.float32, alg="philox"),
            sizes,
        )
        for variable, draw in zip(self.variables, draws, strict=True):
            noise = tf.cast(tf.reshape(draw, variable.shape), variable.dtype)
            scale = tf.cast(sigma, variable.dtype)
            if self.mode == "multiplicative":
                variable.assign(variable.value * (1 + scale * noise))
            else:
                variable.assign_add(scale * noise)

    def _restore_variables(self, values: list[tf.Tensor]) -> None:
        for variable, value in zip(self.variables, values, strict=True):
            variable.assign(value)

    def _batch_totals(self, batch, totals: tf.Tensor) -> tf.Tensor:
        """Adds one batch's (correct, loss * size, size) to the running totals."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = self.model(x, training=False)
        loss = self.model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        hits = tf.cast(_correct(self._kind, y, y_pred), tf.float64)
        size = tf.cast(tf.size(hits), tf.float64)
        return totals + tf.stack([tf.reduce_sum(hits), tf.cast(loss, tf.float64) * size, size])

    def _totals(
        self, sigma: float, seed: int, sample: int, max_batches: int | None
    ) -> tuple[float, float, float]:
        """(correct, loss * examples, examples) under one perturbation; weights restored."""
        originals = [tf.identity(v.value) for v in self.variables]
        metric_state = [tf.identity(v.value) for v in self.model.metrics_variables]
        dataset = self.dataset if max_batches is None else self.dataset.take(max_batches)
        try:
            self._perturb(tf.constant([seed, sample], tf.int64), tf.constant(sigma, tf.float32))
            totals = tf.zeros(3, tf.float64)
            for batch in dataset:  # the totals stay on the device until the end
                totals = self._evaluate_batch(batch, totals)
            correct, loss_sum, count = (float(t) for t in totals.numpy())
        finally:
            self._restore(originals)
            for variable, value in zip(self.model.metrics_variables, metric_state, strict=True):
                variable.assign(value)  # compute_loss may have updated loss trackers
        return correct, loss_sum, count

    def __call__(
        self, sigma: float, seed: int, sample: int, max_batches: int | None = None
    ) -> tuple[float, float]:
        """Accuracy and loss with the perturbation of (seed, sample) at `sigma`.

        The weights are restored afterwards, bit for bit, even if evaluation
        raises. Any sample with sigma 0 is the clean model.

        Args:
            sigma: Noise scale, >= 0.
            seed: Seed of the perturbation stream.
            sample: Index of the perturbation within the stream.
            max_batches: Evaluate on the first `max_batches` batches only.

        Returns:
            (accuracy in [0, 1], mean loss).
        """
        correct, loss_sum, count = self._totals(sigma, seed, sample, _check_batches(max_batches))
        return correct / count, loss_sum / count

    def clean(self) -> tuple[float, float, int]:
        """Accuracy, mean loss and number of examples of the unperturbed model on all the data.

        Example:
        ```python
        accuracy, loss, examples = PerturbedEvaluator(model, val_ds).clean()
        ```
        """
        correct, loss_sum, count = self._totals(0.0, 0, 0, None)
        return correct / count, loss_sum / count, int(count)

    def robustness(
        self, sigma: float, samples: int = 20, seed: int = 0, max_batches: int | None = None
    ) -> RobustnessResult:
        """Measures R and the loss gap at one sigma. See `weight_robustness`."""
        return self.curve([sigma], samples=samples, seed=seed, max_batches=max_batches)[0]

    def curve(
        self,
        sigmas: Sequence[float],
        samples: int = 20,
        seed: int = 0,
        max_batches: int | None = None,
    ) -> list[RobustnessResult]:
        """Measures R at each sigma, with the same noise directions for all.

        `max_batches` limits every pass (clean and perturbed) to the first
        batches of the data.
        """
        sigmas = check_sigmas(sigmas)
        samples = check_samples(samples)
        clean_accuracy, clean_loss = self(0.0, seed, 0, max_batches)
        results = []
        for sigma in sigmas:
            runs = [self(sigma, seed, m, max_batches) for m in range(1, samples + 1)]
            results.append(
                RobustnessResult(
                    sigma=sigma,
                    mode=self.mode,
                    samples=samples,
                    seed=seed,
                    clean_accuracy=clean_accuracy,
                    clean_loss=clean_loss,
                    perturbed_accuracies=tuple(a for a, _ in runs),
                    perturbed_losses=tuple(loss for _, loss in runs),
                )
            )
        return results


def weight_robustness(
    model: keras.Model,
    data,
    sigma: float | Sequence[float] = SIGMA,
    samples: int = 20,
    seed: int = 0,
    mode: str = "multiplicative",
    variables: Sequence[keras.Variable] | None = None,
    batch_size: int = 128,
    max_batches: int | None = None,
) -> RobustnessResult | list[RobustnessResult]:
    """Robustness of a classifier's accuracy to random weight perturbations.

    FlatNAS's flatness figure R: the mean absolute change of accuracy, in
    percentage points, over `samples` Gaussian perturbations of the weights
    (see the module docstring). Lower R means a flatter minimum.

    Args:
        model: A compiled single-output classifier with an accuracy metric
            (`metrics=["accuracy"]` or a sparse/categorical/binary accuracy).
        data: A finite `tf.data.Dataset` of `(x, y)` batches (no shuffling or
            augmentation: it is read once per sample) or a tuple `(x, y)` of
            arrays. A held-out validation split is the sound choice.
        sigma: Noise scale, or a list of them for a curve.
        samples: Number of perturbations M (>= 1).
        seed: Seed; the same seed gives the same perturbations, on any device.
        mode: "multiplicative" (default, `w * (1 + sigma * r)`) or "additive".
        variables: Variables to perturb; default all trainable variables.
        batch_size: Batch size when `data` is arrays.
        max_batches: Use only the first `max_batches` batches.

    Returns:
        A `RobustnessResult` for a number `sigma`, a list of them (one per
        sigma, same noise directions) for a list.

    Example:
    ```python
    result = weight_robustness(model, (x_val, y_val), sigma=0.05, samples=20)
    print(result.R, result.loss_gap, result.clean_accuracy)
    ```
    """
    sigmas = check_sigmas(sigma)
    samples = check_samples(samples)
    evaluator = PerturbedEvaluator(model, data, mode, variables, batch_size, max_batches)
    results = evaluator.curve(sigmas, samples=samples, seed=seed)
    return results if isinstance(sigma, Iterable) else results[0]


class FlatnessCallback(keras.callbacks.Callback):
    """Measures weight-perturbation robustness at epoch ends and logs it.

    Writes into `logs` (so History, TensorBoard and KerasTuner see them):

    | name                  | meaning                                      | better |
    |-----------------------|----------------------------------------------|--------|
    | `robustness`          | R, mean abs. accuracy change, in % points    | lower  |
    | `robustness_loss_gap` | mean perturbed loss - clean loss             | lower  |
    | `perturbed_accuracy`  | mean accuracy under perturbation (fraction)  | higher |
    | `perturbed_loss`      | mean loss under perturbation                 | lower  |

    Args:
        data: Held-out data, as for `weight_robustness`.
        sigma: Noise scale (>= 0).
        samples: Perturbations per measurement (>= 1).
        every: Measure every `every` epochs and at the last epoch; None (the
            default) measures at the last epoch only.
        seed: Perturbation seed; the same at every measured epoch.
        mode: "multiplicative" or "additive".
        max_batches: Use only the first `max_batches` batches of `data`.
        batch_size: Batch size when `data` is arrays.

    Example:
    ```python
    model.fit(x, y, epochs=6, callbacks=[FlatnessCallback((x_val, y_val))])
    model.history.history["robustness"]
    ```
    """

    def __init__(
        self,
        data,
        sigma: float = SIGMA,
        samples: int = 20,
        every: int | None = None,
        seed: int = 0,
        mode: str = "multiplicative",
        max_batches: int | None = None,
        batch_size: int = 128,
    ):
        super().__init__()
        (self.sigma,) = check_sigmas([sigma])
        self.samples = check_samples(samples)
        every = check_integer(every, "every", 1, optional=True)
        check_choice(mode, "mode", MODES)
        self.every = every
        self.seed = seed
        self.mode = mode
        self._data = data
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._evaluator: PerturbedEvaluator | None = None
        self.last_result: RobustnessResult | None = None

    def _due(self, epoch: int) -> bool:
        last = epoch + 1 == self.params.get("epochs")
        return last or (self.every is not None and (epoch + 1) % self.every == 0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self._due(epoch):
            return
        if self._evaluator is None or self._evaluator.model is not self.model:
            self._evaluator = PerturbedEvaluator(
                self.model, self._data, self.mode, None, self._batch_size, self._max_batches
            )
        self.last_result = self._evaluator.robustness(self.sigma, self.samples, self.seed)
        if logs is not None:
            logs.update(self.last_result.logs())
