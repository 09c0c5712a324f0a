"""NSGA-II as a KerasTuner oracle: Pareto search over several objectives.

KerasTuner turns a list of objectives into their unweighted sum; this oracle
keeps them apart and searches for the Pareto front instead (Deb et al., 2002),
with constraints of the form `metric <= bound`, over any KerasTuner space,
conditional scopes included. Trial n (n = number of trials created so far):

    rng    = Random((seed, n))                            one stream per trial
    g      = n // population_size                         its generation
    F, v   = objective_values(completed), violations      the hook, whole archive
    if g == 0 or fewer than 2 completed trials:
        child = random configuration                      (initial population)
    else:
        pool   = survival_order(F, v)[:population_size]   (mu + lambda) elitism;
                                                          fixed once full for g
        r, c   = rank_and_crowd(F[pool], v[pool])
        p1, p2 = two binary tournaments on (r low, c high), distinct parents
        child  = uniform crossover of p1, p2 with prob pc, else a copy of p1
        child  = each active value mutated with prob pm (1 / #active by default)
    while child duplicates an earlier trial: breed again (20 attempts), then
        draw random configurations, then enumerate the space; none left: STOPPED
    ranking      = rank(): pareto.survival of the completed archive, the one
                   ranking behind scores, best trials, the front and the pool;
                   ranks kept up to date by pareto.IncrementalRanks
    score(trial) = rank + (position in its front) / (front size)      "min"
    best trials  = completed trials in survival_order (front 0 first)

The rules this implementation chooses:

- Objective values. `objective_values(trials)` is the hook every ranking
  calls, always on the full list of completed trials (in creation order), so
  a subclass may derive an objective from the whole archive (e.g. normalised
  by archive means). The default reads each objective's *last* reported value
  (the highest step; the mean over executions). KerasTuner's `Tuner` reports
  once per trial, the metrics of one epoch, so this equals the best value
  there; with several reports the last values describe one model, whereas
  per-objective bests could mix epochs. A missing or NaN value makes the
  trial infeasible (`pareto`'s rule). Constraint metrics are read the same way
  and turned into violations by `pareto.total_violation` (missing = infinite).
  `metric_values` reads them; each completed trial is read once
  (`archive.CompletedTrials`, refreshed if it reports again).
- Bookkeeping that does not grow with the archive. A ranking is computed
  when the archive changes (a trial completes, leaves or reports again) or
  `_ranking_settings()` does, and reused by every call until then (a trial's
  score, the display's best trials, the parent pool). Ranks are updated by
  inserting the new trial (`pareto.IncrementalRanks`, O(n) vectorised) unless
  the other trials' objective values changed (a hook normalising over the
  archive, FlatNAS's alpha_norm), which ranks the archive from scratch.
- Configurations and variation (`flatnas_tf.tuners.space`). A configuration
  is the dict of active values, walked in order (a conditional
  hyperparameter after its parent, as `RandomSearch` does); crossover and
  mutation re-walk the space, so a hyperparameter that becomes active takes
  a parent's value when a parent had one, else a random value. Mutation
  steps to neighbours on small ordered domains and redraws elsewhere (the
  rules and why are in `space`). A configuration equal to an earlier trial's
  (running, failed or completed) is never proposed again.
- Asynchrony. A trial may be requested before earlier ones end: offspring are
  bred from the completed trials that exist, random configurations are handed
  out while fewer than two are completed, and IDLE is never returned (but
  by `durable`'s leases, to a worker that must wait for other workers' trials). The
  pool of generation g is computed at its first request and kept once it
  holds `population_size` trials (refreshed at every request before that), so
  one sequential worker gives the classic generational NSGA-II and, with a
  seed, the same trials every run. Failed and invalid trials never breed.
- Score (KerasTuner's `trial.score`). With one objective it is that
  objective's value, as in KerasTuner, so its display and `results_summary`
  show true values. With several, a completed trial scores rank + position /
  front size (in [rank, rank + 1), lower is better, float32-safe), so sorting
  by score gives the survival order, and `display.ParetoDisplay` shows the
  objectives instead of it. It is set when the trial ends and refreshed, for
  the trials it returns, whenever `get_best_trials` runs.
- Failed measurements. As in KerasTuner, a trial is INVALID (retried up to
  `max_retries_per_trial`, then FAILED, counted toward
  `max_consecutive_failed_trials`) when it reported no metric, or when it is
  within every constraint but an objective is missing or not finite. A trial
  outside a constraint is a measured result (e.g. too many parameters to be
  trained) and stays COMPLETED, infeasible.
- Resume and distribution. The state is plain JSON: algorithm settings, the
  hashes of every configuration seen, the current parent pool, each trial's
  parents and the generation counter. Randomness is re-derived from (seed,
  trial number), so a reloaded oracle continues exactly where it stopped.
  Files are written atomically and repaired on reload (`durable`): a
  crashed search resumes with every finished trial and re-runs the others.
  Workers only reach the oracle through KerasTuner's seven gRPC calls, and
  nothing here depends on tuner-side state; metrics arrive as plain floats.

References:
    K. Deb, A. Pratap, S. Agarwal, T. Meyarivan. A Fast and Elitist
    Multiobjective Genetic Algorithm: NSGA-II. IEEE Transactions on
    Evolutionary Computation 6(2), 2002. doi:10.1109/4235.996017.
"""

from __future__ import annotations

import functools
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine.trial import Trial, TrialStatus

from flatnas_tf import compat
from flatnas_tf.checks import check_integer, check_number, is_number
from flatnas_tf.tuners import pareto, space
from flatnas_tf.tuners.archive import CompletedTrials, last_value
from flatnas_tf.tuners.display import ParetoDisplay
from flatnas_tf.tuners.durable import DurableOracle
from flatnas_tf.tuners.ranking import Ranking, rank_trials
from flatnas_tf.tuners.surrogate import Archive, SurrogateProposer, SurrogateSettings

__all__ = ["NSGA2Oracle", "ParetoObjective", "Ranking", "keras_tuner_objective"]

#: Breeding attempts before falling back to a random unseen configuration.
_BREED_ATTEMPTS = 20
#: Random draws before enumerating the space for an unseen configuration.
_RANDOM_ATTEMPTS = 100


def _synchronized(method: Callable) -> Callable:
    """`keras_tuner.synchronized` (one oracle call at a time), keeping the docstring."""
    return functools.wraps(method)(keras_tuner.synchronized(method))


def _with_scores(ranking: Ranking, rows: Sequence[int]) -> list[Trial]:
    """The trials of these rows, their `score` set from `ranking` (see `score_trial`)."""
    trials = [ranking.trials[row] for row in rows]
    single = ranking.objectives.shape[1] == 1
    for row, trial in zip(rows, trials, strict=True):
        trial.score = float(ranking.objectives[row, 0] if single else ranking.scores[row])
    return trials


class NSGA2Oracle(DurableOracle):
    """Multi-objective NSGA-II oracle: asynchronous, elitist, constraint-aware.

    Pass it to any KerasTuner tuner. The objectives stay separate: selection
    uses constrained non-dominated sorting and crowding distance (see
    `flatnas_tf.tuners.pareto`), and `get_best_trials` lists the Pareto front
    first, so `get_best_models` / `get_best_hyperparameters` return
    Pareto-optimal trials first. The algorithm and the rules it follows are in
    the module docstring.

    Args:
        objective: A `keras_tuner.Objective` (or a metric name whose direction
            KerasTuner can infer), or a list of them; each direction "min" or
            "max", names distinct. Every objective must be reported to
            `update_trial`, as KerasTuner requires. None, as in KerasTuner:
            the float a trial returns ("default_objective"), minimised.
        constraints: Optional dict of metric name -> finite upper bound, each
            meaning `metric <= bound` (e.g. `{"params": 5e6}`). A trial that
            does not report a constraint metric is infeasible.
        population_size: Trials per generation and size of the parent pool,
            an integer >= 2.
        max_trials: Total number of trials (failed ones included), an integer
            >= 1, or None for no limit.
        crossover_probability: Probability of uniform crossover, in [0, 1];
            otherwise a child is a mutated copy of its first parent.
        mutation_probability: Per active hyperparameter, in [0, 1]. None: 1 /
            the number of active tunable hyperparameters of the child.
        seed: Integer seed; None draws one (saved with the state).
        hyperparameters: Optional `HyperParameters` that define or pre-register
            the search space.
        allow_new_entries: Whether the hypermodel may add hyperparameters.
        tune_new_entries: Whether added hyperparameters are tuned.
        max_retries_per_trial: Retries of a trial that ended INVALID.
        max_consecutive_failed_trials: Consecutive FAILED trials that stop the
            search with an error.
        surrogate: `SurrogateSettings` for a surrogate-assisted search: after
            an initial design, trials take the candidates an NSGA-II search
            on predicted objectives chooses (`flatnas_tf.tuners.surrogate`);
            None for plain NSGA-II.

    On resume (`overwrite=False`) the saved seed, population size,
    probabilities and constraints win over the constructor's, as KerasTuner
    does for its own state; `max_trials` and the objectives come from the
    constructor, so a finished search can be extended.

    Example:
    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Int("width", 8, 64, step=8)
    >>> oracle = NSGA2Oracle(
    ...     objective=[keras_tuner.Objective("val_accuracy", "max"),
    ...                keras_tuner.Objective("robustness", "min")],
    ...     constraints={"params": 5e6}, population_size=10, max_trials=50,
    ...     seed=0, hyperparameters=hp)
    >>> oracle.objective_directions()
    ['max', 'min']
    """

    def __init__(
        self,
        objective: keras_tuner.Objective
        | str
        | Sequence[keras_tuner.Objective | str]
        | None = None,
        constraints: Mapping[str, float] | None = None,
        population_size: int = 20,
        max_trials: int | None = 100,
        crossover_probability: float = 0.9,
        mutation_probability: float | None = None,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        surrogate: SurrogateSettings | None = None,
    ):
        objectives = _objectives(objective)
        check_integer(population_size, "population_size", 2)
        if max_trials is not None:
            check_integer(max_trials, "max_trials", 1)
        check_number(crossover_probability, "crossover_probability", 0, 1)
        if mutation_probability is not None:
            check_number(mutation_probability, "mutation_probability", 0, 1)
        if seed is not None:
            check_integer(seed, "seed", 0)
        check_integer(max_retries_per_trial, "max_retries_per_trial", 0)
        check_integer(max_consecutive_failed_trials, "max_consecutive_failed_trials", 1)
        super().__init__(
            objective=keras_tuner_objective(objectives),
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if seed is not None:
            self.seed = int(seed)  # the base class replaces a seed of 0 by a random one
        self._display = ParetoDisplay(oracle=self, verbose=self._display.verbose)
        self.objectives = objectives
        self.constraints = _constraints(constraints)
        self.population_size = int(population_size)
        self.crossover_probability = float(crossover_probability)
        self.mutation_probability = (
            None if mutation_probability is None else float(mutation_probability)
        )
        self._seen: set[str] = set()  # hashes of every configuration handed out or ended
        self._lineage: dict[str, list[str]] = {}  # trial_id -> parent trial_ids
        self._pool: list[str] = []  # parent pool (trial_ids) of `_pool_generation`
        self._pool_generation = -1
        self._generation = 0
        self._archive: CompletedTrials | None = None  # built on first use, kept up to date
        self._incremental_ranks = pareto.IncrementalRanks(self.objective_directions())
        self._numbers: dict[str, int] = {}  # trial_id -> position in start_order
        self._ranked: tuple[tuple, np.ndarray, np.ndarray] | None = None  # cache key, F, v
        if surrogate is not None and not isinstance(surrogate, SurrogateSettings):
            raise TypeError(
                "`surrogate` must be a SurrogateSettings or None; received "
                f"{type(surrogate).__name__}."
            )
        self.surrogate = None if surrogate is None else SurrogateProposer(surrogate)
        #: Metrics computed from a configuration (not predicted) in surrogate mode.
        self.exact_metrics: dict[str, Callable[[Mapping[str, Any]], float]] = {}

    # -- objectives -----------------------------------------------------------------

    @property
    def objective_names(self) -> list[str]:
        """The objective metric names, in order."""
        return [objective.name for objective in self.objectives]

    def objective_directions(self) -> list[str]:
        """The direction ("min" or "max") of each objective, in order.

        Returns:
            A list of strings, one per column of `objective_values`.
        """
        return [objective.direction for objective in self.objectives]

    def objective_values(self, trials: Sequence[Trial]) -> np.ndarray:
        """The objective matrix that every ranking of the oracle uses.

        Override to derive objectives from raw metrics; rankings always pass
        the full list of completed trials in creation order, so a value may
        depend on the whole archive. The default reads each objective's last
        reported value (highest step, mean over executions). Rankings call it
        again only when the archive or `_ranking_settings()` changes: an
        override whose values depend on attributes of the oracle lists them
        there (as `FlatNASOracle` does with alpha and mode).

        Args:
            trials: The trials to evaluate.

        Returns:
            A float array of shape (len(trials), len(objective_names)), NaN
            where a value is missing.

        Example:
        >>> oracle.objective_values([])  # doctest: +SKIP
        array([], shape=(0, 2), dtype=float64)
        """
        return self.metric_values(trials, self.objective_names)

    def metric_values(self, trials: Sequence[Trial], names: Sequence[str]) -> np.ndarray:
        """The last reported value of each metric, per trial.

        The completed trials that rankings pass are cached (each trial is read
        once, when it completes), so on them this costs no Python loop over
        the archive; other sequences of trials are read afresh.

        Args:
            trials: The trials to read.
            names: Metric names.

        Returns:
            A float64 array of shape (len(trials), len(names)): the mean over
            executions at the highest step reported, NaN where never reported.

        Example:
        >>> oracle.metric_values(trials, ["val_accuracy", "params"])  # doctest: +SKIP
        """
        if self._archive is not None and trials is self._archive.trials:
            return self._archive.values(names)
        values = [[last_value(trial, name) for name in names] for trial in trials]
        return np.array(values, dtype=np.float64).reshape(len(trials), len(names))

    def constraint_violations(self, trials: Sequence[Trial]) -> np.ndarray:
        """Total violation of the constraints per trial (0 = feasible).

        Args:
            trials: The trials to evaluate.

        Returns:
            A float array of shape (len(trials),), >= 0; inf for a trial that
            did not report a constraint metric; all 0 without constraints.
        """
        if not self.constraints:
            return np.zeros(len(trials))
        names = list(self.constraints)
        return pareto.total_violation(
            self.metric_values(trials, names), [self.constraints[name] for name in names]
        )

    def _evaluate(self, trials: Sequence[Trial]) -> tuple[np.ndarray, np.ndarray]:
        objectives = np.asarray(self.objective_values(trials), dtype=np.float64)
        expected = (len(trials), len(self.objectives))
        if objectives.shape != expected:
            raise ValueError(
                f"`objective_values` must return an array of shape {expected} (trials x "
                f"objectives); received shape {objectives.shape}."
            )
        return objectives, np.asarray(self.constraint_violations(trials), dtype=np.float64)

    def objectives_of(self, trial_id: str) -> tuple[np.ndarray, float]:
        """A completed trial's objective values and total violation, as ranked.

        Args:
            trial_id: The id of a completed trial.

        Returns:
            (values, violation): a float64 array with one value per objective
            (NaN where missing) and the total constraint violation (0 =
            within every constraint).

        Raises:
            KeyError: If the trial is not completed.

        Example:
        >>> values, violation = oracle.objectives_of("007")  # doctest: +SKIP
        """
        archive, objectives, violations = self._rank_archive()
        rows = archive.rows([trial_id])
        if rows is None:
            raise KeyError(f"Trial {trial_id!r} is not a completed trial of this oracle.")
        return objectives[rows[0]].copy(), float(violations[rows[0]])

    def _completed(self) -> tuple[Trial, ...]:
        """The completed trials, in creation order."""
        return self._completed_archive().trials

    def _completed_archive(self) -> CompletedTrials:
        """The completed trials, in creation order (built once, then kept up to date)."""
        if self._archive is None:
            self._archive = CompletedTrials(
                (self.trials[trial_id], self._number(trial_id))
                for trial_id in self.start_order
                if trial_id in self.trials and self.trials[trial_id].status == TrialStatus.COMPLETED
            )
        return self._archive

    def _number(self, trial_id: str) -> int:
        """A trial's position in creation order."""
        for number in range(len(self._numbers), len(self.start_order)):  # only appended to
            self._numbers[self.start_order[number]] = number
        return self._numbers[trial_id]

    def _ranking_settings(self) -> tuple:
        """What the objectives and violations depend on besides the archive.

        Rankings are cached until this or the archive changes; a subclass
        whose objectives depend on more of its attributes adds them.
        """
        return (
            tuple(self.objective_names),
            tuple(self.objective_directions()),
            tuple(self.constraints.items()),
        )

    def _rank_archive(self) -> tuple[CompletedTrials, np.ndarray, np.ndarray]:
        """Ranks the completed trials incrementally: (archive, objectives, violations).

        `IncrementalRanks` inserts the trials completed since the last
        ranking when the others kept their objective values, and ranks from
        scratch when they did not (an overridden `objective_values` may
        normalise over the archive). `self._incremental_ranks` then describes
        the archive. Nothing is recomputed until the archive or
        `_ranking_settings()` changes.
        """
        archive = self._completed_archive()
        key = (archive.version, self._ranking_settings())
        if self._ranked is None or self._ranked[0] != key:
            objectives, violations = self._evaluate(archive.trials)
            directions = self.objective_directions()
            if self._incremental_ranks.directions != directions:
                self._incremental_ranks = pareto.IncrementalRanks(directions)
            self._incremental_ranks.update(archive.numbers, objectives, violations)
            self._ranked = (key, objectives, violations)
        return archive, self._ranked[1], self._ranked[2]

    # -- generations ----------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The generation of the most recently created trial (0 before any).

        Generation g holds the trials number population_size * g to
        population_size * (g + 1) - 1 in creation order; generation 0 is the
        random initial population.
        """
        return self._generation

    def generation_of(self, trial_id: str) -> int:
        """The generation a trial belongs to.

        Args:
            trial_id: The id of a trial created by this oracle.

        Returns:
            Its position in creation order // population_size.
        """
        return self._number(trial_id) // self.population_size

    def parents_of(self, trial_id: str) -> list[str]:
        """The ids of the trials a trial was bred from ([] for a random one).

        Args:
            trial_id: The id of a trial created by this oracle.

        Returns:
            Two ids after crossover, one for a mutated copy, none for a random
            configuration.
        """
        return list(self._lineage.get(trial_id, []))

    def _trial_rng(self, number: int) -> random.Random:
        return random.Random(f"nsga2/{self.seed}/{number}")

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        number = len(self.trials)  # this trial's position in creation order
        rng = self._trial_rng(number)
        generation = number // self.population_size
        values, parents = None, []
        if self.surrogate is not None and number >= self.surrogate.starts_at(self.population_size):
            values = self.surrogate.next_configuration(self, number)
        if values is None and generation > 0:
            values, parents = self._breed(generation, rng)
        if values is None:
            values = self._random_unseen(rng)
        if values is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        self._seen.add(compat.values_hash(self, values))
        self._lineage[trial_id] = parents
        self._generation = generation
        return {"status": TrialStatus.RUNNING, "values": values}

    def _parent_pool(self, generation: int) -> tuple[list[Trial], np.ndarray, np.ndarray]:
        """The parent pool of `generation`, best first: trials, objectives, violations."""
        archive, objectives, violations = self._rank_archive()
        rows = archive.rows(self._pool)
        frozen = (
            self._pool_generation == generation
            and len(self._pool) >= self.population_size
            and rows is not None
        )
        if not frozen:
            rows = self._incremental_ranks.survival(self.population_size).order.tolist()
            self._pool = [archive.trials[row].trial_id for row in rows]
            self._pool_generation = generation
        return [archive.trials[row] for row in rows], objectives[rows], violations[rows]

    def _breed(self, generation: int, rng: random.Random) -> tuple[dict | None, list[str]]:
        if len(self._completed()) < 2:
            return None, []
        pool, objectives, violations = self._parent_pool(generation)
        ranks, crowding = pareto.rank_and_crowd(objectives, self.objective_directions(), violations)

        hps = self.hyperparameters.space
        for _ in range(_BREED_ATTEMPTS):
            first = pareto.binary_tournament(ranks, crowding, rng)
            second = pareto.binary_tournament(ranks, crowding, rng, exclude=first)
            parent1, parent2 = pool[first], pool[second]
            values1 = parent1.hyperparameters.values
            values2 = parent2.hyperparameters.values
            if rng.random() < self.crossover_probability:
                child = space.uniform_crossover(hps, values1, values2, rng)
                parents = [parent1.trial_id, parent2.trial_id]
            else:
                child = space.copy_configuration(hps, values1, rng)
                parents = [parent1.trial_id]
            child = space.mutate(hps, child, values1, values2, self.mutation_probability, rng)
            if compat.values_hash(self, child) not in self._seen:
                return child, parents
        return None, []

    def _random_unseen(self, rng: random.Random) -> dict[str, Any] | None:
        """A random configuration not seen before, or None if the space is exhausted."""
        for _ in range(_RANDOM_ATTEMPTS):
            values = space.random_configuration(self.hyperparameters.space, rng)
            if compat.values_hash(self, values) not in self._seen:
                return values
        for values in space.configurations(self.hyperparameters.space):
            if compat.values_hash(self, values) not in self._seen:
                return values
        return None

    def _record_values(self, trial: Trial) -> None:
        # The base class calls this when a trial is created and when it ends (the
        # hypermodel may have added hyperparameters); every version is kept as seen.
        super()._record_values(trial)
        self._seen.add(compat.values_hash(self, trial.hyperparameters.values))

    # -- surrogate mode (flatnas_tf.tuners.surrogate) --------------------------------

    def surrogate_metrics(self) -> list[str]:
        """The metrics a surrogate predicts: the objectives' (but `exact_metrics`).

        Override with the raw figures when objectives are computed from them.
        """
        return [name for name in self.objective_names if name not in self.exact_metrics]

    def surrogate_archive(self) -> Archive:
        """The completed trials as the surrogate learns from them."""
        archive, objectives, violations = self._rank_archive()
        trials = archive.trials
        names = self.surrogate_metrics()
        values = self.metric_values(trials, names).reshape(len(trials), len(names))
        return Archive(
            configurations=[dict(trial.hyperparameters.values) for trial in trials],
            metrics={name: values[:, column] for column, name in enumerate(names)},
            objectives=pareto.to_minimisation(objectives, self.objective_directions()),
            violations=violations,
        )

    def predicted_objectives(
        self, figures: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates' predicted and exact metrics -> (minimised objectives, violations).

        A constraint whose metric is neither predicted nor exact counts as met.

        Args:
            figures: Metric name -> one value per candidate.

        Returns:
            The objectives (minimised, (n, m)) and total violations (n,).
        """
        objectives = np.stack([figures[name] for name in self.objective_names], axis=1)
        minimised = pareto.to_minimisation(objectives, self.objective_directions())
        return minimised, self.predicted_violations(figures, len(minimised))

    def predicted_violations(self, figures: Mapping[str, np.ndarray], count: int) -> np.ndarray:
        """Total violation of the constraints whose metrics `figures` holds (others met)."""
        names = [name for name in self.constraints if name in figures]
        if not names:
            return np.zeros(count)
        values = np.stack([figures[name] for name in names], axis=1)
        return pareto.total_violation(values, [self.constraints[name] for name in names])

    def is_new(self, values: Mapping[str, Any]) -> bool:
        """Whether a configuration was never handed out nor ended."""
        return compat.values_hash(self, values) not in self._seen

    # -- reporting ------------------------------------------------------------------

    @_synchronized
    def update_trial(self, trial_id: str, metrics: Mapping[str, float], step: int = 0) -> Trial:
        # Register objective metrics with their declared direction (KerasTuner's
        # MultiObjective does not pass it on) and constraint metrics as "min".
        trial = self.trials[trial_id]
        directions = {name: "min" for name in self.constraints}
        directions.update(zip(self.objective_names, self.objective_directions(), strict=True))
        for name in metrics:
            if name in directions and not trial.metrics.exists(name):
                trial.metrics.register(name, direction=directions[name])
        with warnings.catch_warnings():
            # A value that was not measured is reported as NaN (it makes the
            # trial infeasible); KerasTuner's best-value bookkeeping warns on it.
            warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
            updated = super().update_trial(trial_id, metrics, step=step)
        if self._archive is not None:
            self._archive.refresh(trial_id)  # a completed trial that reported again
        return updated

    @_synchronized
    def end_trial(self, trial: Trial) -> None:
        super().end_trial(trial)  # scores (and archives) a COMPLETED trial
        if (
            self._archive is not None
            and self.trials[trial.trial_id].status != TrialStatus.COMPLETED
        ):
            self._archive.remove(trial.trial_id)  # e.g. INVALID: no metric reported

    @_synchronized
    def rank(self, trials: Sequence[Trial] | None = None, count: int | None = None) -> Ranking:
        """Ranks completed trials as selection does; changes nothing.

        The one ranking of the oracle: `objective_values` and
        `constraint_violations` of the trials, then `pareto.survival`. Scores,
        "best trials", the Pareto front and the parent pool all come from it.

        Args:
            trials: The trials to rank; default every completed trial, in
                creation order (what selection ranks).
            count: Order only the first `count` trials (>= 1; None: all).
                Ranks and the first front are always complete.

        Returns:
            A `Ranking` of the trials.

        Example:
        >>> ranking = oracle.rank()  # doctest: +SKIP
        >>> [t.trial_id for t in ranking.front()]  # doctest: +SKIP
        """
        if count is not None:
            check_integer(count, "count", 1)
        if trials is None:
            archive, objectives, violations = self._rank_archive()
            trials = archive.trials
            survival = self._incremental_ranks.survival(count)
        else:
            trials = list(trials)
            objectives, violations = self._evaluate(trials)
            return rank_trials(trials, objectives, violations, self.objective_directions(), count)
        return Ranking(
            trials, objectives, violations, survival.ranks, survival.order, survival.scores
        )

    def score_trial(self, trial: Trial) -> None:
        """Sets `trial.score`: the objective's value, or rank + position / front size.

        Called by KerasTuner when a trial completes. With one objective the
        score is its value (KerasTuner's meaning); with several it ranks the
        trial among all completed trials (lower is better). NaN, which makes
        the trial INVALID, when the trial reported no metric or is within
        every constraint with an objective missing or not finite.

        Args:
            trial: A completed trial of this oracle.
        """
        history = next(
            (trial.metrics.get_history(n) for n in self.objective_names if trial.metrics.exists(n)),
            [],
        )
        trial.best_step = history[-1].step if history else 0
        if not trial.metrics.metrics:
            trial.score = math.nan
            return
        archive = self._completed_archive()
        if trial.trial_id not in archive:
            archive.add(trial, self._number(trial.trial_id))
        _, objectives, violations = self._rank_archive()
        row = archive.rows([trial.trial_id])[0]
        if violations[row] == 0 and not np.isfinite(objectives[row]).all():
            trial.score = math.nan  # a failed measurement, not an infeasible result
        elif len(self.objectives) == 1:
            trial.score = float(objectives[row, 0])
        else:
            trial.score = self._incremental_ranks.score(row)

    @_synchronized
    def get_best_trials(self, num_trials: int = 1) -> list[Trial]:
        """The best completed trials: front 0 first, by crowding distance within a front.

        The order is `pareto.survival_order` over all completed trials (failed
        and running ones are never listed). Refreshes the scores of the
        trials it returns.

        Args:
            num_trials: How many trials to return at most.

        Returns:
            A list of at most `num_trials` completed trials.

        Example:
        >>> best = oracle.get_best_trials(5)  # doctest: +SKIP
        """
        ranking = self.rank(count=max(int(num_trials), 1))
        return _with_scores(ranking, ranking.order[:num_trials].tolist())

    @_synchronized
    def pareto_front(self) -> list[Trial]:
        """The feasible completed trials of the first front, in survival order.

        Refreshes the scores of the trials it returns.

        Returns:
            The Pareto-optimal feasible trials found so far ([] if none is
            feasible). Call it on the chief (it is not one of the gRPC calls).

        Example:
        >>> [t.hyperparameters.values for t in oracle.pareto_front()]  # doctest: +SKIP
        """
        ranking = self.rank(count=1)
        return _with_scores(ranking, ranking._front_rows())

    # -- state ----------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["nsga2"] = {
            "constraints": {name: float(bound) for name, bound in self.constraints.items()},
            "population_size": self.population_size,
            "crossover_probability": self.crossover_probability,
            "mutation_probability": self.mutation_probability,
            "generation": self._generation,
            "pool": list(self._pool),
            "pool_generation": self._pool_generation,
            "lineage": dict(self._lineage),  # lists never change after creation
            # Every configuration seen: the base class's "tried_so_far" plus these
            # (it forgets a trial's first hash when the hypermodel adds entries).
            "seen_beyond_tried_so_far": sorted(self._seen - compat.tried_so_far(self)),
        }
        if self.surrogate is not None:
            state["nsga2"]["surrogate"] = self.surrogate.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        ours = state["nsga2"]
        self.constraints = {str(name): float(bound) for name, bound in ours["constraints"].items()}
        self.population_size = int(ours["population_size"])
        self.crossover_probability = float(ours["crossover_probability"])
        probability = ours["mutation_probability"]
        self.mutation_probability = None if probability is None else float(probability)
        self._generation = int(ours["generation"])
        self._pool = [str(trial_id) for trial_id in ours["pool"]]
        self._pool_generation = int(ours["pool_generation"])
        self._lineage = {str(k): [str(i) for i in v] for k, v in ours["lineage"].items()}
        self._seen = set(compat.tried_so_far(self)) | set(ours["seen_beyond_tried_so_far"])
        if "surrogate" in ours:  # the saved queue and log win, as the other settings do
            self.surrogate = SurrogateProposer.from_state(ours["surrogate"])
        self._archive = None  # the trials are new objects
        self._numbers = {}
        self._ranked = None


class ParetoObjective(compat.MultiObjective):
    """KerasTuner's `MultiObjective`, named after its first objective.

    KerasTuner's tuner refuses a dict returned by `run_trial` that lacks the
    key `oracle.objective.name`; a `MultiObjective` is named
    "multi_objective" (the sum of the objectives, which a Pareto search never
    uses), so a dict of the objectives alone was refused. Every objective is
    still required, by the oracle's `update_trial`.
    """

    def __init__(self, objectives: list[keras_tuner.Objective]):
        super().__init__(objectives)
        self.name = objectives[0].name

    def __str__(self) -> str:
        return f"ParetoObjective: [{', '.join(str(o) for o in self.objectives)}]"


def keras_tuner_objective(objectives: list[keras_tuner.Objective]) -> keras_tuner.Objective:
    """What KerasTuner's `Oracle.objective` is for these objectives.

    Args:
        objectives: One or more objectives.

    Returns:
        The objective itself when there is one, else a `ParetoObjective`.
    """
    return objectives[0] if len(objectives) == 1 else ParetoObjective(objectives)


def _objectives(objective: Any) -> list[keras_tuner.Objective]:
    if objective is None:  # KerasTuner's default: the value a trial returns, minimised
        return [compat.DefaultObjective()]
    items = list(objective) if isinstance(objective, (list, tuple)) else [objective]
    if not items:
        raise ValueError("`objective` must list at least one keras_tuner.Objective; received [].")
    objectives = []
    for item in items:
        if isinstance(item, str):
            direction = keras_tuner.engine.metrics_tracking.infer_metric_direction(item)
            if direction is None:
                raise ValueError(
                    f"`objective` {item!r} has no known direction; pass "
                    f"keras_tuner.Objective({item!r}, 'min' or 'max')."
                )
            item = keras_tuner.Objective(item, direction)
        if not isinstance(item, keras_tuner.Objective) or item.direction not in pareto.DIRECTIONS:
            raise ValueError(
                "`objective` must contain keras_tuner.Objective instances with direction "
                f"'min' or 'max'; received {item!s}."
            )
        objectives.append(item)
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"`objective` names must be distinct; received {names}.")
    return objectives


def _constraints(constraints: Mapping[str, float] | None) -> dict[str, float]:
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ValueError(
            "`constraints` must be a dict of metric name -> upper bound; received "
            f"constraints={constraints!r}."
        )
    result = {}
    for name, bound in constraints.items():
        if not isinstance(name, str) or not is_number(bound) or not math.isfinite(bound):
            raise ValueError(
                "`constraints` must map metric names to finite upper bounds; received "
                f"{name!r}: {bound!r}."
            )
        result[name] = float(bound)
    return result
