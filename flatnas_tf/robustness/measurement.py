"""A trained candidate measured as a search trial records it: the project's one measurer.

Training is `TrainingRegime.train` (the schedule, the NaN guard, BatchNorm
recalibration); what a trial then records is measured here, once, in
inference mode, on the validation data:

    evaluator     `PerturbedEvaluator(model, validation)`, or one the caller
                  keeps (a supernet's resolution models are not retraced)
    R             `evaluator.robustness(sigma, M, seed)`: one clean pass and
                  M passes with every trainable weight w set to
                  w * (1 + sigma * r), r ~ N(0, 1) drawn statelessly from
                  (seed, sample)                                (`flatness.py`)
    accuracy      the clean pass's accuracy and mean loss; when R uses only
                  the first `max_batches` batches, a clean pass over all of
                  the validation data
    chance test   the binomial p-value of that accuracy against always
                  answering the validation data's majority class (`chance.py`)

The figures carry the names of `flatnas_tf.figures`. Corruption accuracy is
`flatnas_tf.evaluate_ood`'s, measured on the test split, not here.
"""

from __future__ import annotations

import numpy as np

from flatnas_tf.defaults import SIGMA
from flatnas_tf.figures import CHANCE_METRIC
from flatnas_tf.robustness.chance import chance_p_value, label_counts
from flatnas_tf.robustness.flatness import PerturbedEvaluator

__all__ = ["measure_candidate"]


def measure_candidate(
    model,
    validation,
    *,
    sigma: float = SIGMA,
    samples: int = 10,
    seed: int = 0,
    max_batches: int | None = None,
    evaluator: PerturbedEvaluator | None = None,
    counts: np.ndarray | None = None,
) -> dict[str, float]:
    """The validation figures of a trained model, as a search trial records them.

    Args:
        model: A trained, compiled classifier (BatchNorm statistics already
            recalibrated: `TrainingRegime.train` does it).
        validation: The validation data (a dataset of `(x, y)` batches or a
            tuple of arrays); it must not shuffle.
        sigma: Relative size of the weight perturbations.
        samples: M, perturbations averaged over.
        seed: Seed of the perturbations.
        max_batches: Measure R on the first batches only (None: all).
        evaluator: A `PerturbedEvaluator` of `model` on `validation` to reuse
            (None: a new one).
        counts: Class counts of `validation`'s labels, if already known.

    Returns:
        val_accuracy, val_loss, the flatness figures (robustness,
        robustness_loss_gap, perturbed_accuracy, perturbed_loss) and
        chance_p_value.

    Example:
    ```python
    regime.fit(model, train_ds, epochs=10)
    figures = measure_candidate(model, val_ds, sigma=0.05, samples=10)
    figures["val_accuracy"], figures["robustness"]
    ```
    """
    evaluator = evaluator or PerturbedEvaluator(model, validation)
    result = evaluator.robustness(sigma, samples, seed, max_batches=max_batches)
    if max_batches is None:
        accuracy, loss = result.clean_accuracy, result.clean_loss
    else:
        accuracy, loss, _ = evaluator.clean()
    counts = label_counts(validation) if counts is None else counts
    p_value = chance_p_value(accuracy, int(counts.sum()), float(counts.max() / counts.sum()))
    return {"val_accuracy": accuracy, "val_loss": loss, **result.logs(), CHANCE_METRIC: p_value}
