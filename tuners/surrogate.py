"""Surrogate-assisted proposals: which untrained candidates are worth training.

NSGANetV2 and CNAS (FlatNAS's code) train an initial design of candidates,
then at every iteration fit predictors on the archive, run NSGA-II over the
space on the *predicted* objectives, and train only a few of the candidates
that search finds. `propose` is one such iteration, independent of any
oracle (an oracle calls it with its archive and its predictors):

    inputs    the space; the archive: trained configurations and their
              objective values (minimised) and constraint violations;
              `evaluate(configurations) -> (objectives, violations)`, the
              prediction (exact where a figure is known, e.g. params);
              `is_new(configuration)`, false for configurations already
              trained or queued; how many to propose; a seeded rng
    search    NSGA-II over the space with the oracle's operators
              (`flatnas_tf.tuners.space`, `pareto.binary_tournament`): the
              first population is the archive's best `population`
              configurations in survival order, topped up with random ones;
              each generation breeds `population` children (binary
              tournaments, uniform crossover with probability 0.9, mutation)
              that are predicted, and keeps the best `population` of parents
              and children (constrained survival); `generations` times
    choose    "hypervolume" (the default): from every configuration the
              search predicted that is new, `count` one at a time: the one
              whose predicted point adds the most hypervolume to the
              archive's front and the points already chosen (objectives
              scaled to [0, 1] over the archive and the candidates,
              reference 1.1 in each, infeasible points adding nothing); once
              none adds any, the next in survival order
              "spread" (CNAS's and NSGANetV2's subset selection): from the new
              members of the last population, `count` whose second
              objective, sorted together with the archive front's, leaves
              the most even gaps (least s.d. of the gaps); chosen one at a
              time (CNAS runs a small GA for the same aim)

Choosing by hypervolume contribution spends the few trainings where the
predicted front moves most; `benchmarks/oracle_quality.py` runs both.

The oracle mode (`SurrogateProposer`, held by `NSGA2Oracle(surrogate=...)`):
once `initial_trials` trials exist, each new trial takes the next queued
proposal; an empty queue is refilled by one iteration:

    fit       one `AdaptivePredictor` per metric the objectives are computed
              from (the oracle's `surrogate_metrics()`), on every completed
              trial with a finite value; metrics the oracle computes exactly
              (`exact_metrics`, e.g. params from the configuration) are not
              predicted. Adaptive switching (the pool cross-validated) runs
              at the first refit and again once the archive has grown by
              `reselect_growth` since it last ran; in between, the winner it
              chose is refitted on every point and its scores stand
              (`reselect_growth` 0: switching at every refit)
    trust     a predictor whose cross-validated score (mean - s.d. of Kendall
              tau) is below `min_score` is not trusted: the iteration
              proposes nothing and the oracle breeds as plain NSGA-II until
              the next refit (after `candidates` more trials)
    propose   `propose` above, `candidates` configurations, queued
    log       every iteration (trial number, points, each predictor's winner
              and cross-validated taus, trusted or not, seconds) is kept
              with the queue in the oracle's state, so a resumed search
              continues with the same queue
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from flatnas_tf.checks import check_choice, check_integer, check_number
from flatnas_tf.tuners import pareto, space
from flatnas_tf.tuners.predictors import POOL, POOR_TAU, AdaptivePredictor

#: Scaled reference point of the hypervolume contributions (each objective in [0, 1]).
REFERENCE = 1.1
#: Probability of uniform crossover in the inner search (the oracle's default).
CROSSOVER_PROBABILITY = 0.9
#: How an iteration chooses what to train among the predicted candidates.
CHOICES = ("hypervolume", "spread")

Configuration = Mapping[str, Any]
Evaluate = Callable[[Sequence[Configuration]], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What one iteration proposes to train.

    Attributes:
        configurations: The chosen configurations, best first.
        objectives: Their predicted objective values (minimised), (count, m).
        violations: Their predicted constraint violations, (count,).
        gains: The scaled hypervolume each added when it was chosen (0 for
            those chosen by survival order, and under the "spread" choice).
        predicted: How many configurations the inner search predicted.
    """

    configurations: list[dict[str, Any]]
    objectives: np.ndarray
    violations: np.ndarray
    gains: list[float]
    predicted: int


def _key(values: Configuration) -> str:
    return json.dumps(dict(values), sort_keys=True, default=str)


def propose(
    hyperparameters: Sequence[Any],
    archive: Sequence[Configuration],
    archive_objectives: np.ndarray,
    archive_violations: np.ndarray,
    evaluate: Evaluate,
    is_new: Callable[[Configuration], bool],
    count: int,
    rng: random.Random,
    population: int = 40,
    generations: int = 20,
    mutation_probability: float | None = None,
    choice: str = "hypervolume",
) -> Proposal:
    """One surrogate iteration: search the predicted objectives, choose what to train.

    Args:
        hyperparameters: The space (`HyperParameters.space`, parents first).
        archive: The trained configurations.
        archive_objectives: Their objective values, minimised, (n, m).
        archive_violations: Their total constraint violations, (n,).
        evaluate: Predicted (objectives, violations) of configurations, in the
            archive's units and directions.
        is_new: Whether a configuration may be proposed (not trained or queued).
        count: How many to propose (fewer if the search finds fewer new ones).
        rng: The random stream (the only source of randomness).
        population: The inner NSGA-II's population.
        generations: Its generations.
        mutation_probability: Per active hyperparameter; None: 1 / active.
        choice: How the `count` are chosen, one of `CHOICES` (module docstring).

    Returns:
        A `Proposal`.

    Example:
    ```python
    proposal = propose(hp.space, values, objectives, violations, evaluate,
                       is_new=lambda v: key(v) not in seen, count=8, rng=random.Random(0))
    ```
    """
    archive_objectives = np.asarray(archive_objectives, dtype=np.float64)
    archive_violations = np.asarray(archive_violations, dtype=np.float64)
    best = pareto.survival(archive_objectives, "min", archive_violations, count=population)
    first = [dict(archive[i]) for i in best.order]
    for _ in range(10 * population):
        if len(first) >= population:
            break
        first.append(space.random_configuration(hyperparameters, rng))
    predicted: dict[str, tuple[dict, np.ndarray, float]] = {}  # key -> (values, F, v)

    def predict(configurations: list[dict]) -> list[str]:
        """Predicts the configurations not predicted yet; returns their keys, without repeats."""
        keyed = {_key(c): c for c in configurations}
        fresh = {k: c for k, c in keyed.items() if k not in predicted}
        if fresh:
            objectives, violations = evaluate(list(fresh.values()))
            for (k, c), f, v in zip(fresh.items(), objectives, violations, strict=True):
                predicted[k] = (c, np.asarray(f, dtype=np.float64), float(v))
        return list(keyed)

    def figures(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.array([predicted[k][1] for k in keys]),
            np.array([predicted[k][2] for k in keys]),
        )

    members = predict(first)
    for _ in range(generations):
        objectives, violations = figures(members)
        ranks, crowding = pareto.rank_and_crowd(objectives, "min", violations)
        children = []
        for _ in range(population):
            first_parent = pareto.binary_tournament(ranks, crowding, rng)
            second_parent = pareto.binary_tournament(ranks, crowding, rng, exclude=first_parent)
            one, two = predicted[members[first_parent]][0], predicted[members[second_parent]][0]
            if rng.random() < CROSSOVER_PROBABILITY:
                child = space.uniform_crossover(hyperparameters, one, two, rng)
            else:
                child = space.copy_configuration(hyperparameters, one, rng)
            child = space.mutate(hyperparameters, child, one, two, mutation_probability, rng)
            children.append(child)
        union = list(dict.fromkeys(members + predict(children)))
        objectives, violations = figures(union)
        kept = pareto.survival(objectives, "min", violations, count=population).order
        members = [union[i] for i in kept]
    if choice == "spread":
        candidates = [predicted[k] for k in members if is_new(predicted[k][0])]
        chosen = _by_spread(candidates, archive_objectives, archive_violations, count)
        gains = [0.0] * len(chosen)
    else:
        candidates = [entry for entry in predicted.values() if is_new(entry[0])]
        chosen, gains = _by_hypervolume(candidates, archive_objectives, archive_violations, count)
    return Proposal(
        configurations=[dict(candidates[i][0]) for i in chosen],
        objectives=np.array([candidates[i][1] for i in chosen]).reshape(
            len(chosen), archive_objectives.shape[1]
        ),
        violations=np.array([candidates[i][2] for i in chosen]),
        gains=gains,
        predicted=len(predicted),
    )


def _by_spread(candidates, archive_objectives, archive_violations, count) -> list[int]:
    """CNAS's subset selection, greedily: the most even gaps in the second objective."""
    ranks = pareto.non_dominated_ranks(archive_objectives, "min", archive_violations)
    feasible = (archive_violations <= 0) & np.all(np.isfinite(archive_objectives), axis=1)
    front = archive_objectives[(ranks == 0) & feasible, 1]
    second = np.array([entry[1][1] for entry in candidates])
    chosen: list[int] = []
    while len(chosen) < min(count, len(candidates)):
        best, best_spread = None, np.inf
        for i in range(len(candidates)):
            if i in chosen:
                continue
            gaps = np.diff(np.sort(np.concatenate([front, second[chosen], second[i : i + 1]])))
            spread = float(np.std(gaps)) if len(gaps) else 0.0
            if spread < best_spread - 1e-12:
                best, best_spread = i, spread
        chosen.append(best)
    return chosen


def _by_hypervolume(candidates, archive_objectives, archive_violations, count):
    """Greedy hypervolume contributions, then survival order (module docstring)."""
    chosen: list[int] = []
    gains: list[float] = []
    if candidates:
        objectives = np.array([entry[1] for entry in candidates])
        violations = np.array([entry[2] for entry in candidates])
        feasible = archive_violations <= 0
        known = archive_objectives[feasible & np.all(np.isfinite(archive_objectives), axis=1)]
        both = np.vstack([known, objectives[np.all(np.isfinite(objectives), axis=1)]])
        if not len(both):  # nothing finite to scale by
            both = np.zeros((1, objectives.shape[1]))
        low, high = both.min(axis=0), both.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        scaled, known = (objectives - low) / span, (known - low) / span
        reference = np.full(objectives.shape[1], REFERENCE)

        def volume(points: np.ndarray) -> float:
            return pareto.hypervolume(points, "min", reference) if len(points) else 0.0

        current = volume(known)
        order = pareto.survival(objectives, "min", violations).order.tolist()
        while len(chosen) < min(count, len(candidates)):
            front = np.vstack([known, scaled[chosen]]) if chosen else known
            best, best_gain = None, 0.0
            for i in order:
                if i in chosen or violations[i] > 0:
                    continue
                gain = volume(np.vstack([front, scaled[i : i + 1]])) - current
                if gain > best_gain + 1e-12:
                    best, best_gain = i, gain
            if best is None:  # nothing adds volume: the next in survival order
                best = next(i for i in order if i not in chosen)
            chosen.append(best)
            gains.append(best_gain)
            current += best_gain
    return chosen, gains


@dataclasses.dataclass(frozen=True)
class SurrogateSettings:
    """How a surrogate-assisted search proposes (see the module docstring).

    Attributes:
        initial_trials: Trials before the first prediction (the initial
            design: random, then bred as plain NSGA-II); None: one population.
        candidates: Configurations chosen per iteration (trained before the
            next refit).
        population: The inner NSGA-II's population.
        generations: The inner NSGA-II's generations.
        pool: The predictors adaptive switching chooses from.
        folds: Cross-validation folds of the switching.
        reselect_growth: Run the switching again once the archive has grown
            by this fraction since it last ran; refit its winner in between
            (0: at every refit).
        min_score: The cross-validated score (mean - s.d. of tau) below which
            a predictor is not trusted.
        choice: How the candidates are chosen, one of `CHOICES`.

    Example:
    ```python
    tuner = FlatNASTuner(hypermodel, surrogate=SurrogateSettings(initial_trials=40, candidates=8))
    ```
    """

    initial_trials: int | None = None
    candidates: int = 8
    population: int = 40
    generations: int = 20
    pool: tuple[str, ...] = POOL
    folds: int = 10
    reselect_growth: float = 0.25
    min_score: float = POOR_TAU
    choice: str = "hypervolume"

    def __post_init__(self):
        check_integer(self.initial_trials, "initial_trials", 4, optional=True)
        check_integer(self.candidates, "candidates", 1)
        check_integer(self.population, "population", 2)
        check_integer(self.generations, "generations", 0)
        check_integer(self.folds, "folds", 2)
        check_number(self.reselect_growth, "reselect_growth", 0)
        check_number(self.min_score, "min_score", -1, 1)
        check_choice(self.choice, "choice", CHOICES)
        object.__setattr__(self, "pool", tuple(self.pool))
        AdaptivePredictor([], pool=self.pool)  # refuses unknown members now

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        return {**dataclasses.asdict(self), "pool": list(self.pool)}


@dataclasses.dataclass(frozen=True)
class Archive:
    """What an iteration learns from: the completed trials, in creation order.

    Attributes:
        configurations: Their hyperparameter values.
        metrics: Per metric to predict, each trial's value (NaN if missing).
        objectives: Their objective values, minimised, (n, m).
        violations: Their total constraint violations, (n,).
    """

    configurations: list[dict[str, Any]]
    metrics: dict[str, np.ndarray]
    objectives: np.ndarray
    violations: np.ndarray


class Host(Protocol):
    """What the surrogate mode needs from its oracle (`NSGA2Oracle` provides it).

    Attributes:
        seed: The search's seed.
        hyperparameters: The search space (`keras_tuner.HyperParameters`).
        exact_metrics: Metrics computed from a configuration, not predicted
            (e.g. {"params": count}).
    """

    seed: int
    hyperparameters: Any
    exact_metrics: Mapping[str, Callable[[Configuration], float]]

    def surrogate_archive(self) -> Archive:
        """The completed trials, what the predictors learn from."""

    def predicted_objectives(
        self, figures: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates' {metric: values} -> their (minimised objectives, violations)."""

    def is_new(self, values: Configuration) -> bool:
        """Whether a configuration was never trained nor handed out."""


def describe_refit(entry: Mapping[str, Any]) -> str:
    """One line for a refit of the log: its points, predictors and outcome.

    Example:
    >>> describe_refit({"trial": 20, "points": 20, "trusted": True, "proposed": 8,
    ...     "seconds": 1.5, "predictors": {"val_accuracy": {"winner": "rbf", "tau": 0.61}}})
    'surrogate refit on 20 trials: val_accuracy tau 0.61 (rbf); 8 candidates queued, 1.5 s'
    """
    predictors = ", ".join(
        f"{name} tau {p['tau']:.2f} ({p['winner']})" for name, p in entry["predictors"].items()
    )
    if entry["trusted"]:
        outcome = f"{entry['proposed']} candidates queued"
    else:
        outcome = f"not trusted ({entry['reason']}): NSGA-II breeds"
    head = f"surrogate refit on {entry['points']} trials: "
    return head + (f"{predictors}; " if predictors else "") + f"{outcome}, {entry['seconds']:g} s"


class SurrogateProposer:
    """The surrogate mode of an oracle: settings, the queue of proposals, the log.

    Args:
        settings: The `SurrogateSettings`.
    """

    def __init__(self, settings: SurrogateSettings):
        self.settings = settings
        self.queue: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.handed_out: list[int] = []  # numbers of the trials that took a proposal

    def starts_at(self, population_size: int) -> int:
        """The number of the first trial that takes a proposal."""
        initial = self.settings.initial_trials
        return population_size if initial is None else initial

    def next_configuration(self, host: Host, number: int) -> dict[str, Any] | None:
        """The next queued proposal, refilling the queue by one iteration if empty.

        Args:
            host: The oracle (see `Host`).
            number: The new trial's position in creation order.

        Returns:
            A configuration, or None when the last iteration proposed nothing
            (too few points, a predictor not trusted, nothing new found) and
            fewer than `candidates` trials have been created since: the
            oracle then breeds as plain NSGA-II.
        """
        while self.queue:
            values = self.queue.pop(0)
            if host.is_new(values):
                self.handed_out.append(number)
                return values
        if self.log and number - self.log[-1]["trial"] < self.settings.candidates:
            return None  # an untrusted or empty iteration waits for more trials
        values = self._iterate(host, number)
        if values is not None:
            self.handed_out.append(number)
        return values

    def _iterate(self, host: Host, number: int) -> dict[str, Any] | None:
        settings = self.settings
        start = time.perf_counter()
        archive = host.surrogate_archive()
        space = host.hyperparameters.space
        entry: dict[str, Any] = {
            "trial": number,
            "points": len(archive.configurations),
            "min_score": settings.min_score,
            "predictors": {},
        }
        predictors = {}
        for name, values in archive.metrics.items():
            finite = np.isfinite(values)
            if finite.sum() < 4:
                entry.update(trusted=False, reason=f"fewer than 4 finite values of {name}")
                break
            points = [c for c, f in zip(archive.configurations, finite, strict=True) if f]
            predictor = AdaptivePredictor(
                space, pool=settings.pool, folds=settings.folds, seed=host.seed
            )
            chosen = self._switching_in_force(name, len(points))
            if chosen is not None:
                predictor.fit_member(points, values[finite], chosen["winner"])
                entry["predictors"][name] = chosen
            else:
                selection = predictor.fit(points, values[finite]).selection
                entry["predictors"][name] = {
                    "winner": selection.winner,
                    "tau": selection.tau,
                    "score": selection.score,
                    "members": {m: s.score for m, s in selection.members.items()},
                    "switched_at": len(points),
                }
            predictors[name] = predictor
        else:
            scores = {name: e["score"] for name, e in entry["predictors"].items()}
            untrusted = [name for name, score in scores.items() if score < settings.min_score]
            entry["trusted"] = not untrusted
            if untrusted:
                entry["reason"] = f"cross-validated score below {settings.min_score}: {untrusted}"
        entry["fit_s"] = round(time.perf_counter() - start, 3)
        proposed: list[dict[str, Any]] = []
        if entry["trusted"]:

            def evaluate(candidates):
                figures = {name: p.predict(candidates) for name, p in predictors.items()}
                for name, compute in host.exact_metrics.items():
                    figures[name] = np.array([float(compute(c)) for c in candidates])
                return host.predicted_objectives(figures)

            proposal = propose(
                space,
                archive.configurations,
                archive.objectives,
                archive.violations,
                evaluate,
                host.is_new,
                settings.candidates,
                random.Random(f"surrogate/{host.seed}/{number}"),
                population=settings.population,
                generations=settings.generations,
                choice=settings.choice,
            )
            proposed = proposal.configurations
            entry["predicted"] = proposal.predicted
        entry["proposed"] = len(proposed)
        entry["seconds"] = round(time.perf_counter() - start, 3)
        self.log.append(entry)
        self.queue = proposed[1:]
        return proposed[0] if proposed else None

    def _switching_in_force(self, metric: str, points: int) -> dict[str, Any] | None:
        """The last switching's record for `metric` while the archive is within its growth.

        None when the switching must run: none ran yet, or the archive of
        `points` has grown by `reselect_growth` since (read from the log, so
        that a resumed search decides as the uninterrupted one).
        """
        for entry in reversed(self.log):
            chosen = entry.get("predictors", {}).get(metric)
            if chosen is None:
                continue
            switched_at = chosen.get("switched_at", entry["points"])
            if points < switched_at * (1 + self.settings.reselect_growth):
                return {**chosen, "switched_at": switched_at, "refitted": True}
            return None
        return None

    def get_state(self) -> dict[str, Any]:
        """The settings, queue and log, as plain JSON."""
        return {
            "settings": self.settings.to_dict(),
            "queue": self.queue,
            "log": self.log,
            "handed_out": self.handed_out,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SurrogateProposer:
        """A proposer as `get_state` saved it."""
        proposer = cls(SurrogateSettings(**state["settings"]))
        proposer.queue = [dict(values) for values in state["queue"]]
        proposer.log = [dict(entry) for entry in state["log"]]
        proposer.handed_out = [int(number) for number in state["handed_out"]]
        return proposer
