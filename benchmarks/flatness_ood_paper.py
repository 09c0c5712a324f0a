"""The flatness/OOD study at a GPU's scale, in one command: both stages, then the report.

Runs, with one set of settings, what the study's chunks run on 2 cores:

    1. correlation stage   `flatness_ood_study.py`: `--archs` architectures of
                           the default space x `--train-seeds`, each trained
                           as a search trial and measured (R curve, loss gap,
                           clean and corrupted test accuracy)
    2. search comparison   `flatness_ood_search.py`: the three arms (A FlatNAS,
                           B accuracy only, C plain SGD) x `--search-seeds`,
                           each search's picks retrained with `--retrain-seeds`
    3. the analysis        `study_analysis.py`: report.md and analysis.json
                           for every data set of the study, this one included

Both stages append each finished model to `<study>/<name>/records.jsonl` and
skip what is recorded, so a preempted job continues where it stopped when the
same command runs again (no `--max-minutes` limit by default: a GPU job runs
to its end). `--name` keeps these records apart from the 2-core study's
(`cifar10`, the 10k / 2k subset at widths 0.25 / 0.5): the report gives each
data set its own section, and a run at this scale is exploratory unless the
pre-registration is amended for it.

Defaults, the paper's data at the width the paper's supernet has, trained
from scratch (the 2-core supernet did not rank the study's architectures:
docs/weight-sharing.md): full CIFAR-10 from TFDS (`cifar10`; TFDS_DATA_DIR
for an offline copy), the default space at width 1.0 with stage depths
2,3,4, 40 epochs, batch 128, 24 architectures x 2 training seeds, the 15
benchmark corruptions (frost with FLATNAS_FROST_DIR, else 14) x 5 severities
on all test images; 2 search seeds x 3 arms, population 20, 100 trials each,
3 retraining seeds. Every option passes through to the stages (with
`--smoke`, their smoke settings win, as they do when a stage runs alone).

`--smoke` runs the same three steps tiny, for CI: each stage with its own
`--smoke` settings (digits, two models; one search arm of two trials; two
epochs), into `--study` when given (a second smoke run there resumes and
trains nothing), else a temporary directory: under a minute on CPU.

Usage:
    python benchmarks/flatness_ood_paper.py [--data cifar10] [--name cifar10_full]
        [--epochs 40] [--archs 24] [--trials 100] [--study docs/results/flatness_ood]
    python benchmarks/flatness_ood_paper.py --smoke
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import flatness_ood_search  # noqa: E402
import flatness_ood_study  # noqa: E402
import study_analysis  # noqa: E402

#: The stages' settings at a GPU's scale (option -> value), as command-line text.
PAPER = {
    "data": "cifar10",
    "epochs": "40",
    "batch-size": "128",
    "widths": "1.0",
    "depths": "2,3,4",
    "corruptions": "benchmark",
    "max-minutes": "1e9",
    "archs": "24",
    "train-seeds": "0,1",
    "search-seeds": "0,1",
    "population": "20",
    "trials": "100",
    "retrain-seeds": "0,1,2",
}
#: --smoke: each stage's own --smoke settings, and one search arm.
SMOKE = {"smoke": None, "arms": "A"}
#: Which stage takes which option (the rest are the stages' shared options).
STUDY_ONLY = ("archs", "train-seeds")
SEARCH_ONLY = ("arms", "search-seeds", "population", "trials", "retrain-seeds")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: the driver's own options; every other one goes to the stages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--name", default=None, help="Records directory under --study (cifar10_full; smoke)."
    )
    parser.add_argument(
        "--study", type=pathlib.Path, default=None, help="Default: docs/results/flatness_ood."
    )
    parser.add_argument("--resamples", type=int, default=study_analysis.RESAMPLES)
    parser.add_argument(
        "--smoke", action="store_true", help="A tiny run (CI), in --study or a temporary dir."
    )
    args, rest = parser.parse_known_args(argv)
    args.stage_options = rest
    if args.study is None and args.smoke:
        args.study = pathlib.Path(tempfile.mkdtemp(prefix="flatness-ood-paper-smoke-"))
    args.study = args.study or study_analysis.STUDY
    return args


def stage_arguments(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The command lines of the correlation stage and of the search comparison.

    The preset (`PAPER`, or `SMOKE` with --smoke) comes first and the user's
    options after it, so that a user's value wins (argparse keeps the last;
    with --smoke, the stages then apply their own smoke settings).
    """
    name = args.name or ("smoke" if args.smoke else "cifar10_full")
    options = [[f"--records={args.study / name / 'records.jsonl'}"]]
    if args.smoke:
        options.append([f"--work={args.study / name / 'work'}"])
    for option, value in (SMOKE if args.smoke else PAPER).items():
        options.append([f"--{option}" if value is None else f"--{option}={value}"])
    for token in args.stage_options:  # "--flag", then its values
        if token.startswith("--"):
            options.append([token])
        else:
            options[-1].append(token)
    study, search = [], []
    for option in options:
        flag = option[0].split("=", 1)[0][2:]
        if flag not in SEARCH_ONLY:
            study += option
        if flag not in STUDY_ONLY:
            search += option
    return study, search


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Runs both stages, then the analysis; returns the analysis (see the module docstring)."""
    args = parse_args(argv)
    if args.smoke:
        args.resamples = min(args.resamples, 200)
    study, search = stage_arguments(args)
    flatness_ood_study.main(study)
    flatness_ood_search.main(search)
    return study_analysis.main(["--study", str(args.study), "--resamples", str(args.resamples)])


if __name__ == "__main__":
    main()
