"""The flatness/OOD study's search comparison (H2): three arms, their picks retrained.

What `docs/results/flatness_ood/preregistration.md` fixes for H2, run as it says:

    arms            A  FlatNAS: ASAM, alpha 0.5
                    B  accuracy only: ASAM, alpha 1
                    C  CNAS-style: plain SGD, alpha 0.5
    one search      `FlatNASTuner`, mode "flatnas", the arm's alpha and
                    training, `--population`, `--trials`, `--epochs`, seeded by
                    the search seed; R as `flatnas-tf search` measures it
                    (sigma 0.05, 10 perturbations). Searches of one seed draw
                    the same random first generation.
    shared trials   a configuration trained by a search of the same seed under
                    the same training (A and B: ASAM; C: SGD) is not trained
                    again: its figures are read from `trials.jsonl` beside the
                    records (every trained trial is a line there, so a search
                    cut short resumes without training them again)
    picks           trade-off: the front member nearest the ideal corner of
                    (objective 1, params), each scaled to [0, 1] over the front;
                    most accurate: the front member of highest validation
                    accuracy (fewer params on a tie)
    retraining      each pick from scratch under its arm's training, once per
                    `--retrain-seeds`, measured as the correlation stage's
                    models are (`flatness_ood_study.measure`); a (configuration,
                    training, seed) already measured for another pick is copied
                    with the new labels, not trained again
    records         one "search" record per search (its trials' figures and
                    objectives, the front, the picks, trainings run and
                    reused) and one "pick" record per pick and retraining seed,
                    in the schema `study_analysis.py` reads, appended to
                    `<records>` (atomic rewrite)

A run goes search seed by search seed (the three searches, then their picks),
skips what is recorded and starts nothing it expects to end after
`--max-minutes` (at the mean time of what it has run: `common.Chunk`; a search
already started runs to its end), so the comparison goes on in chunks from the
committed records. `--smoke` runs a tiny version (a first generation of two,
two epochs, one retraining seed) into a temporary directory, for CI.

Usage:
    python benchmarks/flatness_ood_search.py --data digits --search-seeds 0,1,2
        [--population 6 --trials 18 --epochs 8 --retrain-seeds 0,1,2 --max-minutes 55]
    python benchmarks/flatness_ood_search.py --smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import flatness_ood_study as study  # noqa: E402
from common import Chunk, git_state, utc_now  # noqa: E402

SEARCH_SIGMA = 0.05  # `flatnas-tf search`'s defaults
SEARCH_SAMPLES = 10
PICKS = ("tradeoff", "most_accurate")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of the comparison: the search's alpha and how its candidates train."""

    alpha: float
    sam: bool
    description: str

    @property
    def training(self) -> str:
        """The name of the training settings (arms with the same one share trials)."""
        return "asam" if self.sam else "sgd"


ARMS = {
    "A": Arm(0.5, True, "FlatNAS: ASAM, alpha 0.5"),
    "B": Arm(1.0, True, "accuracy only: ASAM, alpha 1"),
    "C": Arm(0.5, False, "CNAS-style: plain SGD, alpha 0.5"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study.add_shared_arguments(parser)
    add = parser.add_argument
    add("--arms", default="A,B,C", help="Arms to run, of A, B, C.")
    add("--search-seeds", type=study.number_list(int), default=[0, 1, 2])
    add("--population", type=int, default=6, help="NSGA-II population.")
    add("--trials", type=int, default=18, help="Trials per search.")
    add("--retrain-seeds", type=study.number_list(int), default=[0, 1, 2])
    args = parser.parse_args(argv)
    smoke = {"search_seeds": [0], "population": 2, "trials": 2, "epochs": 2, "retrain_seeds": [0]}
    study.finish_arguments(parser, args, smoke, positive=("trials",))
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown or not args.arms:
        parser.error(f"--arms takes some of A, B, C; received {unknown or 'none'}")
    if args.population < 2:
        parser.error("--population must be >= 2")
    if not args.search_seeds or not args.retrain_seeds:
        parser.error("--search-seeds and --retrain-seeds need at least one value")
    return args


def tradeoff_index(objectives: np.ndarray) -> int:
    """The front member nearest the ideal corner, each objective scaled to [0, 1] over the front.

    Args:
        objectives: (members, objectives), every objective minimised.

    Returns:
        The row of the pick (the first one on a tie).

    Example:
    >>> tradeoff_index(np.array([[10.0, 1e5], [12.0, 2e4], [30.0, 1e4]]))
    1
    """
    values = np.asarray(objectives, dtype=np.float64)
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))


def most_accurate_index(accuracy: np.ndarray, params: np.ndarray) -> int:
    """The member of highest accuracy, fewer params on a tie (then the first).

    Example:
    >>> most_accurate_index(np.array([0.9, 0.95, 0.95]), np.array([1e4, 3e4, 2e4]))
    2
    """
    return min(range(len(accuracy)), key=lambda i: (-accuracy[i], params[i], i))


def trials_path(args: argparse.Namespace) -> pathlib.Path:
    """The file of every trained search trial, beside the records."""
    return args.records.parent / "trials.jsonl"


def _shared_tuner_class():
    from flatnas_tf.tuners import FlatNASTuner

    class SharedTrialsTuner(FlatNASTuner):
        """A FlatNASTuner that reads a trial's figures from `trials.jsonl` when trained before.

        Args:
            trials_file: The shared file of trained trials.
            key: What a trial must share to be reused (data, search seed, training).
        """

        def __init__(self, *args, trials_file: pathlib.Path, key: dict, **kwargs):
            super().__init__(*args, **kwargs)
            self.trials_file, self.key = trials_file, key
            self.trained = self.reused = 0

        def run_trial(self, trial, *args, **kwargs):
            values = dict(trial.hyperparameters.values)
            for line in study.records_so_far(self.trials_file):
                if line["hyperparameters"] == values and all(
                    line[k] == v for k, v in self.key.items()
                ):
                    self.reused += 1
                    return dict(line["figures"])
            figures = super().run_trial(trial, *args, **kwargs)
            record = {**self.key, "hyperparameters": values, "figures": figures}
            study.append_record(self.trials_file, record)
            self.trained += 1
            return figures

    return SharedTrialsTuner


def run_search(args, data, arm_name: str, search_seed: int, git: dict) -> dict:
    """One search of one arm and seed; returns its "search" record (front and picks)."""
    import keras

    from flatnas_tf.space.hypermodel import TrainingSettings

    arm = ARMS[arm_name]
    start = time.perf_counter()
    hypermodel = study.study_space(args, data, TrainingSettings(sam=arm.sam))
    tuner = _shared_tuner_class()(
        hypermodel,
        alpha=arm.alpha,
        population_size=args.population,
        max_trials=args.trials,
        seed=search_seed,
        sigma=SEARCH_SIGMA,
        samples=SEARCH_SAMPLES,
        directory=str(args.work / "searches"),
        project_name=f"seed{search_seed}-{arm_name}",
        overwrite=True,
        trials_file=trials_path(args),
        key={"data": args.data, "search_seed": search_seed, "training": arm.training},
    )
    train = data.batches("train", args.batch_size, training=True, seed=search_seed)
    validation = data.batches("validation", args.batch_size)
    tuner.search(train, validation_data=validation, epochs=args.epochs, verbose=0)
    result = tuner.result()
    names = [name for name, _ in result.objectives()]
    rows = result.to_rows()
    front = [row for row in rows if row["on_front"]]
    objectives = np.array([[row[f"objective_{n}"] for n in names] for row in front])
    accuracy = np.array([row["val_accuracy"] for row in front])
    params = np.array([row["params"] for row in front])
    chosen = {}  # none when no trial is feasible (every candidate at chance)
    if front:
        chosen["tradeoff"] = front[tradeoff_index(objectives)]
        chosen["most_accurate"] = front[most_accurate_index(accuracy, params)]
    keras.backend.clear_session()

    def hyperparameters(row: dict) -> dict:
        return {k[len("hp_") :]: v for k, v in row.items() if k.startswith("hp_")}

    return {
        "stage": "search",
        "data": args.data,
        "arm": arm_name,
        "arm_description": arm.description,
        "alpha": arm.alpha,
        "training": arm.training,
        "search_seed": search_seed,
        "population": args.population,
        "max_trials": args.trials,
        "epochs": args.epochs,
        "sigma": SEARCH_SIGMA,
        "samples": SEARCH_SAMPLES,
        "trials": [
            {
                "trial_id": row["trial_id"],
                "status": row["status"],
                "generation": row["generation"],
                "on_front": row["on_front"],
                "val_accuracy": row["val_accuracy"],
                "robustness": row["robustness"],
                "params": row["params"],
                "objectives": [row[f"objective_{n}"] for n in names],
            }
            for row in rows
        ],
        "objective_names": names,
        "picks": {
            pick: {"trial_id": row["trial_id"], "hyperparameters": hyperparameters(row)}
            for pick, row in chosen.items()
        },
        "trials_trained": tuner.trained,
        "trials_reused": tuner.reused,
        "wall_s": round(time.perf_counter() - start, 1),
        "git": git,
        "date": utc_now(),
    }


def _hyperparameters(hypermodel, values: dict):
    """HyperParameters of the space of `hypermodel` holding `values`."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(values)
    return hp


def retrain_pick(args, data, corrupted, search: dict, pick: str, seed: int, recorded, git) -> dict:
    """The "pick" record of one pick retrained with one seed (copied if measured before)."""
    from flatnas_tf.space.hypermodel import TrainingSettings

    values = search["picks"][pick]["hyperparameters"]
    labels = {
        "stage": "pick",
        "arm": search["arm"],
        "search_seed": search["search_seed"],
        "pick": pick,
        "retrain_seed": seed,
        "training": search["training"],
        "trial_id": search["picks"][pick]["trial_id"],
    }
    for record in recorded:
        if (
            record["stage"] == "pick"
            and record["hyperparameters"] == values
            and record["training"] == search["training"]
            and record["retrain_seed"] == seed
            and "copied_from" not in record
        ):
            copied = {k: record[k] for k in ("arm", "search_seed", "pick")}
            return {**record, **labels, "copied_from": copied, "date": utc_now()}
    hypermodel = study.study_space(args, data, TrainingSettings(sam=ARMS[search["arm"]].sam))
    hp = _hyperparameters(hypermodel, values)
    return {**labels, **study.measure(args, data, hypermodel, corrupted, hp, seed, git)}


def run(args: argparse.Namespace) -> list[dict]:
    """Runs every search and pick not yet recorded, until the time is up."""
    data = study.load_study_data(args)
    corrupted = study.corrupted_test_set(args, data)
    git = git_state()  # the code this run trains with
    chunk = Chunk(args.max_minutes)
    written: list[dict] = []

    def time_is_up() -> bool:
        if chunk.room_for_another():
            return False
        print(f"time is up: {len(written)} records written in this run", flush=True)
        return True

    def add(record: dict) -> None:
        study.append_record(args.records, record)
        written.append(record)

    for search_seed in args.search_seeds:
        for arm in args.arms:
            searches = _searches(args, search_seed)
            if arm in searches:
                continue
            if time_is_up():
                return written
            with chunk.unit():
                record = run_search(args, data, arm, search_seed, git)
            add(record)
            print(
                f"search seed {search_seed} arm {arm}: {record['trials_trained']} trained, "
                f"{record['trials_reused']} reused, {record['wall_s']:.0f} s",
                flush=True,
            )
        for arm, search in sorted(_searches(args, search_seed).items()):
            for pick in [p for p in PICKS if p in search["picks"]]:
                for seed in args.retrain_seeds:
                    recorded = study.records_so_far(args.records)
                    if any(_same_pick(r, arm, search_seed, pick, seed) for r in recorded):
                        continue
                    if time_is_up():
                        return written
                    with chunk.unit():
                        record = retrain_pick(
                            args, data, corrupted, search, pick, seed, recorded, git
                        )
                    add(record)
                    how = "copied" if "copied_from" in record else study.describe(record)
                    print(f"seed {search_seed} arm {arm} {pick} retrain {seed}: {how}", flush=True)
    return written


def _searches(args: argparse.Namespace, search_seed: int) -> dict[str, dict]:
    """{arm: its search record} of the arms of `--arms` recorded for `search_seed`."""
    return {
        r["arm"]: r
        for r in study.records_so_far(args.records)
        if r["stage"] == "search" and r["search_seed"] == search_seed and r["arm"] in args.arms
    }


def _same_pick(record: dict, arm: str, search_seed: int, pick: str, seed: int) -> bool:
    return record["stage"] == "pick" and (
        record["arm"],
        record["search_seed"],
        record["pick"],
        record["retrain_seed"],
    ) == (arm, search_seed, pick, seed)


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the study's search comparison (see the module docstring)."""
    args = parse_args(argv)
    print(f"records: {args.records}", flush=True)
    return run(args)


if __name__ == "__main__":
    main()
