"""SupernetTuner: trials that inherit a trained supernet's weights (FlatNAS's own regime).

FlatNAS does not train candidates from random weights: each one is a
sub-network of a Once-For-All supernet that inherits its weights and is
fine-tuned for a few epochs with ASAM. For each trial the NSGA-II oracle
proposes (the same oracle, objectives, constraints and outputs as
`FlatNASTuner`):

    params = count_params(hp)               over budget: recorded, not evaluated
    with supernet.candidate(hp) as model:   the shared weights, lent
        fine-tune `epochs` epochs (0: inherited weights only) with the
            candidate's step (SAM/ASAM or SGD) under the trial regime's
            schedule, the optimizer state fresh for every candidate
        recalibrate BatchNorm statistics on training batches
        measure val_accuracy, val_loss, R, chance_p_value (`FlatNASTuner.measure`)
        extract the static candidate with these weights -> the trial checkpoint
    (on leaving, every supernet variable is restored bit for bit)

The models that train and measure candidates are the supernet seen at each
resolution, made once: after the first candidate of each resolution nothing
is traced again (the flatness evaluators are kept per resolution too). The
checkpoint is the static candidate's, so `load_model`, `get_best_models`, the
CLI's `export`, `evaluate`, `train` and the report read a weight-sharing
search as any other.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner

from flatnas_tf.robustness.flatness import PerturbedEvaluator
from flatnas_tf.space.supernet import Supernet
from flatnas_tf.training.tracing import graph_optimizer
from flatnas_tf.tuners.tuner import FlatNASTuner, split_fit_arguments

__all__ = ["SupernetTuner"]


class SupernetTuner(FlatNASTuner):
    """`FlatNASTuner` whose candidates inherit the weights of a trained `Supernet`.

    The search space is `supernet.space` (the supernet's width; candidates
    are compiled with its `TrainingSettings`). `search(..., epochs=E)`
    fine-tunes each candidate E epochs (0 allowed). Everything else is
    `FlatNASTuner`'s.

    Args:
        supernet: A trained supernet (`train_supernet`, `load_supernet`).
        **kwargs: `FlatNASTuner` arguments but `hypermodel`.

    Example:
    ```python
    supernet, _ = load_supernet("runs/supernet")
    tuner = SupernetTuner(supernet, max_trials=200, population_size=20,
                          directory="runs", project_name="ws")
    tuner.search(train_ds, validation_data=val_ds, epochs=1)
    ```
    """

    def __init__(self, supernet: Supernet, **kwargs):
        if not isinstance(supernet, Supernet):
            raise TypeError(
                f"`supernet` must be a flatnas_tf Supernet; received {type(supernet).__name__}."
            )
        if "hypermodel" in kwargs:
            raise TypeError(
                "SupernetTuner searches the supernet's space; do not pass `hypermodel`."
            )
        super().__init__(supernet.space, **kwargs)
        self.supernet = supernet
        self._evaluators: dict[tuple[int, int], tuple[Any, PerturbedEvaluator]] = {}

    def training_plan(self, epochs: int) -> str:
        """How a trial within the budget is evaluated, in words."""
        return (
            f"the supernet's weights, fine-tuned {epochs} epoch{'s' if epochs != 1 else ''}, "
            f"then R from {self.samples} weight perturbations"
        )

    def train_and_measure(
        self, hp: keras_tuner.HyperParameters, *args, **kwargs
    ) -> tuple[keras.Model, dict[str, float]]:
        """Evaluates the candidate `hp` through the supernet (module docstring).

        Args:
            hp: The candidate's hyperparameters.
            *args: The training data (passed to `fit`).
            **kwargs: `validation_data` (required), `epochs` (fine-tuning
                epochs, 0 allowed) and other `fit` arguments.

        Returns:
            The static candidate with the fine-tuned weights, and its figures.

        Example:
        ```python
        model, figures = tuner.train_and_measure(hp, train_ds, validation_data=val_ds, epochs=1)
        ```
        """
        validation, fit_kwargs = split_fit_arguments(args, kwargs)
        with graph_optimizer(self.regime.uses_grappler()), self.supernet.candidate(hp) as model:
            figures = self.fit_and_measure(hp, model, validation, **fit_kwargs)
            return self.supernet.extract(hp), figures

    def perturbed_evaluator(self, model: keras.Model, validation) -> PerturbedEvaluator:
        """One evaluator per resolution model and validation set, kept: no retracing."""
        key = (id(model), id(validation))
        if key not in self._evaluators:
            # The data is held with the evaluator, so its id stays its own.
            self._evaluators[key] = (validation, PerturbedEvaluator(model, validation))
        return self._evaluators[key][1]
