"""FlatNASTuner: one trial = count parameters, train from scratch, measure once.

For each trial the NSGA-II oracle proposes:

    params = hypermodel.count_params(hp)              (no training)
    if params > max_params: report {params} only      (infeasible, never trained)
    else:
        seed everything from (search seed, configuration)
        model = hypermodel.build(hp)                  (a compiled SAMModel)
        regime.prepare: warm-up + cosine learning rate over the trial's steps,
                        optimizer and metrics built before the first trace
        hypermodel.fit(train, epochs)                 (no per-epoch validation)
        regime.finish: BatchNorm statistics recalibrated on training batches
        measure on the validation data, once, in inference mode:
            val_accuracy, val_loss, R (% points), loss gap, perturbed figures,
            chance_p_value (binomial test against the majority-class rate)
        report them with accuracy, loss (training), params, train/measure
        times; save the weights they describe (trial_<id>/checkpoint.weights.h5)

Every raw figure is recorded whatever the mode, so a finished search can be
re-ranked under another alpha without retraining. The oracle ranks on
FlatNAS's objectives (objective 1 from error and R, objective 2 params; or
mode "pareto"), defined once in `flatnas_tf.tuners.objectives` and recomputed
whenever a trial completes, with Deb's constrained domination (an infeasible
trial never reaches the front) under the constraints params <= max_params and
chance_p_value <= chance_significance: a network not clearly above chance
(e.g. one answer for every input, which has R = 0) is not a candidate;
untrained trials report 1.

A diverged trial (non-finite loss) is marked FAILED and the search goes on.
In KerasTuner's distributed mode, workers run trials and only reach the oracle
through its gRPC calls; `pareto_front()` and the reports run on the chief or
afterwards, from the search directory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine.trial import Trial

from flatnas_tf import compat
from flatnas_tf.checks import check_number
from flatnas_tf.defaults import SIGMA
from flatnas_tf.figures import CHANCE_METRIC, FIGURES
from flatnas_tf.persistence import storage
from flatnas_tf.robustness.chance import DEFAULT_SIGNIFICANCE, label_counts
from flatnas_tf.robustness.flatness import PerturbedEvaluator, check_samples, check_sigmas
from flatnas_tf.robustness.measurement import measure_candidate
from flatnas_tf.training.regime import TrainingDivergedError, TrainingRegime
from flatnas_tf.tuners import (
    access,
    distributed,
    durable,
    objectives,
    pareto,
    progress,
    tensorboard,
)
from flatnas_tf.tuners.archive import last_value
from flatnas_tf.tuners.display import objectives_line
from flatnas_tf.tuners.durable import ORACLE_FILE
from flatnas_tf.tuners.nsga2 import NSGA2Oracle, keras_tuner_objective
from flatnas_tf.tuners.surrogate import SurrogateSettings

if TYPE_CHECKING:
    from flatnas_tf.tuners.result import SearchResult

#: The lock file of a search in progress, in the project directory.
LOCK_FILE = "search.lock"


class SearchFailedError(RuntimeError):
    """Every trial of a search failed, or too many failed in a row."""


class DiskFullError(OSError, keras_tuner.errors.FatalError):  # noqa: N818 (an OSError)
    """The disk filled up while a trial was saved: the search stops (KerasTuner re-raises it)."""


def trial_seed(seed: int, values: Mapping[str, Any]) -> int:
    """The seed a trial trains with: a hash of the search seed and the configuration.

    A configuration starts from the same weights (and dropout stream) whenever
    and by whichever worker it is run. The order of the training data is the
    pipeline's: a shuffling pipeline shared by the trials continues its
    sequence from trial to trial.

    Args:
        seed: The search's seed.
        values: The trial's hyperparameter values.

    Returns:
        An integer in [0, 2**31).
    """
    key = f"{seed}:{json.dumps(dict(values), sort_keys=True, default=str)}"
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 2**31


def load_trial_weights(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Loads a trial checkpoint into a freshly built model, optimizer state included.

    A checkpoint holds the optimizer's slot variables (momentum); a fresh
    model's optimizer has none until it is built, and Keras would skip the
    saved state with a warning. Building it first loads everything.

    Args:
        model: A compiled model built from the trial's hyperparameters.
        path: The trial's `.weights.h5` checkpoint.

    Returns:
        `model`, with the checkpoint's weights.

    Example:
    ```python
    model = load_trial_weights(hypermodel.build(trial.hyperparameters), checkpoint)
    ```
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model


def trial_figures(trial: Trial) -> dict[str, float]:
    """Every recorded figure of a trial, NaN where not measured.

    Args:
        trial: A trial of a FlatNAS search.

    Returns:
        Figure name -> value, in `FIGURES` order.
    """
    return {name: last_value(trial, name) for name in FIGURES}


def _check_positive(value: float | None, name: str) -> float | None:
    """`value` as a float if it is a finite number > 0; None stays None."""
    return check_number(value, name, 0, low_open=True, optional=True)


def _keras_tuner_objectives(mode: str) -> list[keras_tuner.Objective]:
    return [keras_tuner.Objective(n, d) for n, d in objectives.mode_objectives(mode)]


class FlatNASOracle(NSGA2Oracle):
    """NSGA-II over FlatNAS's objectives (see the module docstring).

    Args:
        mode: "flatnas" (robust error and params) or "pareto" (val accuracy,
            R and params as three objectives).
        alpha: Weight of the error against R in mode "flatnas", in [0, 1].
        max_params: Parameter limit (constraint `params <= max_params`); None
            for no limit.
        chance_significance: Trials whose validation accuracy is not above
            the majority-class rate at this significance are infeasible
            (constraint `chance_p_value <= chance_significance`); None to
            rank every trained trial.
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
        chance_significance: float | None = DEFAULT_SIGNIFICANCE,
        **kwargs,
    ):
        alpha = objectives.check_mode_and_alpha(mode, alpha)
        max_params = _check_positive(max_params, "max_params")
        chance_significance = check_number(
            chance_significance,
            "chance_significance",
            0,
            1,
            low_open=True,
            high_open=True,
            optional=True,
        )
        super().__init__(
            objective=_keras_tuner_objectives(mode),
            constraints=objectives.constraints(max_params, chance_significance) or None,
            **kwargs,
        )
        self.mode = mode
        self.alpha = float(alpha)
        self.max_params = max_params

    @property
    def chance_significance(self) -> float | None:
        """Significance of the above-chance constraint (None when there is none)."""
        return self.constraints.get(CHANCE_METRIC)

    def alpha_norm(self, trials: Sequence[Trial]) -> float:
        """The scale of R in objective 1 over these trials (`objectives.alpha_norm`).

        Args:
            trials: The completed trials.

        Returns:
            The normalisation of R against the error.
        """
        accuracy, robustness = self.metric_values(trials, ("val_accuracy", "robustness")).T
        return objectives.alpha_norm(accuracy, robustness, self.population_size)

    def objective_values(self, trials: Sequence[Trial]) -> np.ndarray:
        return objectives.objective_values(
            lambda names: self.metric_values(trials, names),
            self.mode,
            self.alpha,
            self.population_size,
        )

    def _ranking_settings(self) -> tuple:
        return (*super()._ranking_settings(), self.mode, self.alpha, self.population_size)

    def surrogate_metrics(self) -> list[str]:
        """The raw figures the objectives come from (not one objective), but exact ones."""
        names = objectives.raw_figures(self.mode)
        return [name for name in names if name not in self.exact_metrics]

    def predicted_objectives(
        self, figures: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates' figures -> objectives with the archive's alpha_norm, and violations.

        The chance constraint is not predicted (met); params is exact when the
        tuner gives `exact_metrics["params"]`.
        """
        values = objectives.objective_values(
            lambda names: np.stack([figures[name] for name in names], axis=1),
            self.mode,
            self.alpha,
            self.population_size,
            norm=self.alpha_norm(self._completed()),
        )
        minimised = pareto.to_minimisation(values, self.objective_directions())
        return minimised, self.predicted_violations(figures, len(minimised))

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["flatnas"] = {"mode": self.mode, "alpha": self.alpha, "max_params": self.max_params}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("flatnas", {})
        if saved.get("mode", self.mode) != self.mode:  # the saved search's objectives win
            self.mode = saved["mode"]
            self.objectives = _keras_tuner_objectives(self.mode)
            self.objective = keras_tuner_objective(self.objectives)
        self.alpha = saved.get("alpha", self.alpha)
        self.max_params = saved.get("max_params", self.max_params)


class FlatNASTuner(keras_tuner.Tuner):
    """KerasTuner tuner for FlatNAS: SAM training, flatness, NSGA-II selection.

    Use it as any KerasTuner tuner: `search(x, y, validation_data=..., epochs=...)`,
    tf.data datasets, callbacks, TensorBoard, `results_summary()`,
    `get_best_models()` (which returns Pareto-optimal models first). The
    validation data is required and is measured once per trial, after
    training (see the module docstring), not at every epoch.

    Args:
        hypermodel: A `FlatNASHyperModel` (or any KerasTuner hypermodel; one
            without `count_params(hp)` is built to be counted).
        mode: "flatnas" or "pareto" (see the module docstring).
        alpha: Error/flatness trade-off of mode "flatnas", in [0, 1].
        max_params: Parameter limit; candidates above it are not trained.
        population_size: NSGA-II population (>= 2).
        max_trials: Total trials, infeasible and failed ones included.
        seed: Seed of the search, of each trial's training (with its
            configuration) and of the flatness perturbations.
        sigma: Weight-noise scale of R.
        samples: Perturbations per R measurement.
        flatness_batches: Measure R on the first N validation batches only
            (validation accuracy always uses all of them).
        regime: How each candidate is trained (`TrainingRegime`: learning-rate
            warm-up and cosine decay, BatchNorm recalibration); default
            `TrainingRegime()`.
        chance_significance: Significance of the test that a trial's
            validation accuracy is above the majority-class rate; trials that
            fail it are infeasible. None ranks every trained trial.
        hyperparameters: Optional `HyperParameters` fixing or pre-registering
            part of the space (KerasTuner semantics).
        max_retries_per_trial: Retries of a trial that raised an error or
            whose measurement failed (a NaN objective within the constraints).
        max_consecutive_failed_trials: Failed trials in a row that stop the search.
        trial_lease_s: Distributed search (on the chief): seconds a worker may
            stay silent (workers send a heartbeat every epoch and every few
            seconds of training) before its trial is queued for another
            worker; a dead worker then no longer blocks the search. None:
            wait forever, as KerasTuner does. Must exceed a trial's longest
            silent phase (its measurement).
        allow_new_entries: Whether the hypermodel may add hyperparameters
            beyond `hyperparameters` (KerasTuner semantics).
        tune_new_entries: Whether such added hyperparameters are tuned (else
            they keep their defaults).
        surrogate: `SurrogateSettings` for a surrogate-assisted search (after
            an initial design, only the candidates an NSGA-II search on
            predicted accuracy and R chooses are trained; params counted
            exactly); None for plain NSGA-II.
        token_file: Distributed search: a file holding the token every call to
            the chief must present (`flatnas_tf.tuners.access`); None: the
            FLATNAS_TF_TOKEN environment variable, else the `token` file the
            chief writes in the project directory.
        chief_timeout_s: Distributed search (on a worker): seconds a call to
            the chief waits for a chief that is not there (restarting after
            a preemption, say) before the worker gives up.
        tls: Distributed search: serve (chief) or connect (worker) over TLS
            with these files (`flatnas_tf.tuners.access.TLS`); None: the
            calls travel unencrypted (token included).
        **kwargs: Passed to `keras_tuner.Tuner` (directory, project_name,
            overwrite, ...). `executions_per_trial` must be 1. Subclasses may
            override KerasTuner's `on_epoch_*` / `on_batch_*` hooks (called
            during each candidate's training), `hypermodel.build` /
            `hypermodel.fit` (used as KerasTuner uses them) and
            `fit_and_measure` / `measure`. KerasTuner's `_build_and_fit_model`
            is not called: a trial needs the trained model itself, to
            measure it, not only what `fit` returns.

    Example:
    ```python
    tuner = FlatNASTuner(FlatNASHyperModel((32, 32, 3), 10), mode="flatnas", alpha=0.5,
                         max_params=5e6, max_trials=100, population_size=20,
                         directory="runs", project_name="c10")
    tuner.search(train_ds, validation_data=val_ds, epochs=10)
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
        sigma: float = SIGMA,
        samples: int = 20,
        flatness_batches: int | None = None,
        regime: TrainingRegime | None = None,
        chance_significance: float | None = DEFAULT_SIGNIFICANCE,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        trial_lease_s: float | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        surrogate: SurrogateSettings | None = None,
        token_file: str | os.PathLike | None = None,
        chief_timeout_s: float = distributed.CHIEF_TIMEOUT_S,
        tls: access.TLS | None = None,
        **kwargs,
    ):
        if kwargs.get("executions_per_trial", 1) != 1:
            raise ValueError(
                "`executions_per_trial` must be 1: a trial's checkpoint is the model its "
                "figures were measured on, so each candidate is trained once; received "
                f"executions_per_trial={kwargs['executions_per_trial']!r}."
            )
        oracle = FlatNASOracle(
            mode=mode,
            alpha=alpha,
            max_params=max_params,
            chance_significance=chance_significance,
            population_size=population_size,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            surrogate=surrogate,
        )
        (sigma,) = check_sigmas([sigma])  # fail before any trial runs
        samples = check_samples(samples)
        if flatness_batches is not None:
            flatness_batches = check_samples(flatness_batches, "flatness_batches")
        if regime is not None and not isinstance(regime, TrainingRegime):
            raise TypeError(
                f"`regime` must be a TrainingRegime or None; received {type(regime).__name__}."
            )
        oracle.lease_s = _check_positive(trial_lease_s, "trial_lease_s")
        chief_timeout_s = check_number(chief_timeout_s, "chief_timeout_s", 0, low_open=True)
        if tls is not None and not isinstance(tls, access.TLS):
            raise TypeError(f"`tls` must be an access.TLS or None; received {type(tls).__name__}.")
        _mark_for_reload(kwargs)
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.token_file, self.tls = token_file, tls
        if compat.is_worker(self):
            token = access.search_token(self.project_dir, token_file, wait_s=access.TOKEN_WAIT_S)
            distributed.connect(self.oracle, token, chief_timeout_s, tls, self.project_dir)
            self.oracle.create_trial = _patient(self.oracle.create_trial)
        # A resumed search keeps its saved limit (the oracle ranks by it); a
        # distributed worker's oracle proxy has none, and uses the argument.
        limit = _check_positive(max_params, "max_params")
        self.max_params = getattr(self.oracle, "max_params", limit)
        self.sigma = float(sigma)
        self.samples = int(samples)
        self.seed = 0 if seed is None else int(seed)
        self.flatness_batches = flatness_batches
        self.regime = regime or TrainingRegime()
        self._counting_space: tuple[keras_tuner.HyperParameters, dict] | None = None
        if getattr(self.oracle, "surrogate", None) is not None:  # params: counted, not predicted
            self.oracle.exact_metrics["params"] = self._count_values
        self._validation_labels: tuple[Any, np.ndarray] | None = None
        self._lines: progress.TrialLines | None = None
        self._fit_epochs = 1

    def search(self, *fit_args, **fit_kwargs) -> None:
        """KerasTuner's `search`, checked before the first trial and after the last.

        Callbacks that cannot run (a TensorBoard callback without the
        tensorboard package) stop the search before any trial, not once per
        trial. A search that ends with failed trials and no completed one, or
        that KerasTuner stops after `max_consecutive_failed_trials` failures
        in a row, raises `SearchFailedError` with the last failure's error
        line; finished trials stay saved either way.

        Only one process searches a directory at a time (a lock file in
        the project directory; distributed workers do not take it).

        A distributed worker that finds no chief and the chief's mark that
        the search has ended (`distributed.ENDED_FILE`) returns, saying so.

        `verbose` (a keyword, default 1): 0 prints nothing; 1 one line when a
        trial starts and one when it ends (`flatnas_tf.tuners.progress`, the
        lines `flatnas-tf search` prints), in place of KerasTuner's block;
        2 also Keras' epoch progress bars.

        Raises:
            ImportError: A callback needs a package that is not installed.
            SearchFailedError: See above.
            flatnas_tf.persistence.storage.DirectoryLockedError: Another process is
                searching this directory.
        """
        callbacks = fit_kwargs.get("callbacks") or []
        tensorboard.check_installed(callbacks)
        self._fit_epochs = fit_kwargs.get("epochs", 1)
        verbose = fit_kwargs.pop("verbose", 1)
        fit_kwargs["verbose"] = 1 if verbose >= 2 else 0  # Keras' bars; KerasTuner's block
        self._lines = (
            progress.TrialLines(self.oracle, getattr(self.oracle, "chance_significance", None))
            if verbose
            else None
        )
        worker = compat.is_worker(self)
        if not worker:
            for board in tensorboard.boards(callbacks):
                tensorboard.write_experiment(board.log_dir, self.oracle.get_space())
        lock = (
            contextlib.nullcontext()
            if worker
            else storage.directory_lock(self.project_dir, LOCK_FILE)
        )
        with lock:
            if not worker:
                storage.remove_partial_files(self.project_dir)
            if compat.is_chief_oracle():
                self.save()
                token = access.search_token(self.project_dir, self.token_file, create=True)
                distributed.serve(self.oracle, token, tls=self.tls)  # until the workers are done
                return
            try:
                self._search_and_check(*fit_args, **fit_kwargs)
            except distributed.SearchEndedError as ended:  # a worker that came too late
                if verbose:
                    print(ended, flush=True)

    def _search_and_check(self, *fit_args, **fit_kwargs) -> None:
        """KerasTuner's search; failed trials turned into `SearchFailedError` (see `search`)."""
        try:
            super().search(*fit_args, **fit_kwargs)
        except RuntimeError as error:
            ended = self._ended_trials()
            limit = getattr(self.oracle, "max_consecutive_failed_trials", None)
            tail = ended[-limit:] if limit else []
            if not tail or len(tail) < limit or any(t.status != "FAILED" for t in tail):
                raise
            raise SearchFailedError(_failure_summary(tail, "in a row")) from error
        ended = self._ended_trials()
        if ended and all(t.status == "FAILED" for t in ended):
            raise SearchFailedError(_failure_summary(ended, "and none completed"))

    def on_search_begin(self) -> None:
        super().on_search_begin()
        if self._lines is not None:
            self._lines = progress.TrialLines(self.oracle, self._lines.significance)
            if not compat.is_worker(self):
                self.oracle.verbose = 0  # the lines replace KerasTuner's block

    def on_trial_begin(self, trial: Trial) -> None:
        super().on_trial_begin(trial)
        if self._lines is not None:
            params = self.count_params(trial.hyperparameters)
            print(
                self._lines.started(trial, params, self.trial_plan(params)),
                flush=True,
            )

    def on_trial_end(self, trial: Trial) -> None:
        try:
            super().on_trial_end(trial)
            ended = self.oracle.get_trial(trial.trial_id) if self._lines is not None else None
        except Exception as error:
            if not distributed.superseded(error):
                raise
            print(f"trial {trial.trial_id}: {error.details()}", flush=True)  # and on to the next
            return
        if ended is not None:
            print(self._lines.ended(ended), flush=True)

    def trial_plan(self, params: int) -> str:
        """What a trial of `params` parameters will do, in words, for its start line."""
        if self.max_params is not None and params > self.max_params:
            return f"over max_params {int(self.max_params):,}: not trained"
        return self.training_plan(self._fit_epochs)

    def training_plan(self, epochs: int) -> str:
        """How a trial within the budget is trained and measured, in words."""
        return (
            f"training {epochs} epoch{'s' if epochs != 1 else ''}, then R from "
            f"{self.samples} weight perturbations"
        )

    def _ended_trials(self) -> list[Trial]:
        """Ended trials in the order they ended (empty for a distributed worker's proxy)."""
        trials = getattr(self.oracle, "trials", None)
        order = getattr(self.oracle, "end_order", None)
        if not trials or not order:
            return []
        return [trials[i] for i in order if trials[i].status in ("COMPLETED", "FAILED")]

    def load_model(self, trial: Trial) -> keras.Model:
        """The trial's model with the weights its figures were measured on.

        As KerasTuner's, but the checkpoint's optimizer state loads too
        (`load_trial_weights`) instead of being skipped with a warning.
        """
        model = compat.try_build(self, trial.hyperparameters)
        strategy = self.distribution_strategy
        with strategy.scope() if strategy else contextlib.nullcontext():
            return load_trial_weights(model, compat.checkpoint_file(self, trial.trial_id))

    def _populate_initial_space(self) -> None:
        # KerasTuner builds the hypermodel until every conditional scope has
        # been active; a hypermodel that declares its whole space needs none.
        if not getattr(self.hypermodel, "declares_whole_space", False):
            super()._populate_initial_space()
            return
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def count_params(self, hp: keras_tuner.HyperParameters) -> int:
        """Parameters of the candidate `hp` describes, without training it."""
        counter = getattr(self.hypermodel, "count_params", None)
        if callable(counter):
            return int(counter(hp))
        return int(compat.try_build(self, hp).count_params())

    def _count_values(self, values: Mapping[str, Any]) -> float:
        """The parameter count of a configuration given as values (surrogate mode)."""
        if self._counting_space is None:  # one copy of the space, its defaults kept
            space = self.oracle.get_space()
            self._counting_space = (space, dict(space.values))
        hp, defaults = self._counting_space
        hp.values = {**defaults, **values}
        return float(self.count_params(hp))

    def _build_hypermodel(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        # Runs right after KerasTuner's clear_session, which drops Keras' seed.
        keras.utils.set_random_seed(trial_seed(self.seed, hp.values))
        return super()._build_hypermodel(hp)

    def run_trial(self, trial: Trial, *args, **kwargs) -> dict[str, float]:
        hp = trial.hyperparameters
        params = self.count_params(hp)
        # KerasTuner insists on a value for every objective: what is not measured
        # here (the oracle derives flatnas_objective from the raw figures at
        # ranking time; infeasible trials are not trained) is NaN.
        objective = self.oracle.objective
        names = [o.name for o in getattr(objective, "objectives", [objective])]
        figures = dict.fromkeys(names, math.nan)
        figures["params"] = float(params)
        if self.max_params is not None and params > self.max_params:
            figures[CHANCE_METRIC] = 1.0  # never trained: no evidence above chance
            return figures
        callbacks = compat.copy_callbacks(self, kwargs.pop("callbacks", []))
        if compat.is_worker(self):
            callbacks.append(distributed.Heartbeat(self.oracle, trial.trial_id))
        if _overrides_tuner_hooks(self):
            # KerasTuner's on_epoch_*/on_batch_* hooks, only when a subclass uses
            # them: a batch-level callback makes Keras read the logs every step.
            callbacks.append(compat.tuner_callback(self, trial))
        boards = tensorboard.boards(callbacks)
        if boards:
            # KerasTuner's per-trial log dirs and HParams sessions; it imports
            # tensorboard, an optional extra, so only when TensorBoard is used.
            compat.tensorboard_callback_dir(self, callbacks, trial)
        model, measured = self.train_and_measure(hp, *args, callbacks=callbacks, **kwargs)
        figures.update(measured)
        for board in boards:
            tensorboard.write_figures(board.log_dir, figures)
        self.save_checkpoint(trial.trial_id, model)
        return figures

    def checkpoint_path(self, trial_id: str) -> str:
        """Where this process writes a trial's weights.

        KerasTuner's checkpoint file; on a distributed worker, the file of the
        attempt it was given, which the chief moves into place when it accepts
        the attempt's report (`flatnas_tf.tuners.durable`, "Attempts").

        Args:
            trial_id: The trial's id.

        Returns:
            The path.
        """
        attempt = getattr(self.oracle, "attempts", {}).get(trial_id)
        if compat.is_worker(self) and attempt is not None:
            return str(durable.attempt_checkpoint(self.get_trial_dir(trial_id), attempt))
        return compat.checkpoint_file(self, trial_id)

    def save_checkpoint(self, trial_id: str, model: keras.Model) -> None:
        """Writes a trial's weights and build config, each file atomically.

        Called before the trial's figures are reported, so a trial whose
        trial.json says COMPLETED has the checkpoint its figures describe
        (see `flatnas_tf.tuners.durable`).

        Args:
            trial_id: The trial's id.
            model: The trained model its figures were measured on.

        Raises:
            DiskFullError: The disk is full; the trial stays unfinished and
                runs again when the search resumes.
        """
        path = self.checkpoint_path(trial_id)
        try:
            with storage.atomic_path(path, suffix=".weights.h5") as temporary:
                model.save_weights(temporary)
            storage.write_json(compat.build_config_file(self, trial_id), model.get_build_config())
        except OSError as error:
            if storage.is_disk_full(error):  # end the search: every later trial would fail too
                raise DiskFullError(error.errno, str(error), error.filename) from error
            raise

    def save(self) -> None:
        """Saves the oracle (on the chief) and this tuner's state, each file atomically."""
        if not compat.is_worker(self):
            self.oracle.save()
        storage.write_json(compat.tuner_file(self), self.get_state())

    def reload(self) -> None:
        """Reloads the search, repairing what a crash left (`flatnas_tf.tuners.durable`)."""
        if not compat.is_worker(self):
            self.oracle.reload()
        if not self.oracle.get_space().space:  # rebuilt oracle: declare the space again
            self._populate_initial_space()

    def train_and_measure(
        self, hp: keras_tuner.HyperParameters, *args, **kwargs
    ) -> tuple[keras.Model, dict[str, float]]:
        """Trains the candidate `hp` describes as a trial does, and measures it.

        The whole trial but the oracle and the checkpoint (see the module
        docstring): seeded build, the regime's training, recalibration, one
        measurement on the validation data. Useful to re-measure a
        configuration outside a search, e.g. under several seeds.

        Args:
            hp: The candidate's hyperparameters.
            *args: What `keras.Model.fit` takes positionally (x, y, ...).
            **kwargs: `fit`'s keyword arguments; `validation_data` is
                required and is measured after training, not per epoch.

        Returns:
            The trained model and its figures (`FIGURES` but params).

        Raises:
            keras_tuner.errors.FatalValueError: No `validation_data`.
            keras_tuner.errors.FailedTrialError: Training diverged.

        Example:
        ```python
        model, figures = tuner.train_and_measure(hp, train_ds, validation_data=val_ds, epochs=10)
        ```
        """
        validation, fit_kwargs = split_fit_arguments(args, kwargs)
        with self.regime.scope():
            model = compat.try_build(self, hp)
            figures = self.fit_and_measure(hp, model, validation, **fit_kwargs)
        return model, figures

    def fit_and_measure(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        validation,
        **kwargs,
    ) -> dict[str, float]:
        """Trains a compiled model as a trial does (no training at 0 epochs), then measures it.

        `TrainingRegime.train` trains (with the hypermodel's `fit`) and
        `measure` measures: the project's one trainer and one measurer.

        Args:
            hp: The candidate's hyperparameters (for `hypermodel.fit`).
            model: The compiled model.
            validation: The validation data.
            **kwargs: `fit`'s arguments, as keywords (x, y, epochs, callbacks,
                ...; see `split_fit_arguments`), passed to `hypermodel.fit`.

        Returns:
            The figures (`FIGURES` but params; accuracy and loss NaN when not
            trained).

        Raises:
            keras_tuner.errors.FailedTrialError: Training diverged, or R is not finite.
        """
        epochs = kwargs.pop("epochs", 1)
        data = kwargs.pop("x", None)
        start = time.perf_counter()
        try:
            history = self.regime.train(
                model, data, epochs, fit=functools.partial(self.hypermodel.fit, hp, model), **kwargs
            )
        except TrainingDivergedError as error:
            raise keras_tuner.errors.FailedTrialError(
                f"{error} The candidate is not ranked."
            ) from None
        figures: dict[str, float] = {"train_time_s": 0.0}
        if history is not None:  # recalibration counts as training; at 0 epochs, as measuring
            figures["train_time_s"] = time.perf_counter() - start
            start = time.perf_counter()
            logs = {name: values[-1] for name, values in history.history.items() if values}
            figures.update(
                {name: float(logs[name]) for name in ("accuracy", "loss") if name in logs}
            )
        figures.update(self.measure(model, validation))
        figures["measure_time_s"] = time.perf_counter() - start
        if not math.isfinite(figures["robustness"]):
            raise keras_tuner.errors.FailedTrialError(
                "The candidate has no finite flatness figure; it is not ranked."
            )
        return figures

    def measure(self, model: keras.Model, validation) -> dict[str, float]:
        """Validation figures of a trained model, as a trial records them (`measure_candidate`).

        Args:
            model: A trained model (BatchNorm statistics already recalibrated).
            validation: The validation data.

        Returns:
            val_accuracy, val_loss, the flatness figures (`FlatnessCallback`'s
            names) and chance_p_value.
        """
        return measure_candidate(
            model,
            validation,
            sigma=self.sigma,
            samples=self.samples,
            seed=self.seed,
            max_batches=self.flatness_batches,
            evaluator=self.perturbed_evaluator(model, validation),
            counts=self._label_counts(validation),
        )

    def perturbed_evaluator(self, model: keras.Model, validation) -> PerturbedEvaluator:
        """The evaluator `measure` uses: a new one per model (each trial builds its own)."""
        return PerturbedEvaluator(model, validation)

    def _label_counts(self, validation) -> np.ndarray:
        """Class counts of the validation labels, read once per validation set."""
        if self._validation_labels is None or self._validation_labels[0] is not validation:
            self._validation_labels = (validation, label_counts(validation))
        return self._validation_labels[1]

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

    def result(self) -> SearchResult:
        """This search as a `SearchResult`: trials, ranking, front, hypervolume, models.

        A snapshot of the oracle as it is now (call it again to see later
        trials); re-ranking it (`rank(alpha=...)`) changes nothing here. On a
        distributed worker, whose oracle is the chief's, it reads the search
        directory instead.

        Returns:
            A `SearchResult` with this tuner's hypermodel.

        Example:
        ```python
        tuner.search(train, validation_data=val, epochs=8)
        result = tuner.result()
        result.front(), result.hypervolume().values
        ```
        """
        from flatnas_tf.tuners.result import SearchResult

        if not isinstance(self.oracle, FlatNASOracle):  # a worker's client of the chief
            return SearchResult.load(self.project_dir, hypermodel=self.hypermodel)
        return SearchResult.from_oracle(self.oracle, self.project_dir, self.hypermodel)

    def figures(self, trial: Trial) -> dict[str, float]:
        """Every recorded figure of a trial (NaN when not measured).

        Args:
            trial: A trial of this search.

        Returns:
            Figure name -> value, in `FIGURES` order.
        """
        return trial_figures(trial)

    def results_summary(self, num_trials: int = 10) -> None:
        """Prints the best trials, the Pareto front first, with what was measured.

        KerasTuner's summary prints `trial.score`, which for several objectives
        is a position in the survival order; this one prints each trial's
        objective values, hyperparameters and a table of its figures.

        Args:
            num_trials: How many trials to show at most.
        """
        best = self.oracle.get_best_trials(num_trials)
        names = ", ".join(f"{o.name} ({o.direction})" for o in self.oracle.objectives)
        print("Results summary")
        print(f"Results in {self.project_dir}")
        print(f"Showing {len(best)} best trials, the Pareto front first; objectives: {names}")
        for trial in best:
            print()
            print(f"Trial {trial.trial_id} summary")
            print("Hyperparameters:")
            trial.display_hyperparameters()
            print(objectives_line(self.oracle, trial))
        if best:
            print()
            print(self.results_table(best), end="")

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


def _overrides_tuner_hooks(tuner: keras_tuner.Tuner) -> bool:
    """Whether a tuner's class overrides one of KerasTuner's per-epoch or per-batch hooks."""
    hooks = ("on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end")
    return any(getattr(type(tuner), h) is not getattr(keras_tuner.Tuner, h) for h in hooks)


def _patient(create_trial):
    """A worker's `create_trial` that waits a second before asking again after IDLE."""

    def create(tuner_id: str) -> Trial:
        trial = create_trial(tuner_id)
        if trial.status == "IDLE":  # other workers' trials may come back to the queue
            time.sleep(1.0)
        return trial

    return create


def _mark_for_reload(kwargs: Mapping[str, Any]) -> None:
    """Makes KerasTuner reload a project that has state but no tuner file yet.

    KerasTuner reloads only when `<tuner_id>.json` exists, which it first
    writes after a trial ends; a search killed before that would start over
    and overwrite its first trial. An empty tuner state (KerasTuner's own
    tuners keep none) written beside the oracle's makes it reload instead.
    """
    if kwargs.get("overwrite"):
        return
    project = os.path.join(
        str(kwargs.get("directory") or "."), kwargs.get("project_name") or "untitled_project"
    )
    tuner_file = os.path.join(project, f"{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}.json")
    names = os.listdir(project) if os.path.isdir(project) else []
    has_state = ORACLE_FILE in names or any(name.startswith("trial_") for name in names)
    if has_state and not os.path.exists(tuner_file):
        storage.write_json(tuner_file, {})


#: `keras.Model.fit`'s parameters in order, for arguments given positionally.
_FIT_PARAMETERS = tuple(inspect.signature(keras.Model.fit).parameters)[1:]


def split_fit_arguments(args: tuple, kwargs: dict) -> tuple[Any, dict[str, Any]]:
    """(validation data, fit's arguments as keywords) of a `search` call.

    `search` takes what `keras.Model.fit` takes, positionally or by keyword
    (`search(x, y, validation_data=...)` as KerasTuner's tutorials call it, or
    `search(x=x, y=y, ...)`, or a dataset); positional arguments are named as
    `fit` names them. `validation_data` is required and is not passed on.

    Raises:
        keras_tuner.errors.FatalValueError: No `validation_data`, or more
            positional arguments than `fit` takes, or one given twice.
    """
    if len(args) > len(_FIT_PARAMETERS):
        raise keras_tuner.errors.FatalValueError(
            f"search got {len(args)} positional arguments; keras.Model.fit takes at most "
            f"{len(_FIT_PARAMETERS)}."
        )
    named = dict(zip(_FIT_PARAMETERS, args, strict=False))
    twice = sorted(set(named) & set(kwargs))
    if twice:
        raise keras_tuner.errors.FatalValueError(
            f"search got {', '.join(twice)} both positionally and by keyword; pass it once."
        )
    fit_kwargs = {**named, **kwargs}
    validation = fit_kwargs.pop("validation_data", None)
    if validation is None:
        raise keras_tuner.errors.FatalValueError(
            "FlatNASTuner.search needs validation_data=...: every figure is measured on it."
        )
    return validation, fit_kwargs


def _failure_summary(ended: Sequence[Trial], how: str) -> str:
    """One line: how many trials failed and the last failure's error (its message's last line)."""
    failed = [t for t in ended if t.status == "FAILED"]
    message = (failed[-1].message or "no message").strip().splitlines()
    return (
        f"{len(failed)} trials failed {how}; the last (trial {failed[-1].trial_id}): "
        f"{message[-1] if message else 'no message'}"
    )
