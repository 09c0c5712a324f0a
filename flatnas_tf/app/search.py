"""A search run from a typed configuration: what `flatnas-tf search` does, callable from Python.

    SearchConfig   what defines a search (run.json's defining settings):
                   TensorFlow-free, frozen, checked once; resuming a search
                   with another configuration is refused (`runs.DEFINING`)
    run_search     data (the config's split) -> OUT/run.json (a new search,
                   or the same one resumed; `overwrite` starts afresh) ->
                   the tuner (from scratch, or through the supernet in
                   `supernet_dir`) -> its search (KerasTuner's loop, the
                   oracle's durable state) -> `finishing.finish_search`
                   (report, the front under corruptions, exports)

Interrupted (KeyboardInterrupt), the search saves what it has and raises:
running the same configuration again resumes it. One search runs in a
directory at a time (`RunDirectory.lock`); distributed workers join the
chief's directory without the lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flatnas_tf._version import __version__
from flatnas_tf.app.runs import PROJECT, RunDirectory, RunError
from flatnas_tf.app.split import DataSplit
from flatnas_tf.checks import check_choice, check_integer, check_number
from flatnas_tf.defaults import BATCH_SIZE, DEPTHS, MAX_DEPTH, MAX_WIDTH, OOD_EXAMPLES, SIGMA
from flatnas_tf.training.config import TrainingConfig
from flatnas_tf.tuners.objectives import MODES

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_FINE_TUNE_EPOCHS",
    "SearchConfig",
    "SearchConfigError",
    "run_search",
]

#: Training epochs of a candidate trained from random weights.
DEFAULT_EPOCHS = 6
#: Fine-tuning epochs of a candidate that inherits a supernet's weights.
DEFAULT_FINE_TUNE_EPOCHS = 2


class SearchConfigError(ValueError):
    """A setting that does not fit how the candidates train; `field` names the setting.

    Attributes:
        field: The `SearchConfig` field (a CLI option `--<field>`, dashes for underscores).
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """What defines a search; `flatnas-tf search`'s options are its fields.

    Attributes:
        split: The data set and its split.
        mode: "flatnas" (FlatNAS's objective and params; `tuners.objectives`)
            or "pareto" (accuracy, R and params).
        alpha: The error/flatness trade-off of mode "flatnas", in [0, 1].
        max_trials: Trials in all (over-budget and failed ones count).
        widths: Width multipliers the space offers, in (0, MAX_WIDTH].
        depths: Stage depths the space offers, in 1..MAX_DEPTH (kept sorted,
            each once; fewer and shallower choices: smaller, faster candidates).
        population: NSGA-II's population, >= 2.
        epochs: Training epochs per trial (>= 1), or fine-tuning epochs
            through a supernet (>= 0).
        batch_size: Examples per training step.
        training: How candidates train.
        sigma: Weight-noise scale of R.
        samples: Weight perturbations per R measurement.
        max_params: Larger candidates are recorded, never trained.
        surrogate: {"initial_trials": n, "candidates": k} for a
            surrogate-assisted search, or None.
        supernet_dir: A trained supernet to search through, or None.

    Example:
    >>> SearchConfig(max_trials=4, widths=(0.25,)).settings()["max_trials"]
    4
    """

    split: DataSplit = DataSplit()
    mode: str = "flatnas"
    alpha: float = 0.5
    max_trials: int = 6
    widths: tuple[float, ...] = (0.25, 0.5)
    depths: tuple[int, ...] = DEPTHS
    population: int = 3
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = BATCH_SIZE
    training: TrainingConfig = TrainingConfig()
    sigma: float = SIGMA
    samples: int = 10
    max_params: float = 5e6
    surrogate: Mapping[str, int] | None = None
    supernet_dir: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.split, DataSplit):
            raise TypeError(f"`split` must be a DataSplit; received {type(self.split).__name__}.")
        if not isinstance(self.training, TrainingConfig):
            raise TypeError(
                f"`training` must be a TrainingConfig; received {type(self.training).__name__}."
            )
        check_choice(self.mode, "mode", MODES)
        check_number(self.alpha, "alpha", 0, 1)
        check_integer(self.max_trials, "max_trials", 1)
        check_integer(self.population, "population", 2)
        check_integer(self.epochs, "epochs", 0 if self.supernet_dir is not None else 1)
        check_integer(self.batch_size, "batch_size", 1)
        check_number(self.sigma, "sigma", 0)
        check_integer(self.samples, "samples", 1)
        check_number(self.max_params, "max_params", 0, low_open=True)
        widths = tuple(float(check_number(w, "widths", 0, MAX_WIDTH, low_open=True))
                       for w in self.widths)  # fmt: skip
        if not widths:
            raise ValueError("`widths` must hold at least one width multiplier.")
        object.__setattr__(self, "widths", widths)
        depths = tuple(sorted({check_integer(d, "depths", 1, MAX_DEPTH) for d in self.depths}))
        if not depths:
            raise ValueError("`depths` must hold at least one stage depth.")
        object.__setattr__(self, "depths", depths)
        if self.surrogate is not None:
            unknown = set(self.surrogate) - {"initial_trials", "candidates"}
            if unknown:
                raise ValueError(
                    f"`surrogate` takes initial_trials and candidates; received {sorted(unknown)}."
                )
            object.__setattr__(self, "surrogate", dict(self.surrogate))

    @classmethod
    def resolved(
        cls,
        *,
        widths: Sequence[float] | None = None,
        depths: Sequence[int] | None = None,
        epochs: int | None = None,
        learning_rate: float | None = None,
        training: TrainingConfig | None = None,
        supernet_dir: str | os.PathLike | None = None,
        surrogate: bool = False,
        surrogate_initial: int | None = None,
        surrogate_candidates: int | None = None,
        **fields: Any,
    ) -> SearchConfig:
        """A configuration whose space, epochs and learning rate default by how candidates train.

        From random weights: the given widths and depths (default `(0.25,
        0.5)` and `DEPTHS`), `DEFAULT_EPOCHS` and `training`'s learning rate.
        Through the supernet in `supernet_dir`: the supernet's width and
        depths, `DEFAULT_FINE_TUNE_EPOCHS`
        and `TrainingConfig.FINE_TUNE_LEARNING_RATE`, since a rate meant for random
        weights undoes what the supernet learnt. Given values are kept. A
        surrogate-assisted search's initial trials and candidates per refit
        default to one population.

        Args:
            widths: Width multipliers, or None for the default.
            depths: Stage depths, or None for the default.
            epochs: Epochs per trial, or None for the default.
            learning_rate: Peak learning rate, or None for the default.
            training: The other training settings (None: the defaults).
            supernet_dir: A trained supernet's directory, or None.
            surrogate: Whether the search is surrogate-assisted.
            surrogate_initial: Its trials before the first prediction, or None.
            surrogate_candidates: Its candidates trained per refit, or None.
            **fields: The other `SearchConfig` fields.

        Returns:
            The configuration.

        Raises:
            SearchConfigError: 0 epochs from random weights, widths or depths
                other than the supernet's, or surrogate sizes without `surrogate`.
            flatnas_tf.space.sandwich.SupernetStateError: No trained supernet there.

        Example:
        ```python
        config = SearchConfig.resolved(supernet_dir="runs/supernet", max_trials=40)
        config.epochs, config.training.learning_rate   # 2, 0.01
        ```
        """
        training = training or TrainingConfig()
        if supernet_dir is None:
            if epochs == 0:
                raise SearchConfigError(
                    "epochs",
                    "0 epochs trains nothing: from scratch a trial needs at least 1 (0 is for "
                    "a search through a supernet, whose candidates inherit trained weights).",
                )
            widths = cls.widths if widths is None else widths
            depths = cls.depths if depths is None else depths
            epochs = DEFAULT_EPOCHS if epochs is None else epochs
            learning_rate = learning_rate or training.learning_rate
        else:
            from flatnas_tf.space.sandwich import read_supernet_state

            state = read_supernet_state(supernet_dir)
            trained_widths, trained_depths = _supernet_space(state)
            mismatch = _supernet_mismatch(
                state,
                trained_widths if widths is None else widths,
                trained_depths if depths is None else depths,
            )
            if mismatch is not None:
                field, what, shown = mismatch
                raise SearchConfigError(
                    field,
                    f"the supernet has {what} {shown}: leave the {field} out, or pass {shown}.",
                )
            widths, depths = trained_widths, trained_depths
            epochs = DEFAULT_FINE_TUNE_EPOCHS if epochs is None else epochs
            learning_rate = learning_rate or TrainingConfig.FINE_TUNE_LEARNING_RATE
            supernet_dir = str(supernet_dir)
        training = dataclasses.replace(training, learning_rate=learning_rate)
        if surrogate:
            population = fields.get("population", cls.population)
            fields["surrogate"] = {
                "initial_trials": surrogate_initial or population,
                "candidates": surrogate_candidates or population,
            }
        elif surrogate_initial is not None or surrogate_candidates is not None:
            field = "surrogate_initial" if surrogate_initial is not None else "surrogate_candidates"
            raise SearchConfigError(field, "needs --surrogate (surrogate=True).")
        return cls(
            widths=tuple(widths),
            depths=tuple(depths),
            epochs=epochs,
            training=training,
            supernet_dir=supernet_dir,
            **fields,
        )

    def settings(self) -> dict[str, Any]:
        """The configuration as run.json records it (flat keys, JSON values)."""
        return {
            **self.split.to_settings(),
            "mode": self.mode,
            "alpha": self.alpha,
            "max_params": self.max_params,
            "widths": list(self.widths),
            "depths": list(self.depths),
            "population": self.population,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            **self.training.to_settings(),
            "sigma": self.sigma,
            "samples": self.samples,
            "surrogate": self.surrogate,
            "max_trials": self.max_trials,
        }


def run_search(
    config: SearchConfig,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    data=None,
    ood_source: Any = None,
    ood_examples: int = OOD_EXAMPLES,
    frost_dir: str | None = None,
    export: bool = True,
    callbacks: Sequence[Any] = (),
    tuner_options: Mapping[str, Any] | None = None,
    verbose: int = 1,
    echo: Callable[[str], None] = print,
):
    """Runs (or resumes) the search `config` defines in `out`, then finishes it.

    Args:
        config: What defines the search.
        out: Its directory (made if missing; a search there is resumed).
        overwrite: Delete a previous search in `out` and start afresh.
        data: The data set of `config.split`, if already loaded.
        ood_source: What the front is evaluated under corruptions with
            (`finishing.finish_search`); None: no OOD.
        ood_examples: Test images per corruption and severity.
        frost_dir: The frost photographs of the built-in frost corruption.
        export: Export the front's models.
        callbacks: Keras callbacks for every trial's training.
        tuner_options: More keyword arguments of the tuner (a distributed
            search's `trial_lease_s`, `token_file`, `chief_timeout_s`, `tls`).
        verbose: 0 silent, 1 a line per trial start and end, 2 also Keras'
            progress bars.
        echo: Called with each line to show.

    Returns:
        The `finishing.FinishedSearch`, or None on a distributed worker (the
        chief holds the results).

    Raises:
        runs.RunError: `out` holds something else, or a search with another
            configuration (without `overwrite`), or a supernet trained on
            another split or width.
        flatnas_tf.persistence.storage.DirectoryLockedError: Another search runs in `out`.
        KeyboardInterrupt: After saving the search's state.

    Example:
    ```python
    finished = run_search(SearchConfig(max_trials=4), "runs/digits")
    [t.trial_id for t in finished.front]
    ```
    """
    from flatnas_tf import compat

    data = data if data is not None else config.split.load()
    supernet_state = _supernet_state(config)
    settings = {
        **config.settings(),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "label_names": list(data.label_names),
        "flatnas_tf_version": __version__,
    }
    if supernet_state is not None:
        settings["supernet"] = {
            "path": str(Path(config.supernet_dir).resolve()),
            "weights": supernet_state["weights"],
        }
    run = RunDirectory(Path(out))
    worker = compat.is_worker_process()
    lock = contextlib.nullcontext() if worker else run.lock()
    if worker:
        run.join(settings)  # the chief lays the directory out and holds its lock
    with lock:
        if not worker:
            _announce(run, config, settings, overwrite, supernet_state, echo)
        tuner = _tuner(run, config, settings, supernet_state, tuner_options or {}, echo)
        tuner.oracle.max_trials = config.max_trials  # a resumed search may be extended
        try:
            tuner.search(
                data.batches("train", config.batch_size, training=True, seed=config.split.seed),
                validation_data=data.batches("validation", config.batch_size),
                epochs=config.epochs,
                verbose=verbose,
                shuffle=False,  # the pipeline shuffles; Keras would warn at every trial
                callbacks=list(callbacks),
            )
        except KeyboardInterrupt:
            tuner.save()
            raise
        if worker:
            return None
        from flatnas_tf.app.finishing import finish_search

        return finish_search(
            run,
            settings,
            data=data,
            ood_source=ood_source,
            ood_examples=ood_examples,
            data_dir=config.split.data_dir,
            frost_dir=frost_dir,
            export=export,
            front_table=_results_table(tuner),
            echo=echo,
        )


def _supernet_state(config: SearchConfig) -> dict[str, Any] | None:
    """The supernet's state, checked against the search's split and space (None: none)."""
    if config.supernet_dir is None:
        return None
    from flatnas_tf.space.sandwich import read_supernet_state

    state = read_supernet_state(config.supernet_dir)
    identity = config.split.identity()
    trained_on = state.get("data") or {}
    if {key: trained_on.get(key) for key in identity} != identity:
        raise RunError(
            f"the supernet in {config.supernet_dir} was trained on "
            f"{trained_on or 'unknown data'}; this search uses {identity}. Its training images "
            "could be in this search's validation split: pass the same --data, "
            "--validation-fraction and --seed, or train a supernet for these "
            "(`flatnas-tf supernet`)."
        )
    mismatch = _supernet_mismatch(state, config.widths, config.depths)
    if mismatch is not None:
        field, what, shown = mismatch
        raise RunError(
            f"the supernet in {config.supernet_dir} has {what} {shown}; this search's {field} are "
            f"{list(getattr(config, field))}: build the configuration with "
            "SearchConfig.resolved(supernet_dir=...), which takes the supernet's."
        )
    return state


def _supernet_space(state: dict[str, Any]) -> tuple[tuple[float], tuple[int, ...]]:
    """The width and the stage depths (sorted, each once) a supernet was trained with."""
    return (float(state["width"]),), tuple(sorted({int(d) for d in state["space"]["depths"]}))


def _supernet_mismatch(
    state: dict[str, Any], widths: Sequence[float], depths: Sequence[int]
) -> tuple[str, str, str] | None:
    """The first of widths and depths that a search through this supernet cannot take.

    Its candidates are the supernet's sub-networks, so the search's space is the
    supernet's: its one width and its stage depths.

    Returns:
        None where both are the supernet's; else the field, what it is called and
        the supernet's value, as ("depths", "stage depths", "1,2").
    """
    (width,), trained_depths = _supernet_space(state)
    if [float(w) for w in widths] != [width]:
        return "widths", "width", f"{width:g}"
    if tuple(sorted({int(d) for d in depths})) != trained_depths:
        return "depths", "stage depths", ",".join(str(d) for d in trained_depths)
    return None


def _announce(run, config, settings, overwrite, supernet_state, echo) -> None:
    """Prepares the directory and says whether the search starts, resumes or is finished."""
    resumed = run.prepare(settings, overwrite=overwrite)
    ended = run.ended_trials() if resumed else 0
    through = ""
    if supernet_state is not None:
        through = (
            f" through the supernet in {config.supernet_dir} "
            f"({supernet_state['epochs_done']} epochs, width {supernet_state['width']:g})"
        )
    if ended >= config.max_trials:
        echo(
            f"The search in {run.root} is finished ({ended} of {config.max_trials} "
            "trials ran): nothing to train; its report is rebuilt. A larger --max-trials "
            "extends it."
        )
    else:
        echo(("Resuming" if resumed else "Starting") + f" search in {run.root}{through}")


def _tuner(run, config, settings, supernet_state, tuner_options, echo):
    """The search's tuner: `FlatNASTuner`, or `SupernetTuner` through the supernet."""
    from flatnas_tf.app import models

    space = models.hypermodel(settings, config.training)
    if supernet_state is None:
        from flatnas_tf.tuners import FlatNASTuner

        tuner_class, hypermodel = FlatNASTuner, space
    else:
        from flatnas_tf.space.sandwich import load_supernet
        from flatnas_tf.tuners import SupernetTuner

        tuner_class, (hypermodel, _) = SupernetTuner, load_supernet(config.supernet_dir, space)
    surrogate = None
    if config.surrogate is not None:
        from flatnas_tf.tuners import SurrogateSettings

        surrogate = SurrogateSettings(**config.surrogate)
    with _without_reload_line(echo):  # the caller said whether the search resumes
        return tuner_class(
            hypermodel,
            regime=config.training.regime(),
            mode=config.mode,
            alpha=config.alpha,
            max_params=config.max_params,
            population_size=config.population,
            max_trials=config.max_trials,
            seed=config.split.seed,
            sigma=config.sigma,
            samples=config.samples,
            surrogate=surrogate,
            directory=str(run.root),
            project_name=PROJECT,
            overwrite=False,
            **tuner_options,
        )


def _results_table(tuner) -> Callable[[list], str]:
    return lambda front: tuner.results_table([tuner.oracle.trials[t.trial_id] for t in front])


@contextlib.contextmanager
def _without_reload_line(echo: Callable[[str], None]):
    """Drops KerasTuner's "Reloading Tuner from ..." line; other output passes (e.g. recoveries)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if not line.startswith("Reloading Tuner from "):
                echo(line)
