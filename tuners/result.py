"""A flatnas-tf search as a library object: trials, ranking, front, hypervolume, models.

`SearchResult.load(directory)` reads a search from its files alone, finished
or still running, and never writes to it (as Optuna's `load_study`). It needs
neither TensorFlow nor KerasTuner until a model is built:

    files   = oracle.json + trial_*/trial.json, read by `records.read_project`
              with the durable oracle's rules, nothing repaired: a trial whose
              file cannot be read is a FAILED record saying why, a trial whose
              creation was cut short is left out, an unfinished trial shows
              no figures; an oracle.json caught half-written (a search from
              before writes were atomic) is read again, `attempts` times
    settings = mode, alpha, max_params, population size and constraints, as
              the search saved them
    trials  = every trial as a `TrialRecord`, in creation order (ascending
              ids, as the oracle numbers them), every status
    rank(alpha, mode)
            = `objectives.objective_values` and the constraint violations of
              the completed trials, `ranking.rank_trials` (the oracle's own
              functions); nothing is stored, so re-ranking never changes
              what was loaded
    front   = rank(...).front(): feasible completed trials of rank 0
    HV(g)   = pareto.hypervolume of the completed, feasible trials of
              generations <= g, in the raw objectives
                  (val_accuracy "max", robustness "min", params "min")
              reference point r = (0, 100, P):
                  accuracy 0; R = 100 percentage points (R = 100 * mean |acc0 -
                  acc_m| can never exceed it); P = max_params, or without a
                  limit 1.1 x the largest params of a counted trial
    HV_frac(g) = HV(g) / (1 * 100 * P)        the fraction of the reference box

`FlatNASTuner.result()` is the same object made from the running oracle's
state. Models: `load_model(trial)` builds the trial's architecture with the
hypermodel the search used and loads its checkpoint
(`trial_<id>/checkpoint.weights.h5`), as `FlatNASTuner.load_model` does;
`export(trial, path)` writes it with `flatnas_tf.persistence.export`. A result loaded
without a hypermodel reads and ranks, but cannot build models.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flatnas_tf.figures import CHANCE_METRIC
from flatnas_tf.tuners import objectives, pareto, records
from flatnas_tf.tuners.ranking import Ranking, rank_trials
from flatnas_tf.tuners.records import TrialRecord

if TYPE_CHECKING:
    import keras
    import keras_tuner

    from flatnas_tf.tuners.tuner import FlatNASOracle

__all__ = [
    "CHECKPOINT_FILE",
    "HV_OBJECTIVES",
    "PARAMS_MARGIN",
    "R_REFERENCE",
    "HypervolumeHistory",
    "SearchResult",
]

#: A trial's weights, in its trial directory (KerasTuner's checkpoint name).
CHECKPOINT_FILE = "checkpoint.weights.h5"
#: The raw objectives of the hypervolume, with their directions.
HV_OBJECTIVES = (("val_accuracy", "max"), ("robustness", "min"), ("params", "min"))
#: Reference value of R (percentage points) for the hypervolume: R's largest possible value.
R_REFERENCE = 100.0
#: Reference params = this factor x the largest counted params when there is no max_params.
PARAMS_MARGIN = 1.1


@dataclasses.dataclass(frozen=True)
class HypervolumeHistory:
    """The hypervolume of a search after each generation (module docstring).

    Attributes:
        reference: The reference point (accuracy, R, params), or None when no
            trial can be counted and there is no parameter limit.
        generations: The generations, ascending.
        counted: Trials counted up to each generation.
        values: The hypervolume up to each generation.
    """

    reference: tuple[float, float, float] | None
    generations: list[int]
    counted: list[int]
    values: list[float]

    @property
    def box(self) -> float:
        """Volume between the ideal point (accuracy 1, R 0, params 0) and the reference."""
        if self.reference is None:
            return math.nan
        accuracy, robustness, params = self.reference
        return (1.0 - accuracy) * robustness * params

    @property
    def fractions(self) -> list[float]:
        """Each value as a fraction of `box`."""
        return [value / self.box for value in self.values]


class SearchResult:
    """A flatnas-tf search: its trials, figures, ranking, front, hypervolume and models.

    Get one with `SearchResult.load(directory)` (read-only, also while the
    search runs) or `FlatNASTuner.result()`. Trials are `TrialRecord`s: plain
    records of id, status, hyperparameter values and metrics; `figures(trial)`
    gives their raw figures and `to_rows()` one plain dict per trial
    (`pandas.DataFrame(result.to_rows())` if you use pandas).

    Args:
        oracle_state: The oracle's state (`oracle.json`, `get_state()` of a
            `FlatNASOracle`).
        trials: The trials, any order (sorted by id here).
        project_dir: The search's project directory (for checkpoints); None
            for a result with no files.
        hypermodel: The hypermodel the search built its candidates with;
            needed by `load_model` and `export` only.

    Raises:
        ValueError: The state was not written by a `FlatNASOracle`.

    Example:
    ```python
    result = SearchResult.load("runs/c10/search")
    for trial in result.front():
        print(trial.trial_id, result.figures(trial)["val_accuracy"])
    result.rank(alpha=0.8).best(3)  # re-ranked, nothing written
    ```
    """

    def __init__(
        self,
        oracle_state: Mapping[str, Any],
        trials: Iterable[TrialRecord],
        project_dir: str | os.PathLike[str] | None = None,
        hypermodel: keras_tuner.HyperModel | None = None,
    ):
        try:
            flatnas, nsga2 = oracle_state["flatnas"], oracle_state["nsga2"]
            self._mode = str(flatnas["mode"])
            self._alpha = float(flatnas["alpha"])
            self._max_params = flatnas["max_params"]
            self._population_size = int(nsga2["population_size"])
            self._constraints = {str(k): float(v) for k, v in nsga2["constraints"].items()}
            self._lineage = {str(k): [str(i) for i in v] for k, v in nsga2["lineage"].items()}
            surrogate = nsga2.get("surrogate") or {"log": [], "handed_out": []}
            self._refits = [dict(entry) for entry in surrogate["log"]]
            order = list(oracle_state.get("start_order", []))
            self._proposed = [order[n] for n in surrogate["handed_out"] if n < len(order)]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(
                "the oracle state was not written by a FlatNASOracle (no valid 'flatnas' and "
                f"'nsga2' settings: {type(error).__name__}: {error}); pass the project "
                "directory of a flatnas-tf search."
            ) from None
        self._trials = {trial.trial_id: trial for trial in sorted(trials, key=_creation)}
        self._position = {trial_id: n for n, trial_id in enumerate(self._trials)}
        self._project_dir = None if project_dir is None else Path(project_dir)
        self._hypermodel = hypermodel

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        hypermodel: keras_tuner.HyperModel | None = None,
        attempts: int = 5,
        delay: float = 0.2,
    ) -> SearchResult:
        """Reads a search from its project directory; writes nothing.

        Args:
            directory: The project directory (`<directory>/<project_name>` of
                the tuner; `<out>/search` of `flatnas-tf search`), the one
                holding `oracle.json`.
            hypermodel: The search's hypermodel, for `load_model`/`export`.
            attempts: Reads of an `oracle.json` that is not valid JSON before
                giving up (>= 1).
            delay: Seconds between those reads.

        Returns:
            The search as it is on disk; running trials stay RUNNING.

        Raises:
            flatnas_tf.tuners.records.SearchFilesError: (a ValueError) The
                directory holds no `oracle.json`, it was not written by a
                `FlatNASOracle`, or it stays unreadable.

        Example:
        ```python
        result = SearchResult.load("runs/c10/search")
        ```
        """
        path = Path(directory).expanduser().resolve()
        if not (path / records.ORACLE_FILE).is_file():
            raise records.SearchFilesError(
                f"{path} is not a flatnas-tf search directory (no oracle.json); pass the project "
                "directory <directory>/<project_name> of a FlatNASTuner (<out>/search of "
                "`flatnas-tf search`)."
            )
        oracle_file = path / records.ORACLE_FILE
        attempts = max(1, int(attempts))
        for attempt in range(attempts):
            files = records.read_project(path, TrialRecord.from_state)
            mid_write = files.oracle_problem is not None and files.oracle_problem.startswith(
                ("not valid JSON", "empty")
            )
            if not mid_write or attempt == attempts - 1:
                break
            time.sleep(delay)
        if mid_write:
            raise records.SearchFilesError(
                f"{oracle_file} is {files.oracle_problem} after {attempts} reads {delay} s "
                "apart; if the search is running, try again; otherwise the file is damaged."
            )
        if files.oracle_state is None:
            raise records.SearchFilesError(
                f"{oracle_file} was not written by a FlatNASOracle ({files.oracle_problem}); "
                "pass the project directory of a flatnas-tf search."
            )
        trials = [
            _as_read(trial, files.oracle_state["start_order"], files.committed)
            for trial in files.trials.values()
        ]
        trials += [TrialRecord.lost(trial_id, reason) for trial_id, reason in files.lost.items()]
        try:
            return cls(files.oracle_state, [t for t in trials if t is not None], path, hypermodel)
        except ValueError as error:
            raise records.SearchFilesError(f"{oracle_file}: {error}") from None

    @classmethod
    def from_oracle(
        cls,
        oracle: FlatNASOracle,
        project_dir: str | os.PathLike[str] | None = None,
        hypermodel: keras_tuner.HyperModel | None = None,
    ) -> SearchResult:
        """A snapshot of a live oracle's search (what `FlatNASTuner.result()` returns).

        Args:
            oracle: The search's `FlatNASOracle`.
            project_dir: Its project directory (for checkpoints).
            hypermodel: The search's hypermodel, for `load_model`/`export`.

        Returns:
            The search as the oracle holds it now; later trials are not seen.
        """
        trials = [TrialRecord.from_state(trial.get_state()) for trial in oracle.trials.values()]
        return cls(oracle.get_state(), trials, project_dir, hypermodel)

    # -- settings -------------------------------------------------------------------

    @property
    def project_dir(self) -> Path | None:
        """The search's project directory (None for a result with no files)."""
        return self._project_dir

    @property
    def mode(self) -> str:
        """The search's mode: "flatnas" or "pareto"."""
        return self._mode

    @property
    def alpha(self) -> float:
        """The alpha the search ranks with (mode "flatnas")."""
        return self._alpha

    @property
    def max_params(self) -> float | None:
        """The parameter limit (None for none)."""
        return self._max_params

    @property
    def chance_significance(self) -> float | None:
        """The significance of the above-chance constraint (None for none)."""
        return self._constraints.get(CHANCE_METRIC)

    @property
    def population_size(self) -> int:
        """Trials per generation."""
        return self._population_size

    @property
    def surrogate_refits(self) -> list[dict[str, Any]]:
        """Each refit of a surrogate-assisted search (`flatnas_tf.tuners.surrogate`).

        Trial number, points, each predictor's winner, cross-validated tau and
        score, trusted or not (and why), candidates queued, seconds; [] for a
        plain NSGA-II search.
        """
        return [dict(entry) for entry in self._refits]

    @property
    def surrogate_proposed(self) -> list[str]:
        """The ids of the trials the surrogate proposed ([] for a plain search)."""
        return list(self._proposed)

    def objectives(self, mode: str | None = None) -> list[tuple[str, str]]:
        """(name, direction) of each objective the search (or `mode`) ranks on."""
        return objectives.mode_objectives(self.mode if mode is None else mode)

    # -- trials ---------------------------------------------------------------------

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial, in creation order."""
        return list(self._trials.values())

    @property
    def completed(self) -> list[TrialRecord]:
        """The completed trials, in creation order (what ranking ranks)."""
        return [t for t in self._trials.values() if t.status == records.COMPLETED]

    def trial(self, trial_id: str | int) -> TrialRecord:
        """The trial with this id, or with this number ("7" or 7 finds trial "007").

        Raises:
            KeyError: There is none; the message lists the ids there are.
        """
        trial = self._trials.get(str(trial_id))
        if trial is None and str(trial_id).isdigit():
            number = int(trial_id)
            trial = next((t for i, t in self._trials.items() if int(i) == number), None)
        if trial is None:
            known = ", ".join(self._trials) or "none"
            raise KeyError(f"no trial {trial_id!r} in this search (trials: {known}).")
        return trial

    def generation_of(self, trial: TrialRecord | str) -> int:
        """A trial's generation: its position in creation order // population size."""
        return self._position[_trial_id(trial)] // self.population_size

    def parents_of(self, trial: TrialRecord | str) -> list[str]:
        """The ids of the trials a trial was bred from ([] for a random one)."""
        return list(self._lineage.get(_trial_id(trial), []))

    @staticmethod
    def figures(trial: TrialRecord) -> dict[str, float]:
        """Every recorded figure of a trial (`FIGURES`, NaN where not measured)."""
        return trial.figures

    # -- ranking --------------------------------------------------------------------

    def rank(self, alpha: float | None = None, mode: str | None = None) -> Ranking:
        """The completed trials ranked as the search would under `alpha`/`mode`.

        Args:
            alpha: Error/flatness trade-off in [0, 1] (mode "flatnas"); None:
                the search's.
            mode: "flatnas" or "pareto"; None: the search's.

        Returns:
            A `Ranking` (survival order, ranks, scores, front). Nothing on the
            loaded search changes.

        Example:
        ```python
        [t.trial_id for t in result.rank(alpha=1.0).front()]  # accuracy only
        ```
        """
        mode = self.mode if mode is None else mode
        alpha = objectives.check_mode_and_alpha(mode, self.alpha if alpha is None else alpha)
        completed = self.completed
        values = objectives.objective_values(
            lambda names: self._metric_values(completed, names),
            mode,
            alpha,
            self.population_size,
        )
        directions = [direction for _, direction in objectives.mode_objectives(mode)]
        return rank_trials(completed, values, self._violations(completed), directions)

    def front(self, alpha: float | None = None, mode: str | None = None) -> list[TrialRecord]:
        """The Pareto front: feasible completed trials of rank 0, in survival order.

        Args:
            alpha: As in `rank`.
            mode: As in `rank`.

        Returns:
            The trials on the front ([] if none is feasible).
        """
        return self.rank(alpha, mode).front()

    def alpha_norm(self) -> float:
        """mean(error) / mean(R) of the completed trials, the scale mode "flatnas" gives R."""
        completed = self.completed
        accuracy, robustness = self._metric_values(completed, ("val_accuracy", "robustness")).T
        return objectives.alpha_norm(accuracy, robustness, self.population_size)

    def hypervolume(self) -> HypervolumeHistory:
        """The hypervolume after each generation (module docstring).

        Returns:
            A `HypervolumeHistory`; reference None when nothing can be counted.
        """
        names = [name for name, _ in HV_OBJECTIVES]
        directions = [direction for _, direction in HV_OBJECTIVES]
        completed = self.completed
        counted = []
        for trial, values, violation in zip(
            completed,
            self._metric_values(completed, names),
            self._violations(completed),
            strict=True,
        ):
            if violation == 0 and np.isfinite(values).all():
                counted.append((self.generation_of(trial), values.tolist()))
        generations = sorted({self.generation_of(trial) for trial in self._trials})
        if self.max_params is not None:
            params_reference = float(self.max_params)
        elif counted:
            params_reference = PARAMS_MARGIN * max(values[2] for _, values in counted)
        else:
            empty = [0] * len(generations)
            return HypervolumeHistory(None, generations, empty, [0.0] * len(generations))
        reference = (0.0, R_REFERENCE, params_reference)
        sizes, volumes = [], []
        for generation in generations:
            points = [values for g, values in counted if g <= generation]
            sizes.append(len(points))
            volumes.append(
                pareto.hypervolume(np.reshape(points, (-1, 3)), directions, reference)
                if points
                else 0.0
            )
        return HypervolumeHistory(reference, generations, sizes, volumes)

    def to_rows(self, alpha: float | None = None, mode: str | None = None) -> list[dict[str, Any]]:
        """One plain dict per trial (every status, creation order).

        Keys: trial_id, status, generation, rank and score (None unless
        completed; sorting by score gives the survival order), on_front,
        feasible, every figure of `FIGURES`, `objective_<name>` per
        objective of the ranking, and `hp_<name>` per hyperparameter.

        Args:
            alpha: As in `rank`.
            mode: As in `rank`.

        Returns:
            A list of dicts, ready for `csv.DictWriter` or `pandas.DataFrame`.
        """
        ranking = self.rank(alpha, mode)
        row_of = {trial.trial_id: row for row, trial in enumerate(ranking.trials)}
        front = {trial.trial_id for trial in ranking.front()}
        names = [name for name, _ in self.objectives(mode)]
        feasible = ranking.feasible
        rows = []
        for trial in self.trials:
            row = row_of.get(trial.trial_id)
            objectives_row = ranking.objectives[row] if row is not None else [math.nan] * len(names)
            rows.append(
                {
                    "trial_id": trial.trial_id,
                    "status": trial.status,
                    "generation": self.generation_of(trial),
                    "rank": None if row is None else int(ranking.ranks[row]),
                    "score": None if row is None else float(ranking.scores[row]),
                    "on_front": trial.trial_id in front,
                    "feasible": bool(row is not None and feasible[row]),
                    **self.figures(trial),
                    **{
                        f"objective_{name}": float(value)
                        for name, value in zip(names, objectives_row, strict=True)
                    },
                    **{f"hp_{name}": value for name, value in trial.values.items()},
                }
            )
        return rows

    def write_report(
        self,
        out_dir: str | os.PathLike[str],
        alpha: float | None = None,
        plots: bool = True,
        ood: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Path]:
        """Writes this search's report: pareto.json, trials.csv, report.md and the plots.

        What `flatnas-tf report` writes (`flatnas_tf.tuners.report.write_report`).

        Args:
            out_dir: Directory to write into (created if needed).
            alpha: Re-rank under this alpha first (nothing is written back).
            plots: Whether to draw the PNG plots (needs matplotlib).
            ood: Trial id -> `OODResult.to_dict()`, for the OOD section.

        Returns:
            File name -> path of each file written.

        Example:
        ```python
        SearchResult.load("runs/digits/search").write_report("runs/digits/report")
        ```
        """
        from flatnas_tf.tuners.report import write_report

        return write_report(self, out_dir, alpha=alpha, plots=plots, ood=dict(ood or {}))

    # -- models ---------------------------------------------------------------------

    def load_model(self, trial: TrialRecord | str) -> keras.Model:
        """A trained trial's model, with the weights its figures were measured on.

        Args:
            trial: A trial (or its id) that completed training.

        Returns:
            The compiled Keras model (a `SAMModel` for the default spaces).

        Raises:
            ValueError: No hypermodel was given, or the trial has no
                checkpoint (over-budget and failed trials are never trained).

        Example:
        ```python
        model = SearchResult.load(path, hypermodel=space).load_model("007")
        ```
        """
        trial = self.trial(_trial_id(trial))
        if self._hypermodel is None:
            raise ValueError(
                "this SearchResult has no hypermodel: pass the search's hypermodel to "
                "SearchResult.load(directory, hypermodel=...) to build its models."
            )
        checkpoint = None if self.project_dir is None else self.trial_dir(trial) / CHECKPOINT_FILE
        if checkpoint is None or not checkpoint.is_file():
            raise ValueError(
                f"trial {trial.trial_id} has no trained weights (status {trial.status}; "
                "over-budget and failed trials are never trained)."
            )
        from flatnas_tf.tuners.tuner import load_trial_weights

        model = self._hypermodel.build(trial.hyperparameters)
        return load_trial_weights(model, checkpoint)

    def trial_dir(self, trial: TrialRecord | str) -> Path:
        """The directory of a trial's files (trial.json, checkpoint)."""
        if self.project_dir is None:
            raise ValueError("this SearchResult has no project directory.")
        return self.project_dir / f"trial_{_trial_id(trial)}"

    def export(
        self,
        trial: TrialRecord | str,
        path: str | os.PathLike[str],
        tflite: bool = False,
        metadata: dict[str, Any] | None = None,
        model: keras.Model | None = None,
    ) -> list[str]:
        """Exports a trial's model: SavedModel, `.keras` and `manifest.json`.

        Args:
            trial: A trained trial (or its id).
            path: The export directory (created).
            tflite: Also convert to TFLite (`model.tflite`) when it converts.
            metadata: Extra manifest entries (e.g. label names, data set).
            model: The trial's model when already loaded (`load_model`);
                None loads it.

        Returns:
            Notes for the user (e.g. a TFLite conversion that failed).

        Example:
        ```python
        result.export("007", "models/trial_007")
        ```
        """
        from flatnas_tf.persistence import export as exporting

        trial = self.trial(_trial_id(trial))
        model = self.load_model(trial) if model is None else model
        manifest = {
            "trial_id": trial.trial_id,
            "hyperparameters": dict(trial.values),
            "figures": self.figures(trial),
            **(metadata or {}),
        }
        return exporting.export_model(model, Path(path), manifest, tflite=tflite)

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _metric_values(trials: list[TrialRecord], names: Iterable[str]) -> np.ndarray:
        names = list(names)
        values = [[trial.metric(name) for name in names] for trial in trials]
        return np.array(values, dtype=np.float64).reshape(len(trials), len(names))

    def _violations(self, trials: list[TrialRecord]) -> np.ndarray:
        if not self._constraints:
            return np.zeros(len(trials))
        names = list(self._constraints)
        bounds = [self._constraints[name] for name in names]
        return pareto.total_violation(self._metric_values(trials, names), bounds)

    def __repr__(self) -> str:
        return (
            f"SearchResult({str(self.project_dir)!r}, mode={self.mode!r}, alpha={self.alpha:g}, "
            f"trials={len(self._trials)}, completed={len(self.completed)})"
        )


def _trial_id(trial: TrialRecord | str) -> str:
    return trial.trial_id if isinstance(trial, TrialRecord) else str(trial)


def _creation(trial: TrialRecord) -> int:
    return int(trial.trial_id)


def _as_read(
    trial: TrialRecord, start_order: list[str], committed: int | None
) -> TrialRecord | None:
    """A trial as a reader sees it: None while being created, no figures until it ends."""
    has_metrics = bool(trial.metrics)
    if records.being_created(trial.trial_id, trial.status, has_metrics, start_order, committed):
        return None
    if trial.status not in records.ENDED and has_metrics:
        return dataclasses.replace(trial, metrics={})  # re-run on resume: not a result yet
    return trial
