"""A flatnas-tf search as a library object: trials, ranking, front, hypervolume, models.

`SearchResult.load(directory)` reads a search from its files alone, finished
or still running, and never writes to it (as Optuna's `load_study`):

    oracle  = FlatNASOracle(), pointed at the directory, reload() without
              repairs: oracle.json + trial_*/trial.json; mode, alpha,
              max_params, population size and constraints come back from the
              saved state; an oracle.json caught half-written (a search from
              before writes were atomic) is read again, `attempts` times
    trials  = every trial, creation order (ones oracle.json does not list
              yet at the end), every status
    rank(alpha, mode)
            = a fresh FlatNASOracle with those settings ranks the completed
              trials (`NSGA2Oracle.rank`); the loaded oracle and the trials
              are untouched, so re-ranking never changes what was loaded
    front   = rank(...).front(): feasible completed trials of rank 0
    HV(g)   = pareto.hypervolume of the completed, feasible trials of
              generations <= g, in the raw objectives
                  (val_accuracy "max", robustness "min", params "min")
              reference point r = (0, 100, P):
                  accuracy 0; R = 100 percentage points (R = 100 * mean |acc0 -
                  acc_m| can never exceed it); P = max_params, or without a
                  limit 1.1 x the largest params of a counted trial
    HV_frac(g) = HV(g) / (1 * 100 * P)        the fraction of the reference box

Models: `load_model(trial)` builds the trial's architecture with the
hypermodel the search used and loads its checkpoint
(`trial_<id>/checkpoint.weights.h5`), as `FlatNASTuner.load_model` does;
`export(trial, path)` writes it with `flatnas_tf.export`. A result loaded
without a hypermodel reads and ranks, but cannot build models.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from keras_tuner.engine.trial import Trial, TrialStatus

from flatnas_tf.tuners import pareto
from flatnas_tf.tuners.nsga2 import Ranking
from flatnas_tf.tuners.tuner import FlatNASOracle, load_trial_weights, trial_figures

if TYPE_CHECKING:
    import keras
    import keras_tuner

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
    search runs) or `FlatNASTuner.result()`. Trials are KerasTuner `Trial`
    objects; `figures(trial)` gives their raw figures and `to_rows()` one
    plain dict per trial (`pandas.DataFrame(result.to_rows())` if you use
    pandas).

    Args:
        oracle: The search's oracle, holding its trials (not copied: a
            result of a live oracle follows it).
        hypermodel: The hypermodel the search built its candidates with;
            needed by `load_model` and `export` only.

    Example:
    ```python
    result = SearchResult.load("runs/c10/search")
    for trial in result.front():
        print(trial.trial_id, result.figures(trial)["val_accuracy"])
    result.rank(alpha=0.8).best(3)  # re-ranked, nothing written
    ```
    """

    def __init__(self, oracle: FlatNASOracle, hypermodel: keras_tuner.HyperModel | None = None):
        self._oracle = oracle
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
            ValueError: The directory holds no `oracle.json`, it was not
                written by a `FlatNASOracle`, or it stays unreadable.

        Example:
        ```python
        result = SearchResult.load("runs/c10/search")
        ```
        """
        path = Path(directory).expanduser().resolve()
        if not (path / "oracle.json").is_file():
            raise ValueError(
                f"{path} is not a flatnas-tf search directory (no oracle.json); pass the project "
                "directory <directory>/<project_name> of a FlatNASTuner (<out>/search of "
                "`flatnas-tf search`)."
            )
        attempts = max(1, int(attempts))
        for attempt in range(attempts):
            try:
                return cls(_read_oracle(path), hypermodel)
            except json.JSONDecodeError as error:
                if attempt == attempts - 1:
                    raise ValueError(
                        f"A file of {path} is not valid JSON after {attempts} reads {delay} s "
                        f"apart ({error}); if the search is running, try again; otherwise the "
                        "file is damaged."
                    ) from error
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- settings -------------------------------------------------------------------

    @property
    def project_dir(self) -> Path | None:
        """The search's project directory (None for an oracle without one)."""
        directory = getattr(self._oracle, "_directory", None)
        name = getattr(self._oracle, "_project_name", None)
        return None if directory is None or name is None else Path(str(directory), name)

    @property
    def mode(self) -> str:
        """The search's mode: "flatnas" or "pareto"."""
        return self._oracle.mode

    @property
    def alpha(self) -> float:
        """The alpha the search ranks with (mode "flatnas")."""
        return self._oracle.alpha

    @property
    def max_params(self) -> float | None:
        """The parameter limit (None for none)."""
        return self._oracle.max_params

    @property
    def chance_significance(self) -> float | None:
        """The significance of the above-chance constraint (None for none)."""
        return self._oracle.chance_significance

    @property
    def population_size(self) -> int:
        """Trials per generation."""
        return self._oracle.population_size

    def objectives(self, mode: str | None = None) -> list[tuple[str, str]]:
        """(name, direction) of each objective the search (or `mode`) ranks on."""
        oracle = self._ranking_oracle(None, mode)
        return list(zip(oracle.objective_names, oracle.objective_directions(), strict=True))

    # -- trials ---------------------------------------------------------------------

    @property
    def trials(self) -> list[Trial]:
        """Every trial, in creation order (ones oracle.json does not list yet at the end)."""
        oracle = self._oracle
        listed = [oracle.trials[i] for i in oracle.start_order if i in oracle.trials]
        known = {trial.trial_id for trial in listed}
        rest = sorted(
            (t for i, t in oracle.trials.items() if i not in known), key=lambda t: t.trial_id
        )
        return listed + rest

    @property
    def completed(self) -> list[Trial]:
        """The completed trials, in creation order (what ranking ranks)."""
        return [t for t in self.trials if t.status == TrialStatus.COMPLETED]

    def trial(self, trial_id: str) -> Trial:
        """The trial with this id.

        Raises:
            KeyError: There is none; the message lists the ids there are.
        """
        trial = self._oracle.trials.get(str(trial_id))
        if trial is None:
            known = ", ".join(sorted(self._oracle.trials)) or "none"
            raise KeyError(f"no trial {trial_id!r} in this search (trials: {known}).")
        return trial

    def generation_of(self, trial: Trial | str) -> int | None:
        """A trial's generation (None for one oracle.json does not list yet)."""
        try:
            return self._oracle.generation_of(_trial_id(trial))
        except ValueError:
            return None

    def parents_of(self, trial: Trial | str) -> list[str]:
        """The ids of the trials a trial was bred from ([] for a random one)."""
        return self._oracle.parents_of(_trial_id(trial))

    @staticmethod
    def figures(trial: Trial) -> dict[str, float]:
        """Every recorded figure of a trial (`FIGURES`, NaN where not measured)."""
        return trial_figures(trial)

    # -- ranking --------------------------------------------------------------------

    def rank(self, alpha: float | None = None, mode: str | None = None) -> Ranking:
        """The completed trials ranked as the search would under `alpha`/`mode`.

        Args:
            alpha: Error/flatness trade-off in [0, 1] (mode "flatnas"); None:
                the search's.
            mode: "flatnas" or "pareto"; None: the search's.

        Returns:
            A `Ranking` (survival order, ranks, scores, front). Nothing on the
            loaded search changes, trial scores included.

        Example:
        ```python
        [t.trial_id for t in result.rank(alpha=1.0).front()]  # accuracy only
        ```
        """
        return self._ranking_oracle(alpha, mode).rank(self.completed)

    def front(self, alpha: float | None = None, mode: str | None = None) -> list[Trial]:
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
        return self._oracle.alpha_norm(self.completed)

    def hypervolume(self) -> HypervolumeHistory:
        """The hypervolume after each generation (module docstring).

        Returns:
            A `HypervolumeHistory`; reference None when nothing can be counted.
        """
        names = [name for name, _ in HV_OBJECTIVES]
        directions = [direction for _, direction in HV_OBJECTIVES]
        generation_of = {trial.trial_id: self.generation_of(trial) for trial in self.trials}
        completed = self.completed
        counted = []
        for trial, violation in zip(
            completed, self._oracle.constraint_violations(completed), strict=True
        ):
            generation = generation_of[trial.trial_id]
            values = [self.figures(trial)[name] for name in names]
            if generation is not None and violation == 0 and np.isfinite(values).all():
                counted.append((generation, values))
        generations = sorted({g for g in generation_of.values() if g is not None})
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
            objectives = ranking.objectives[row] if row is not None else [math.nan] * len(names)
            rows.append(
                {
                    "trial_id": trial.trial_id,
                    "status": str(trial.status),
                    "generation": self.generation_of(trial),
                    "rank": None if row is None else int(ranking.ranks[row]),
                    "score": None if row is None else float(ranking.scores[row]),
                    "on_front": trial.trial_id in front,
                    "feasible": bool(row is not None and feasible[row]),
                    **self.figures(trial),
                    **{
                        f"objective_{name}": float(value)
                        for name, value in zip(names, objectives, strict=True)
                    },
                    **{f"hp_{name}": value for name, value in trial.hyperparameters.values.items()},
                }
            )
        return rows

    # -- models ---------------------------------------------------------------------

    def load_model(self, trial: Trial | str) -> keras.Model:
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
        model = SearchResult.load(path, hypermodel=space).load_model("07")
        ```
        """
        trial = trial if isinstance(trial, Trial) else self.trial(trial)
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
        model = self._hypermodel.build(trial.hyperparameters.copy())
        return load_trial_weights(model, checkpoint)

    def trial_dir(self, trial: Trial | str) -> Path:
        """The directory of a trial's files (trial.json, checkpoint)."""
        if self.project_dir is None:
            raise ValueError("this SearchResult's oracle has no project directory.")
        return self.project_dir / f"trial_{_trial_id(trial)}"

    def export(
        self,
        trial: Trial | str,
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
        result.export("07", "models/trial_07")
        ```
        """
        from flatnas_tf import export as exporting

        trial = trial if isinstance(trial, Trial) else self.trial(trial)
        model = self.load_model(trial) if model is None else model
        manifest = {
            "trial_id": trial.trial_id,
            "hyperparameters": dict(trial.hyperparameters.values),
            "figures": self.figures(trial),
            **(metadata or {}),
        }
        return exporting.export_model(model, Path(path), manifest, tflite=tflite)

    # -- helpers --------------------------------------------------------------------

    def _ranking_oracle(self, alpha: float | None, mode: str | None) -> FlatNASOracle:
        """The loaded oracle, or a fresh one with `alpha`/`mode` (no trials, ranks only)."""
        if (alpha is None or alpha == self.alpha) and (mode is None or mode == self.mode):
            return self._oracle
        return FlatNASOracle(
            mode=self.mode if mode is None else mode,
            alpha=self.alpha if alpha is None else alpha,
            max_params=self.max_params,
            chance_significance=self.chance_significance,
            population_size=self.population_size,
            max_trials=None,
        )

    def __repr__(self) -> str:
        return (
            f"SearchResult({str(self.project_dir)!r}, mode={self.mode!r}, alpha={self.alpha:g}, "
            f"trials={len(self._oracle.trials)}, completed={len(self.completed)})"
        )


def _trial_id(trial: Trial | str) -> str:
    return trial.trial_id if isinstance(trial, Trial) else str(trial)


def _read_oracle(project_dir: Path) -> FlatNASOracle:
    """The oracle of a search directory, read without repairs (it may be running)."""
    with open(project_dir / "oracle.json", encoding="utf-8") as file:
        state = json.load(file)
    if not isinstance(state, dict) or not isinstance(state.get("flatnas"), dict):
        raise ValueError(
            f"{project_dir / 'oracle.json'} was not written by a FlatNASOracle (no 'flatnas' "
            "state); pass the project directory of a flatnas-tf search."
        )
    # reload() restores mode (and with it the objectives), alpha, max_params,
    # population size and constraints from the saved state.
    oracle = FlatNASOracle(max_trials=None)
    oracle._set_project_dir(str(project_dir.parent), project_dir.name)  # as BaseTuner does
    oracle.repairs_files = False  # a reader: the search repairs its own files
    oracle.reload()
    return oracle
