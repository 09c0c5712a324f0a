"""The pre-registered analysis of the flatness/OOD study, from its records alone.

`docs/results/flatness_ood/preregistration.md` fixes the analysis; this module
is that analysis, written before the first record. It reads the study's
`records.jsonl` files (one JSON object per finished model) and nothing else:

    study record   {"stage": "study", "data", "arch", "train_seed", "params",
                    "val_accuracy", "test_accuracy", "corruption_accuracy",
                    "chance_p_value", "R": {sigma: R}, "loss_gap": {sigma: gap}}
    pick record    {"stage": "pick", "data", "arm" ("A" FlatNAS, "B" accuracy
                    only, "C" SGD), "search_seed", "pick" ("tradeoff" or
                    "most_accurate"), "retrain_seed", "params", "test_accuracy",
                    "corruption_accuracy", "chance_p_value", "R": {sigma: R}}
    search record  {"stage": "search", "arm", "search_seed", "trials" (each
                    with "on_front"), "trials_trained", "trials_reused",
                    "wall_s"}: described in the report, not analysed

Accuracies are fractions; R is in percentage points; sigma keys are strings
("0.05"). Other keys (wall time, machine, commit, hyperparameters) are carried
along and ignored here.

    excluded      a model not clearly above chance (chance_p_value > 0.001) or
                  with a non-finite figure: counted, left out
    sigma*        the smallest sigma at which fewer than 10 % of the study's
                  models have R = 0 (the largest sigma if none): read from R only
    architecture  the mean over its training seeds of R(sigma*), the loss gap at
                  sigma*, the area under R(sigma) (trapezoid), clean test and
                  mean corruption accuracy
    H1            partial Spearman of R(sigma*) with corruption accuracy given
                  clean accuracy, over architectures; 95 % percentile bootstrap
                  over architectures (10,000 resamples, seed 0)
                  support: interval < 0; contrary: interval > 0; otherwise no
                  support ("no effect of a useful size" when inside (-0.3, 0.3))
    b             least-squares slope of corruption on clean accuracy over the
                  architectures of the same data set
    H2            per search seed, a pick's figures are the means over its
                  retraining seeds; delta_adj = (corr_A - corr_B) - b (clean_A -
                  clean_B), averaged over search seeds; 95 % interval from a
                  two-level bootstrap (search seeds, then retraining seeds
                  within each pick), 10,000 resamples, seed 0; also the
                  t-interval over search seeds
                  support: interval > 0 and A at most 1 point less accurate on
                  clean images than B on average; contrary: interval < 0;
                  otherwise no support

Descriptive, added after the pre-registration (decides nothing):

    seed agreement  for each figure, Kendall tau between two training seeds'
                  values over the architectures trained with every seed (the
                  mean over seed pairs with 3 seeds); 95 % bootstrap over
                  architectures. How well one from-scratch run ranks the
                  architectures as another does: a ceiling for anything that
                  is compared with from-scratch training (a supernet, a
                  predictor), and the resolution of H1's per-architecture means
    within        partial Spearman of R(sigma*) with corruption accuracy given
                  clean accuracy over the models, each figure taken as its
                  deviation from its architecture's mean: whether a trained
                  network's flatness goes with its robustness among networks
                  of one architecture (seeds only differ); 95 % bootstrap over
                  architectures (all of an architecture's models together)

Usage:
    python benchmarks/study_analysis.py [--study docs/results/flatness_ood]
        [--resamples 10000]

Writes `report.md` and `analysis.json` into the study directory (atomically)
and prints the verdicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import pathlib
import sys
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from scipy import stats

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import rank_stats  # noqa: E402
from common import ROOT, write_atomic  # noqa: E402

SIGNIFICANCE = 1e-3  # the chance test's level (flatnas_tf.robustness.chance.DEFAULT_SIGNIFICANCE)
ZERO_SHARE = 0.10  # sigma*: fewer than this share of models with R = 0
USEFUL = 0.3  # |partial rho| below this is no effect of a useful size
CLEAN_TOLERANCE = 0.01  # H2: A may be at most 1 point less accurate than B
RESAMPLES = 10_000
#: K, the architectures preregistration.md plans per data set: below it the
#: figures are an interim look and H1 is not decided.
PLANNED_ARCHITECTURES = {"digits": 40, "cifar10": 24}
STUDY = ROOT / "docs" / "results" / "flatness_ood"
MODEL_STAGES = ("study", "pick")  # one trained model each; "search" records describe searches


def read_records(path: str | pathlib.Path) -> list[dict]:
    """The records of a records.jsonl file, in order (blank lines skipped)."""
    lines = pathlib.Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _finite(record: dict) -> bool:
    values = [record["test_accuracy"], record["corruption_accuracy"], *record["R"].values()]
    values += list(record.get("loss_gap", {}).values())
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def kept_and_excluded(records: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """The records the analysis uses, and those it leaves out (not above chance, not finite)."""
    kept, excluded = [], []
    for record in records:
        usable = record.get("chance_p_value", 0.0) <= SIGNIFICANCE and _finite(record)
        (kept if usable else excluded).append(record)
    return kept, excluded


def _sigmas(records: Sequence[dict]) -> list[str]:
    keys = {key for record in records for key in record["R"]}
    return sorted(keys, key=float)


def sigma_star(records: Sequence[dict]) -> str:
    """The smallest sigma at which fewer than 10 % of the models have R = 0."""
    sigmas = _sigmas(records)
    for sigma in sigmas:
        zeros = np.mean([record["R"][sigma] == 0 for record in records])
        if zeros < ZERO_SHARE:
            return sigma
    return sigmas[-1]


def _area(record: dict, sigmas: Sequence[str]) -> float:
    """The area under R(sigma), by the trapezoid rule."""
    r = np.array([record["R"][s] for s in sigmas])
    x = np.array([float(s) for s in sigmas])
    return float(np.sum((r[1:] + r[:-1]) / 2 * np.diff(x)))


@dataclasses.dataclass(frozen=True)
class Architectures:
    """Per-architecture means over training seeds (one row per architecture)."""

    arch: np.ndarray
    R: np.ndarray  # noqa: N815 - the paper's name
    loss_gap: np.ndarray
    area: np.ndarray
    clean: np.ndarray
    corruption: np.ndarray

    @property
    def relative(self) -> np.ndarray:
        """Corruption accuracy over clean accuracy."""
        return self.corruption / self.clean


def architectures(records: Sequence[dict], sigma: str) -> Architectures:
    """The study's per-architecture means at `sigma` (see the module docstring)."""
    sigmas = _sigmas(records)
    rows: dict[int, list[list[float]]] = {}
    for record in records:
        rows.setdefault(record["arch"], []).append(
            [
                record["R"][sigma],
                record["loss_gap"][sigma],
                _area(record, sigmas),
                record["test_accuracy"],
                record["corruption_accuracy"],
            ]
        )
    ids = sorted(rows)
    means = np.array([np.mean(rows[i], axis=0) for i in ids]).reshape(len(ids), 5)
    return Architectures(np.array(ids), *means.T)


def slope(table: Architectures) -> float:
    """Least-squares slope of corruption accuracy on clean accuracy (NaN below 2 clean values)."""
    if len(np.unique(table.clean)) < 2:  # a study under way: no line through one point
        return math.nan
    return float(np.polyfit(table.clean, table.corruption, 1)[0])


def h1_verdict(correlation: rank_stats.Correlation) -> str:
    """support, contrary evidence or no support (and which kind), from the interval."""
    if math.isnan(correlation.low):
        return "not decided yet (too few architectures for an interval)"
    if correlation.high < 0:
        return "support"
    if correlation.low > 0:
        return "contrary evidence"
    if -USEFUL < correlation.low and correlation.high < USEFUL:
        return "no support (no effect of a useful size)"
    return "no support (the study could not tell)"


def h1(table: Architectures, resamples: int = RESAMPLES, planned: int | None = None) -> dict:
    """H1's primary outcome and secondary figures, with their intervals and the verdict.

    Below `planned` architectures (K; None: no plan) the figures are given
    but the verdict waits: an interim look decides nothing.
    """

    def partial(x, y, z):
        return rank_stats.bootstrap(rank_stats.partial_spearman, [x, y, z], resamples)

    primary = partial(table.R, table.corruption, table.clean)
    return {
        "architectures": len(table.arch),
        "primary": primary,
        "verdict": (
            f"not decided yet ({len(table.arch)} of {planned} architectures, an interim look)"
            if planned and len(table.arch) < planned
            else h1_verdict(primary)
        ),
        "loss_gap": partial(table.loss_gap, table.corruption, table.clean),
        "area": partial(table.area, table.corruption, table.clean),
        "relative": partial(table.R, table.relative, table.clean),
        "raw_spearman": rank_stats.bootstrap(
            rank_stats.spearman, [table.R, table.corruption], resamples
        ),
        "raw_kendall": rank_stats.bootstrap(
            rank_stats.kendall, [table.R, table.corruption], resamples
        ),
    }


#: The figures whose seed agreement the report gives: name -> figure of a record.
AGREEMENT_FIGURES = {
    "validation accuracy": lambda record, sigma: record["val_accuracy"],
    "clean test accuracy": lambda record, sigma: record["test_accuracy"],
    "mean corruption accuracy": lambda record, sigma: record["corruption_accuracy"],
    "R(sigma*)": lambda record, sigma: record["R"][sigma],
}


def seed_agreement(
    records: Sequence[dict],
    figure: Callable[[dict], float],
    resamples: int = RESAMPLES,
) -> rank_stats.Correlation:
    """Kendall tau of one figure between training seeds, over architectures.

    Args:
        records: Study records (one per architecture and training seed).
        figure: The figure of a record to rank by.
        resamples: Bootstrap resamples (over architectures).

    Returns:
        The mean Kendall tau over pairs of training seeds, on the
        architectures trained with every seed, with its bootstrap interval
        (NaN below 2 seeds or 3 such architectures).

    Example:
    >>> rows = [{"arch": a, "train_seed": s, "x": a + s / 10} for a in range(4) for s in (0, 1)]
    >>> seed_agreement(rows, lambda r: r["x"], resamples=50).value
    1.0
    """
    archs, columns = seed_columns(records, figure)
    if len(columns) < 2:
        return rank_stats.Correlation(math.nan, math.nan, math.nan, len(archs))
    return rank_stats.bootstrap(mean_tau_between, columns, resamples)


def seed_columns(
    records: Sequence[dict], figure: Callable[[dict], float]
) -> tuple[list[int], list[list[float]]]:
    """The architectures trained with every training seed, and one column of `figure` per seed.

    Args:
        records: Study records (one per architecture and training seed).
        figure: The figure of a record.

    Returns:
        (architectures, columns): columns[i][j] is the figure of
        architectures[j] trained with the i-th seed (seeds in order).
    """
    values: dict[int, dict[int, float]] = {}
    for record in records:
        values.setdefault(record["arch"], {})[record["train_seed"]] = figure(record)
    seeds = sorted({seed for per_seed in values.values() for seed in per_seed})
    archs = [arch for arch, per_seed in values.items() if set(seeds) <= set(per_seed)]
    return archs, [[values[arch][seed] for arch in archs] for seed in seeds]


def mean_tau_between(*columns: np.ndarray) -> float:
    """The mean Kendall tau over pairs of columns (NaN with fewer than two)."""
    pairs = list(itertools.combinations(columns, 2))
    if not pairs:
        return math.nan
    return float(np.mean([rank_stats.kendall(a, b) for a, b in pairs]))


def within_architectures(
    records: Sequence[dict], sigma: str, resamples: int = RESAMPLES, seed: int = 0
) -> rank_stats.Correlation:
    """H1's partial correlation among the training seeds of each architecture.

    Args:
        records: Study records.
        sigma: The sigma of R (sigma*).
        resamples: Bootstrap resamples; architectures are resampled whole.
        seed: Seed of the resampling.

    Returns:
        The partial Spearman of R with corruption accuracy given clean
        accuracy, each the model's deviation from its architecture's mean
        (architectures with one model left out), with its interval.
    """
    groups: dict[int, list[list[float]]] = {}
    for record in records:
        figures = [record["R"][sigma], record["corruption_accuracy"], record["test_accuracy"]]
        groups.setdefault(record["arch"], []).append(figures)
    deviations = [
        np.asarray(rows) - np.mean(rows, axis=0) for rows in groups.values() if len(rows) > 1
    ]

    def statistic(chosen: Iterable[int]) -> float:
        stacked = np.concatenate([deviations[i] for i in chosen])
        return rank_stats.partial_spearman(*stacked.T)

    value = statistic(range(len(deviations))) if deviations else math.nan
    if math.isnan(value):
        return rank_stats.Correlation(math.nan, math.nan, math.nan, len(deviations))
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, len(deviations), len(deviations))) for _ in range(resamples)]
    draws = [d for d in draws if math.isfinite(d)]
    low, high = np.quantile(draws, [0.025, 0.975]) if draws else (math.nan, math.nan)
    return rank_stats.Correlation(value, float(low), float(high), len(deviations))


def _pick_cells(records: Sequence[dict], arms: tuple[str, str], pick: str) -> dict:
    """{search seed: {arm: [(clean, corruption) per retraining seed]}} of seeds both arms have."""
    cells: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for record in records:
        if record["pick"] == pick and record["arm"] in arms:
            arm_cells = cells.setdefault(record["search_seed"], {})
            arm_cells.setdefault(record["arm"], []).append(
                (record["test_accuracy"], record["corruption_accuracy"])
            )
    return {seed: arms_ for seed, arms_ in sorted(cells.items()) if set(arms) <= set(arms_)}


def _delta(cells: dict, arms: tuple[str, str], b: float) -> tuple[float, float]:
    """(delta_adj, clean difference) averaged over the search seeds of `cells`."""
    first, second = arms
    deltas, cleans = [], []
    for per_arm in cells.values():
        clean_a, corr_a = np.mean(per_arm[first], axis=0)
        clean_b, corr_b = np.mean(per_arm[second], axis=0)
        deltas.append((corr_a - corr_b) - b * (clean_a - clean_b))
        cleans.append(clean_a - clean_b)
    return float(np.mean(deltas)), float(np.mean(cleans))


def h2(
    records: Sequence[dict],
    b: float,
    arms: tuple[str, str] = ("A", "B"),
    pick: str = "tradeoff",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """The clean-adjusted paired difference of two arms' picks, its intervals and the verdict."""
    cells = _pick_cells(records, arms, pick)
    if not cells:
        return {"search_seeds": 0, "verdict": "no support (no paired picks)"}
    value, clean_difference = _delta(cells, arms, b)
    per_seed = {s: _delta({s: c}, arms, b)[0] for s, c in cells.items()}
    rng = np.random.default_rng(seed)
    seeds = list(cells)
    draws = []
    for _ in range(resamples):
        chosen = rng.choice(len(seeds), size=len(seeds))
        resampled = {
            i: {
                arm: [rows[k] for k in rng.integers(0, len(rows), size=len(rows))]
                for arm, rows in cells[seeds[c]].items()
            }
            for i, c in enumerate(chosen)
        }
        draws.append(_delta(resampled, arms, b)[0])
    low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    t_low = t_high = math.nan
    if len(seeds) >= 2:
        spread = np.std(list(per_seed.values()), ddof=1) / math.sqrt(len(seeds))
        half = float(stats.t.ppf(0.975, len(seeds) - 1) * spread)
        t_low, t_high = value - half, value + half
    if low > 0 and clean_difference >= -CLEAN_TOLERANCE:
        verdict = "support"
    elif high < 0:
        verdict = "contrary evidence"
    elif low > 0:
        verdict = "no support (the gain comes with a clean-accuracy loss above 1 point)"
    else:
        verdict = "no support (the interval contains 0)"
    return {
        "arms": list(arms),
        "pick": pick,
        "search_seeds": len(seeds),
        "slope_b": b,
        "delta_adj": value,
        "interval": [low, high],
        "t_interval": [t_low, t_high],
        "clean_difference": clean_difference,
        "per_seed": per_seed,
        "verdict": verdict,
    }


def search_summary(searches: Sequence[dict]) -> dict[str, dict]:
    """Per arm: searches, trials trained and reused, front sizes, machine minutes."""
    summary: dict[str, dict] = {}
    for arm in sorted({s["arm"] for s in searches}):
        mine = [s for s in searches if s["arm"] == arm]
        summary[arm] = {
            "description": mine[0].get("arm_description", arm),
            "searches": len(mine),
            "search_seeds": sorted(s["search_seed"] for s in mine),
            "trials_trained": sum(s["trials_trained"] for s in mine),
            "trials_reused": sum(s["trials_reused"] for s in mine),
            "front_sizes": [sum(t["on_front"] for t in s["trials"]) for s in mine],
            "minutes": sum(s["wall_s"] for s in mine) / 60,
        }
    return summary


def machine_hours(records: Sequence[dict]) -> dict[str, float]:
    """Hours of training and measuring the records hold, per stage and in all.

    A pick copied from another (`copied_from`: the same training) is counted
    once, where it was trained; a search's time is its own trials' (the trials
    it reused from another arm are that arm's).
    """
    hours = {stage: 0.0 for stage in (*MODEL_STAGES, "search")}
    for record in records:
        if not record.get("copied_from"):
            hours[record["stage"]] += record.get("wall_s", 0.0) / 3600
    return {**hours, "total": sum(hours.values())}


def analyse(
    records: Sequence[dict], resamples: int = RESAMPLES, planned: int | None = None
) -> dict:
    """The whole analysis of one data set's records (see the module docstring).

    `planned`: the architectures the study plans (`PLANNED_ARCHITECTURES`).
    """
    searches = [r for r in records if r["stage"] == "search"]
    records = [r for r in records if r["stage"] in MODEL_STAGES]
    kept, excluded = kept_and_excluded(records)
    study = [r for r in kept if r["stage"] == "study"]
    picks = [r for r in kept if r["stage"] == "pick"]
    result: dict = {"models": len(records), "excluded": len(excluded)}
    result["machine_hours"] = machine_hours([*records, *searches])
    if searches:
        result["searches"] = search_summary(searches)
    if not study:
        return {**result, "verdict_h1": "no records yet"}
    clean = [100 * r["test_accuracy"] for r in study]
    result["clean_accuracy_pct"] = {
        "median": float(np.median(clean)),
        "min": min(clean),
        "max": max(clean),
    }
    sigma = sigma_star(study)
    table = architectures(study, sigma)
    b = slope(table)
    result.update(sigma_star=sigma, slope_b=b, h1=h1(table, resamples, planned))
    result["verdict_h1"] = result["h1"]["verdict"]
    result["within_architectures"] = within_architectures(study, sigma, resamples)
    result["seed_agreement"] = {
        name: seed_agreement(study, lambda record, f=figure: f(record, sigma), resamples)
        for name, figure in AGREEMENT_FIGURES.items()
    }
    if picks:
        result["h2"] = h2(picks, b, ("A", "B"), "tradeoff", resamples)
        result["h2_paper_contrast"] = h2(picks, b, ("A", "C"), "tradeoff", resamples)
        result["h2_most_accurate"] = h2(picks, b, ("A", "B"), "most_accurate", resamples)
    return result


def _plain(value):
    """JSON-ready: Correlations as dicts, NaN as None."""
    if isinstance(value, rank_stats.Correlation):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _h2_line(name: str, outcome: dict | None) -> str:
    if not outcome or not outcome.get("search_seeds"):
        return f"| {name} | - | - | - | no paired picks yet |"
    low, high = outcome["interval"]
    return (
        f"| {name} | {outcome['search_seeds']} | {100 * outcome['delta_adj']:+.2f} "
        f"[{100 * low:+.2f}, {100 * high:+.2f}] | {100 * outcome['clean_difference']:+.2f} | "
        f"{outcome['verdict']} |"
    )


def markdown(results: dict[str, dict]) -> str:
    """report.md: for each data set, what was measured, the outcomes and the verdicts."""
    lines = [
        "# Does flatness-aware search buy OOD robustness? Report",
        "",
        "Rebuilt by `python benchmarks/study_analysis.py` from `<data>/records.jsonl` alone, by",
        "the analysis pre-registered in [preregistration.md](preregistration.md).",
        "",
    ]
    for data, result in results.items():
        lines += [f"## {data}", ""]
        lines.append(f"- models recorded: {result['models']}, excluded: {result['excluded']}")
        hours = result["machine_hours"]
        lines.append(
            f"- machine hours in the records: {hours['total']:.1f} (study models "
            f"{hours['study']:.1f}, picks {hours['pick']:.1f}, searches {hours['search']:.1f}; "
            "pilots and benchmarks are not in the records)"
        )
        if "h1" not in result:
            lines += ["- no study records yet", ""]
            continue
        h1_result = result["h1"]
        b = result["slope_b"]
        b_text = "n/a (one architecture)" if math.isnan(b) else f"{b:.3f}"
        lines += [
            f"- sigma* = {result['sigma_star']} (the smallest sigma with fewer than 10 % of "
            "the models at R = 0)",
            f"- architectures: {h1_result['architectures']}; slope b of corruption on clean "
            f"accuracy: {b_text}",
            "- clean test accuracy of the study's models: median "
            f"{result['clean_accuracy_pct']['median']:.1f} % (range "
            f"{result['clean_accuracy_pct']['min']:.1f}-{result['clean_accuracy_pct']['max']:.1f} "
            "%)",
            "",
            "| H1: partial Spearman given clean accuracy | value [95 % bootstrap] |",
            "|---|---|",
            f"| **R(sigma\\*) vs corruption accuracy (primary)** | **{h1_result['primary']}** |",
            f"| loss gap vs corruption accuracy | {h1_result['loss_gap']} |",
            f"| area under R(sigma) vs corruption accuracy | {h1_result['area']} |",
            f"| R vs relative robustness (corruption / clean) | {h1_result['relative']} |",
            f"| raw Spearman, R vs corruption accuracy | {h1_result['raw_spearman']} |",
            f"| raw Kendall, R vs corruption accuracy | {h1_result['raw_kendall']} |",
            "",
            f"**Verdict on H1: {result['verdict_h1']}.**",
            "",
            "How reproducible an architecture's figures are (descriptive, not pre-registered): "
            "Kendall tau between two training seeds of the same architectures. It bounds how "
            "well any one measurement (a supernet's, a predictor's) can agree with training "
            "from scratch.",
            "",
            "| figure | architectures | tau between seeds [95 % bootstrap] |",
            "|---|---|---|",
            *(
                f"| {name} | {agreement.n} | {agreement} |"
                for name, agreement in result["seed_agreement"].items()
            ),
            "",
            "Among the training seeds of each architecture (descriptive, not pre-registered): "
            "partial Spearman of R(sigma\\*) with corruption accuracy given clean accuracy, "
            "each a model's deviation from its architecture's mean, over "
            f"{result['within_architectures'].n} architectures: "
            f"**{result['within_architectures']}** (bootstrap over architectures).",
            "",
            "| H2 contrast | search seeds | delta_adj, points [95 %] | clean A - B, points "
            "| verdict |",
            "|---|---|---|---|---|",
            _h2_line("**A - B, trade-off picks (primary)**", result.get("h2")),
            _h2_line("A - C, trade-off picks", result.get("h2_paper_contrast")),
            _h2_line("A - B, most accurate picks", result.get("h2_most_accurate")),
            "",
        ]
        if "searches" in result:
            lines += [
                "| search arm | searches (seeds) | trials trained / reused | front sizes "
                "| machine minutes |",
                "|---|---|---|---|---|",
                *(
                    f"| {arm}: {s['description']} | {s['searches']} ({s['search_seeds']}) | "
                    f"{s['trials_trained']} / {s['trials_reused']} | {s['front_sizes']} | "
                    f"{s['minutes']:.0f} |"
                    for arm, s in result["searches"].items()
                ),
                "",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Reads every `<data>/records.jsonl` of the study, writes report.md and analysis.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=pathlib.Path, default=STUDY)
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    args = parser.parse_args(argv)
    results = {
        path.parent.name: analyse(
            read_records(path), args.resamples, PLANNED_ARCHITECTURES.get(path.parent.name)
        )
        for path in sorted(args.study.glob("*/records.jsonl"))
    }
    write_atomic(args.study / "analysis.json", json.dumps(_plain(results), indent=2) + "\n")
    write_atomic(args.study / "report.md", markdown(results))
    for data, result in results.items():
        print(f"{data}: H1 {result['verdict_h1']}; H2 {result.get('h2', {}).get('verdict', '-')}")
    return results


if __name__ == "__main__":
    main()
