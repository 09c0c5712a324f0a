"""FlatNASTuner: one trial = count parameters, train with SAM, measure flatness.

For each trial the NSGA-II oracle proposes:

    params = hypermodel.count_params(hp)              (no training)
    if params > max_params: report {params} only      (infeasible, never trained)
    else:
        model = hypermodel.build(hp)                  (a compiled SAMModel)
        fit(epochs) with FlatnessCallback on the validation data (last epoch)
        report the last epoch's figures: val_accuracy, val_loss, accuracy, loss,
            robustness (R, % points), robustness_loss_gap, perturbed_accuracy,
            perturbed_loss, params, train_time_s
        save the weights R was measured on (trial_<id>/checkpoint.weights.h5)

Every raw figure is recorded whatever the mode, so a finished search can be
re-ranked under another alpha without retraining. The objectives the oracle
ranks on (`FlatNASOracle.objective_values`, recomputed at every ranking):

    mode "flatnas" (the paper):
        err        = 100 - 100 * val_accuracy            (top-1 error, %)
        alpha_norm = mean(err) / mean(R) over completed trials
                     (1 while the first generation is incomplete, or if mean R = 0)
        objective 1 = alpha * err + alpha_norm * (1 - alpha) * R     (min)
        objective 2 = params                                          (min)
        alpha = 1 is accuracy-only search.
    mode "pareto": val_accuracy (max), robustness (min), params (min).
    Both: constraint params <= max_params.

A diverged trial (non-finite loss) is marked FAILED and the search goes on.
Weights are saved at the last epoch, not at a "best" epoch: R describes the
last epoch's weights, and a checkpoint from another epoch would not match it.
In KerasTuner's distributed mode, workers run trials and only reach the oracle
through its gRPC calls; `pareto_front()` and the reports run on the chief or
afterwards, from the search directory.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine.trial import Trial

from flatnas_tf.flatness import FlatnessCallback, check_samples, check_sigmas
from flatnas_tf.tuners.nsga2 import NSGA2Oracle, last_value

MODES = ("flatnas", "pareto")

#: Figures every trial records (trained ones; infeasible ones record params).
FIGURES = (
    "val_accuracy",
    "val_loss",
    "accuracy",
    "loss",
    "robustness",
    "robustness_loss_gap",
    "perturbed_accuracy",
    "perturbed_loss",
    "params",
    "train_time_s",
)


def trial_figures(trial: Trial) -> dict[str, float]:
    """Every recorded figure of a trial, NaN where not measured.

    Args:
        trial: A trial of a FlatNAS search.

    Returns:
        Figure name -> value, in `FIGURES` order.
    """
    return {name: last_value(trial, name) for name in FIGURES}


def _check_mode_and_alpha(mode: str, alpha: float) -> None:
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; received mode={mode!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be a number in [0, 1]; received alpha={alpha!r}.")


def _check_max_params(max_params: float | None) -> float | None:
    if max_params is None:
        return None
    if isinstance(max_params, bool) or not isinstance(max_params, (int, float)):
        raise ValueError(f"`max_params` must be a number > 0 or None; received {max_params!r}.")
    if not math.isfinite(max_params) or max_params <= 0:
        raise ValueError(f"`max_params` must be a number > 0 or None; received {max_params!r}.")
    return float(max_params)


def _mode_objectives(mode: str) -> list[keras_tuner.Objective]:
    if mode == "flatnas":
        return [
            keras_tuner.Objective("flatnas_objective", "min"),
            keras_tuner.Objective("params", "min"),
        ]
    return [
        keras_tuner.Objective("val_accuracy", "max"),
        keras_tuner.Objective("robustness", "min"),
        keras_tuner.Objective("params", "min"),
    ]


class FlatNASOracle(NSGA2Oracle):
    """NSGA-II over FlatNAS's objectives (see the module docstring).

    Args:
        mode: "flatnas" (robust error and params) or "pareto" (val accuracy,
            R and params as three objectives).
        alpha: Weight of the error against R in mode "flatnas", in [0, 1].
        max_params: Parameter limit (constraint `params <= max_params`); None
            for no limit.
        **kwargs: Passed to `NSGA2Oracle` (population_size, max_trials, seed, ...).

    Example:
    ```python
    oracle = FlatNASOracle(mode="flatnas", alpha=0.5, max_params=5e6, population_size=20)
    ```
    """

    def __init__(
        self,
        mode: str = "flatnas",
        alpha: float = 0.5,
        max_params: float | None = 5e6,
        **kwargs,
    ):
        _check_mode_and_alpha(mode, alpha)
        max_params = _check_max_params(max_params)
        constraints = None if max_params is None else {"params": max_params}
        super().__init__(objective=_mode_objectives(mode), constraints=constraints, **kwargs)
        self.mode = mode
        self.alpha = float(alpha)
        self.max_params = max_params

    def alpha_norm(self, trials: Sequence[Trial]) -> float:
        """mean(err) / mean(R) over the trials that have both (1 in the first generation).

        Args:
            trials: The completed trials.

        Returns:
            The normalisation of R against the error.
        """
        errors = np.array([100.0 * (1.0 - last_value(t, "val_accuracy")) for t in trials])
        robustness = np.array([last_value(t, "robustness") for t in trials])
        measured = np.isfinite(errors) & np.isfinite(robustness)
        if measured.sum() < self.population_size or robustness[measured].mean() <= 0:
            return 1.0
        return float(errors[measured].mean() / robustness[measured].mean())

    def objective_values(self, trials: Sequence[Trial]) -> np.ndarray:
        if self.mode == "pareto":
            return super().objective_values(trials)
        norm = self.alpha_norm(trials)
        rows = []
        for trial in trials:
            error = 100.0 * (1.0 - last_value(trial, "val_accuracy"))
            robust = self.alpha * error + norm * (1.0 - self.alpha) * last_value(
                trial, "robustness"
            )
            rows.append((robust, last_value(trial, "params")))
        return np.array(rows, dtype=np.float64).reshape(len(trials), 2)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["flatnas"] = {"mode": self.mode, "alpha": self.alpha, "max_params": self.max_params}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("flatnas", {})
        if saved.get("mode", self.mode) != self.mode:  # the saved search's objectives win
            self.mode = saved["mode"]
            self.objectives = _mode_objectives(self.mode)
            self.objective = keras_tuner.engine.objective.create_objective(self.objectives)
        self.alpha = saved.get("alpha", self.alpha)
        self.max_params = saved.get("max_params", self.max_params)


class FlatNASTuner(keras_tuner.Tuner):
    """KerasTuner tuner for FlatNAS: SAM training, flatness, NSGA-II selection.

    Use it as any KerasTuner tuner: `search(x, y, validation_data=..., epochs=...)`
    (validation data is required: R is measured on it), tf.data datasets,
    callbacks, TensorBoard, `results_summary()`, `get_best_models()` (which
    returns Pareto-optimal models first).

    Args:
        hypermodel: A `FlatNASHyperModel` (or any KerasTuner hypermodel; one
            without `count_params(hp)` is built to be counted).
        mode: "flatnas" or "pareto" (see the module docstring).
        alpha: Error/flatness trade-off of mode "flatnas", in [0, 1].
        max_params: Parameter limit; candidates above it are not trained.
        population_size: NSGA-II population (>= 2).
        max_trials: Total trials, infeasible and failed ones included.
        seed: Seed of the search (and of the flatness perturbations).
        sigma: Weight-noise scale of R.
        samples: Perturbations per R measurement.
        flatness_batches: Measure R on the first N validation batches only.
        hyperparameters: Optional `HyperParameters` fixing or pre-registering
            part of the space (KerasTuner semantics).
        max_retries_per_trial: Retries of a trial that raised an error.
        max_consecutive_failed_trials: Failed trials in a row that stop the search.
        **kwargs: Passed to `keras_tuner.Tuner` (directory, project_name,
            overwrite, ...).

    Example:
    ```python
    tuner = FlatNASTuner(FlatNASHyperModel((32, 32, 3), 10), mode="flatnas", alpha=0.5,
                         max_params=5e6, max_trials=100, population_size=20,
                         directory="runs", project_name="c10")
    tuner.search(train_ds, validation_data=val_ds, epochs=6)
    front = tuner.pareto_front()
    ```
    """

    def __init__(
        self,
        hypermodel: keras_tuner.HyperModel,
        mode: str = "flatnas",
        alpha: float = 0.5,
        max_params: float | None = 5e6,
        population_size: int = 20,
        max_trials: int = 100,
        seed: int | None = None,
        sigma: float = 0.05,
        samples: int = 20,
        flatness_batches: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs,
    ):
        oracle = FlatNASOracle(
            mode=mode,
            alpha=alpha,
            max_params=max_params,
            population_size=population_size,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        (sigma,) = check_sigmas([sigma])  # fail before any trial runs
        samples = check_samples(samples)
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        # A resumed search keeps its saved limit (the oracle ranks by it); a
        # distributed worker's oracle proxy has none, and uses the argument.
        self.max_params = getattr(self.oracle, "max_params", _check_max_params(max_params))
        self.sigma = float(sigma)
        self.samples = int(samples)
        self.flatness_seed = 0 if seed is None else int(seed)
        self.flatness_batches = flatness_batches

    def count_params(self, hp: keras_tuner.HyperParameters) -> int:
        """Parameters of the candidate `hp` describes, without training it."""
        counter = getattr(self.hypermodel, "count_params", None)
        if callable(counter):
            return int(counter(hp))
        return int(self._try_build(hp).count_params())

    def run_trial(self, trial: Trial, *args, **kwargs) -> dict[str, float]:
        hp = trial.hyperparameters
        params = self.count_params(hp)
        # KerasTuner insists on a value for every objective and for their sum:
        # what is not measured here (the oracle derives flatnas_objective from the
        # raw figures at ranking time; infeasible trials are not trained) is NaN.
        objective = self.oracle.objective
        names = [o.name for o in getattr(objective, "objectives", [objective])]
        figures = dict.fromkeys([*names, objective.name], math.nan)
        figures["params"] = float(params)
        if self.max_params is not None and params > self.max_params:
            return figures
        validation = kwargs.get("validation_data")
        if validation is None:
            raise keras_tuner.errors.FatalValueError(
                "FlatNASTuner.search needs validation_data=...: flatness is measured on it."
            )
        callbacks = self._deepcopy_callbacks(kwargs.pop("callbacks", []))
        if any(isinstance(c, keras.callbacks.TensorBoard) for c in callbacks):
            # KerasTuner's per-trial log dirs and HParams; it imports tensorboard,
            # which TensorFlow no longer installs, so only when TensorBoard is used.
            self._configure_tensorboard_dir(callbacks, trial)
        callbacks.append(keras.callbacks.TerminateOnNaN())
        callbacks.append(
            FlatnessCallback(
                validation,
                sigma=self.sigma,
                samples=self.samples,
                seed=self.flatness_seed,
                max_batches=self.flatness_batches,
            )
        )
        model = self._try_build(hp)
        start = time.perf_counter()
        history = self.hypermodel.fit(hp, model, *args, callbacks=callbacks, **kwargs)
        elapsed = time.perf_counter() - start
        logs = {name: values[-1] for name, values in history.history.items() if values}
        if not all(math.isfinite(logs.get(name, math.nan)) for name in ("loss", "robustness")):
            raise keras_tuner.errors.FailedTrialError(
                f"Trial {trial.trial_id} diverged (loss {logs.get('loss')}); it is not ranked."
            )
        figures.update({name: float(logs[name]) for name in FIGURES if name in logs})
        figures["train_time_s"] = elapsed
        model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        with open(self._get_build_config_fname(trial.trial_id), "w") as file:
            json.dump(model.get_build_config(), file)
        return figures

    def pareto_front(self) -> list[Trial]:
        """The feasible trials of the first Pareto front, best-spread first.

        Returns:
            The completed, Pareto-optimal trials (see `NSGA2Oracle.pareto_front`).
        """
        front = getattr(self.oracle, "pareto_front", None)
        if front is None:
            raise RuntimeError(
                "pareto_front() needs the oracle itself: call it on the chief, or reload the "
                "search directory with overwrite=False after the search."
            )
        return front()

    def figures(self, trial: Trial) -> dict[str, float]:
        """Every recorded figure of a trial (NaN when not measured).

        Args:
            trial: A trial of this search.

        Returns:
            Figure name -> value, in `FIGURES` order.
        """
        return trial_figures(trial)

    def results_table(self, trials: Sequence[Trial] | None = None) -> str:
        """A Markdown table of trials and their figures (default: the Pareto front).

        Args:
            trials: The trials to list; default `pareto_front()`.

        Returns:
            The table, one row per trial.
        """
        trials = self.pareto_front() if trials is None else list(trials)
        header = "| trial | val acc % | R (pp) | loss gap | params | train s |"
        lines = [header, "|---|---|---|---|---|---|"]
        for trial in trials:
            f = self.figures(trial)
            lines.append(
                f"| {trial.trial_id} | {100 * f['val_accuracy']:.2f} | {f['robustness']:.2f} | "
                f"{f['robustness_loss_gap']:.4f} | {int(f['params']):,} | "
                f"{f['train_time_s']:.1f} |"
            )
        return "\n".join(lines) + "\n"
