"""The report of a search directory: Pareto front, every trial, hypervolume, plots.

`flatnas-tf report` writes it from a `SearchResult` (the search's files alone,
for a finished search or one still running, without the hypermodel):

    alpha  = the saved alpha, or the one passed (re-ranked without retraining
             by `SearchResult.rank`; nothing is written back to the search)
    front  = result.front(alpha)              feasible completed trials, rank 0
    per trial (all statuses): generation, on_front, feasible, FIGURES, the
             objective values of that ranking (over the completed archive)
    HV(g)  = result.hypervolume(): of the completed, feasible trials of
             generations <= g, reference (accuracy 0, R 100, params P); see
             `flatnas_tf.tuners.result`
    HV_frac(g) = HV(g) / (1 * 100 * P)        the fraction of the reference box

Files written (names are the keys of `write_report`'s result):

    pareto.json        settings, counts, the front, hypervolume per generation
    trials.csv         one row per trial, every status
    report.md          the same for people, linking the plots; the front's OOD
                       accuracy when it was evaluated (search --ood)
    front.png          val accuracy vs params, coloured by R, front highlighted
    accuracy_vs_robustness.png   val accuracy vs R, front highlighted
    hypervolume.png    HV_frac per generation
    surrogate.png      a surrogate-assisted search only: each predictor's
                       cross-validated Kendall tau per refit, and the trust line

Infeasible trials (over max_params and never trained, or not clearly above
chance) and failed or running ones
appear in trials.csv and in the counts, never on the front or in the plots.
With no completed trial every file is still written and says so. Plots use
matplotlib's Agg backend, imported only when a report is drawn.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flatnas_tf.checks import check_number
from flatnas_tf.figures import CHANCE_METRIC, FIGURES
from flatnas_tf.persistence.storage import write_bytes, write_text
from flatnas_tf.tuners.records import COMPLETED
from flatnas_tf.tuners.result import HV_OBJECTIVES, HypervolumeHistory, SearchResult

__all__ = ["FILES", "front_lines", "write_report"]

#: The files of a report, in the output directory.
PARETO_JSON = "pareto.json"
TRIALS_CSV = "trials.csv"
REPORT_MD = "report.md"
FRONT_PNG = "front.png"
ROBUSTNESS_PNG = "accuracy_vs_robustness.png"
HYPERVOLUME_PNG = "hypervolume.png"
SURROGATE_PNG = "surrogate.png"
#: Every file name a report writes (the keys `write_report` returns), plots last;
#: surrogate.png only for a surrogate-assisted search.
FILES = (
    PARETO_JSON,
    TRIALS_CSV,
    REPORT_MD,
    FRONT_PNG,
    ROBUSTNESS_PNG,
    HYPERVOLUME_PNG,
    SURROGATE_PNG,
)
# -- the figures of a report --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Row:
    """One trial as the report sees it."""

    trial_id: str
    status: str
    generation: int | None
    on_front: bool
    feasible: bool  # completed, within the constraints, every objective finite
    figures: dict[str, float]
    objectives: dict[str, float]
    hyperparameters: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _Report:
    settings: dict[str, Any]
    rows: list[_Row]  # creation order
    front: list[_Row]  # the ranking's order (survival order)
    hypervolume: HypervolumeHistory
    refits: list[dict[str, Any]]  # a surrogate search's refits ([] for a plain one)
    proposed: list[str]  # the trials the surrogate proposed

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(row.status for row in self.rows)
        excluded = Counter(
            self._exclusion(row)
            for row in self.rows
            if row.status == COMPLETED and not row.feasible
        )
        return {
            "total": len(self.rows),
            **dict(sorted(counts.items())),
            "feasible": sum(row.feasible for row in self.rows),
            "infeasible": sum(excluded.values()),
            "over_max_params": excluded["over_max_params"],
            "at_chance": excluded["at_chance"],
            "figure_missing": excluded["figure_missing"],
            "front": len(self.front),
        }

    def _exclusion(self, row: _Row) -> str:
        """Why a completed trial is infeasible: the first constraint it breaks."""
        limit, significance = self.settings["max_params"], self.settings["chance_significance"]
        if limit is not None and row.figures["params"] > limit:
            return "over_max_params"
        if significance is not None and not row.figures[CHANCE_METRIC] <= significance:
            return "at_chance"
        return "figure_missing"


def _compute(result: SearchResult, alpha: float | None) -> _Report:
    check_number(alpha, "alpha", 0, 1, optional=True)
    objectives = result.objectives()
    names = [name for name, _ in objectives]
    flat_rows = result.to_rows(alpha)
    rows = [
        _Row(
            trial_id=flat["trial_id"],
            status=flat["status"],
            generation=flat["generation"],
            on_front=flat["on_front"],
            feasible=flat["feasible"],
            figures={name: flat[name] for name in FIGURES},
            objectives={name: flat[f"objective_{name}"] for name in names},
            hyperparameters=dict(trial.values),
        )
        for trial, flat in zip(result.trials, flat_rows, strict=True)
    ]
    on_front = [flat for flat in flat_rows if flat["on_front"]]
    front_ids = [flat["trial_id"] for flat in sorted(on_front, key=lambda flat: flat["score"])]
    row_of = {row.trial_id: row for row in rows}
    settings = {
        "project_dir": None if result.project_dir is None else str(result.project_dir),
        "mode": result.mode,
        "alpha": result.alpha if alpha is None else float(alpha),
        "saved_alpha": result.alpha,
        "alpha_norm": result.alpha_norm() if result.mode == "flatnas" else None,
        "max_params": result.max_params,
        "chance_significance": result.chance_significance,
        "population_size": result.population_size,
        "objectives": [{"name": n, "direction": d} for n, d in objectives],
        "generations": len({row.generation for row in rows} - {None}),
    }
    return _Report(
        settings,
        rows,
        [row_of[i] for i in front_ids],
        result.hypervolume(),
        result.surrogate_refits,
        result.surrogate_proposed,
    )


# -- rendering ----------------------------------------------------------------------


def _finite(value: float) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return float(value) if value is not None and math.isfinite(value) else None


def _row_json(row: _Row) -> dict[str, Any]:
    return {
        "trial_id": row.trial_id,
        "generation": row.generation,
        "hyperparameters": row.hyperparameters,
        "figures": {name: _finite(value) for name, value in row.figures.items()},
        "objectives": {name: _finite(value) for name, value in row.objectives.items()},
    }


def _to_json(report: _Report) -> str:
    hv = report.hypervolume
    document = {
        **{k: v for k, v in report.settings.items() if k != "objectives"},
        "objectives": report.settings["objectives"],
        "counts": report.counts,
        "front": [_row_json(row) for row in report.front],
        "hypervolume": {
            "objectives": [{"name": n, "direction": d} for n, d in HV_OBJECTIVES],
            "reference": list(hv.reference) if hv.reference else None,
            "by_generation": [
                {"generation": g, "trials": c, "hypervolume": v, "fraction": _finite(f)}
                for g, c, v, f in zip(
                    hv.generations, hv.counted, hv.values, hv.fractions, strict=True
                )
            ]
            if hv.reference
            else [],
        },
    }
    if report.refits:
        document["surrogate"] = {"refits": report.refits, "proposed_trials": report.proposed}
    return json.dumps(document, indent=2, default=str) + "\n"


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else format(value, ".10g")


def _to_csv(report: _Report) -> str:
    objective_names = [objective["name"] for objective in report.settings["objectives"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    objective_columns = [f"objective_{name}" for name in objective_names]
    writer.writerow(
        ["trial_id", "status", "generation", "on_front", "feasible"]
        + list(FIGURES)
        + objective_columns
        + ["hyperparameters"]
    )
    for row in report.rows:
        writer.writerow(
            [
                row.trial_id,
                row.status,
                "" if row.generation is None else row.generation,
                int(row.on_front),
                int(row.feasible),
            ]
            + [_number(row.figures[name]) for name in FIGURES]
            + [_number(row.objectives[name]) for name in objective_names]
            + [json.dumps(row.hyperparameters, default=str)]
        )
    return buffer.getvalue()


def _cell(value: float, pattern: str) -> str:
    return "-" if not math.isfinite(value) else format(value, pattern)


def _exclusion_lines(counts: dict[str, int], significance: float | None) -> list[str]:
    """One line per reason completed trials were excluded."""
    lines = []
    if counts["over_max_params"]:
        lines.append(f"- {counts['over_max_params']} over max_params: counted, never trained.")
    if counts["at_chance"]:
        lines.append(
            f"- {counts['at_chance']} not clearly above chance: validation accuracy no better "
            "than always answering the most frequent class (one-sided binomial test, "
            f"p > {significance:g}). Such networks have R near 0 whatever their quality."
        )
    if counts["figure_missing"]:
        lines.append(f"- {counts['figure_missing']} with a figure missing.")
    if lines:
        lines.insert(0, "")
    return lines


def _to_markdown(report: _Report, plots: bool, ood: dict[str, dict[str, Any]]) -> str:
    s = report.settings
    counts = report.counts
    objectives = ", ".join(f"{o['name']} ({o['direction']})" for o in s["objectives"])
    alpha = f"{s['alpha']:g}"
    if s["alpha"] != s["saved_alpha"]:
        alpha += f" (re-ranked; the search used {s['saved_alpha']:g})"
    if s["mode"] == "pareto":
        alpha += " (not used in mode pareto)"
    lines = ["# flatnas-tf search report", ""]
    if s["project_dir"]:
        lines += [f"Search directory: `{s['project_dir']}`", ""]
    lines += [
        "## Settings",
        "",
        f"- mode: {s['mode']}; objectives: {objectives}",
        f"- alpha: {alpha}",
    ]
    if s["alpha_norm"] is not None:
        lines.append(f"- alpha_norm: {s['alpha_norm']:.4g}")
    max_params = "none" if s["max_params"] is None else f"{int(s['max_params']):,}"
    lines += [
        f"- max_params: {max_params}",
        f"- population size: {s['population_size']}; generations so far: {s['generations']}",
        "",
        "## Trials",
        "",
        "| status | trials |",
        "|---|---|",
    ]
    statuses = [k for k in counts if k.isupper()]
    lines += [f"| {status} | {counts[status]} |" for status in statuses]
    lines += [
        f"| **total** | **{counts['total']}** |",
        "",
        f"Completed: {counts['feasible']} feasible, {counts['infeasible']} infeasible "
        "(excluded from the front, the exports and the OOD evaluation).",
        *_exclusion_lines(counts, s["chance_significance"]),
        "",
        f"## Pareto front ({counts['front']} trials)",
        "",
    ]
    if not report.front:
        lines.append(
            "No completed trials yet: no Pareto front."
            if counts.get(COMPLETED, 0) == 0
            else "No feasible completed trial: no Pareto front."
        )
    else:
        shown = ("val_accuracy", "robustness", "params")
        names = [o["name"] for o in s["objectives"] if o["name"] not in shown]
        front = sorted(report.front, key=lambda r: (r.figures["params"], r.trial_id))
        lines.append(
            "Sorted by parameters (pareto.json lists the oracle's survival order); their "
            "hyperparameters follow."
        )
        lines.append("")
        lines.append("| trial | gen | val acc % | R (pp) | params | " + " | ".join(names) + " |")
        lines.append("|---" * (5 + len(names)) + "|")
        for row in front:
            f = row.figures
            lines.append(
                f"| {row.trial_id} | {row.generation if row.generation is not None else '-'} | "
                f"{_cell(100 * f['val_accuracy'], '.2f')} | {_cell(f['robustness'], '.2f')} | "
                f"{_cell(f['params'], ',.0f')} | "
                + " | ".join(_cell(row.objectives[n], ".4g") for n in names)
                + " |"
            )
        lines += ["", *_hyperparameter_lines(front)]
    hv = report.hypervolume
    lines += ["", "## Hypervolume per generation", ""]
    if hv.reference is None or not any(hv.counted):
        lines.append("No completed feasible trial yet: no hypervolume.")
    else:
        lines += [
            "Over the completed feasible trials of generations <= g, in (val accuracy max, "
            f"R min, params min); reference point (0, {hv.reference[1]:g} pp, "
            f"{hv.reference[2]:,.0f} params); fraction = hypervolume / volume of the box "
            "between the ideal (1, 0, 0) and the reference.",
            "",
            "| generation | trials counted | hypervolume | fraction of the box |",
            "|---|---|---|---|",
        ]
        for g, c, v, f in zip(hv.generations, hv.counted, hv.values, hv.fractions, strict=True):
            lines.append(f"| {g} | {c} | {v:.6g} | {f:.4f} |")
    lines += _surrogate_lines(report)
    lines += _ood_lines(ood)
    lines += ["", "## Plots", ""]
    if not plots:
        lines += ["Not drawn (plots=False).", ""]
    else:
        lines += [
            f"![Validation accuracy vs parameters]({FRONT_PNG})",
            "",
            f"![Validation accuracy vs R]({ROBUSTNESS_PNG})",
            "",
            f"![Hypervolume per generation]({HYPERVOLUME_PNG})",
            "",
        ]
        if report.refits:
            lines += [f"![The surrogate's cross-validated tau per refit]({SURROGATE_PNG})", ""]
    lines += [
        f"Every trial: [{TRIALS_CSV}]({TRIALS_CSV}); the front: [{PARETO_JSON}]({PARETO_JSON}).",
    ]
    return "\n".join(lines) + "\n"


def _plottable(report: _Report) -> tuple[list[_Row], list[_Row]]:
    """Feasible completed trials with finite accuracy, R and params; the front among them."""
    rows = [
        row
        for row in report.rows
        if row.feasible
        and all(math.isfinite(row.figures[n]) for n in ("val_accuracy", "robustness", "params"))
    ]
    return rows, [row for row in rows if row.on_front]


def _front_of(report: _Report) -> str:
    """Which objectives the front is non-dominated in (not always the plot's axes)."""
    names = ", ".join(o["name"] for o in report.settings["objectives"])
    return f"in ({names})"


def _empty_note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _front_legend(ax: Any) -> None:
    """The scatter plots' legend, titled with what puts a trial on the front."""
    ax.legend(
        loc="best",
        fontsize=8,
        title="Pareto front: no trial is better in every objective",
        title_fontsize=7,
    )


def _label_trials(ax: Any, front: list[_Row], x: str) -> None:
    """Writes each front member's trial id beside its point (figure `x` against accuracy).

    Neighbours along x get their labels alternately above and below, so that
    close points keep readable labels.
    """
    ordered = sorted(front, key=lambda r: (r.figures[x], r.figures["val_accuracy"]))
    for i, r in enumerate(ordered):
        ax.annotate(
            r.trial_id,
            (r.figures[x], 100 * r.figures["val_accuracy"]),
            textcoords="offset points",
            xytext=(7, 6) if i % 2 == 0 else (7, -11),
            fontsize=7,
            color="crimson",
        )


def _plot_front(plt: Any, report: _Report, path: Path) -> None:
    rows, front = _plottable(report)
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation accuracy (%)")
    infeasible = report.counts["infeasible"]
    subtitle = f"{len(rows)} feasible trials, {len(front)} on the front"
    if infeasible:
        subtitle += f"; {infeasible} infeasible not shown"
    ax.set_title(
        f"Validation accuracy vs size\n{subtitle}\nfront: non-dominated {_front_of(report)}",
        fontsize=9,
    )
    if not rows:
        _empty_note(ax, "no completed feasible trial yet")
    else:
        params = np.array([r.figures["params"] for r in rows])
        accuracy = 100 * np.array([r.figures["val_accuracy"] for r in rows])
        robustness = np.array([r.figures["robustness"] for r in rows])
        points = ax.scatter(
            params,
            accuracy,
            c=robustness,
            cmap="viridis",
            s=34,
            edgecolors="0.25",
            linewidths=0.5,
            zorder=2,
            label="trial (colour: R)",
        )
        fig.colorbar(points, ax=ax, label="R (pp, lower = flatter)")
        ax.scatter(
            [r.figures["params"] for r in front],
            [100 * r.figures["val_accuracy"] for r in front],
            s=130,
            facecolors="none",
            edgecolors="crimson",
            linewidths=1.8,
            zorder=3,
            label="Pareto front",
        )
        _label_trials(ax, front, "params")
        # Parameters span orders of magnitude: a log axis fitted to the trials, with
        # max_params drawn when it is near them and named in the legend when it is not.
        low, high = params.min() / 1.3, params.max() * 1.3
        limit = report.settings["max_params"]
        if limit is not None and limit <= 3 * high:
            high = max(high, limit * 1.1)
            ax.axvline(limit, color="0.5", linestyle="--", linewidth=1, label="max_params")
        elif limit is not None:
            ax.plot([], [], " ", label=f"max_params {int(limit):,} (off the axis)")
        if low > 0:
            ax.set_xscale("log")
            ax.set_xlim(low, high)
        _front_legend(ax)
    ax.grid(alpha=0.3)
    _save(plt, fig, path)


def _plot_robustness(plt: Any, report: _Report, path: Path) -> None:
    rows, front = _plottable(report)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    ax.set_xlabel("R: accuracy drop under weight noise (pp, lower = flatter)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(
        f"Validation accuracy vs flatness\n{len(rows)} feasible trials, {len(front)} on the "
        f"front\nfront: non-dominated {_front_of(report)}",
        fontsize=9,
    )
    if not rows:
        _empty_note(ax, "no completed feasible trial yet")
    else:
        others = [r for r in rows if not r.on_front]
        ax.scatter(
            [r.figures["robustness"] for r in others],
            [100 * r.figures["val_accuracy"] for r in others],
            s=28,
            color="0.6",
            label="trial",
            zorder=2,
        )
        ax.scatter(
            [r.figures["robustness"] for r in front],
            [100 * r.figures["val_accuracy"] for r in front],
            s=45,
            color="crimson",
            edgecolors="black",
            linewidths=0.6,
            label="Pareto front",
            zorder=3,
        )
        _label_trials(ax, front, "robustness")
        _front_legend(ax)
    ax.grid(alpha=0.3)
    _save(plt, fig, path)


def _plot_hypervolume(plt: Any, report: _Report, path: Path) -> None:
    hv = report.hypervolume
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (fraction of the reference box)")
    if hv.reference is None or not any(hv.counted):
        ax.set_title("Hypervolume per generation", fontsize=10)
        _empty_note(ax, "no completed feasible trial yet")
    else:
        ax.set_title(
            "Hypervolume of (val acc max, R min, params min) per generation\n"
            f"reference (0, {hv.reference[1]:g} pp, {hv.reference[2]:,.0f} params)",
            fontsize=10,
        )
        ax.plot(hv.generations, hv.fractions, marker="o", color="tab:blue")
        ax.set_xticks(hv.generations)
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def _surrogate_lines(report: _Report) -> list[str]:
    """The surrogate section: one row per refit (none for a plain NSGA-II search)."""
    if not report.refits:
        return []
    front = {row.trial_id for row in report.front}
    names = list(dict.fromkeys(n for entry in report.refits for n in entry["predictors"]))
    lines = [
        "",
        "## Surrogate",
        "",
        f"{len(report.proposed)} of {len(report.rows)} trials were proposed by the surrogate "
        f"({sum(t in front for t in report.proposed)} of the front's {len(front)}); the others "
        "are the initial design and NSGA-II's offspring. Each refit predicts "
        f"{', '.join(names) or 'nothing'}; tau is the winner's mean cross-validated Kendall "
        f"tau, and a winner whose mean minus s.d. falls below {report.refits[-1]['min_score']:g} "
        "is not trusted: the next trials are left to NSGA-II. The switching that chooses the "
        'winner runs again only once the archive has grown enough; a tau marked "@N" is '
        "that of the switching on N points, whose winner was refitted on all points.",
        "",
        "| refit at trial | points | "
        + " | ".join(f"{name} tau (winner)" for name in names)
        + " | outcome | seconds |",
        "|---" * (4 + len(names)) + "|",
    ]
    for entry in report.refits:
        cells = []
        for name in names:
            predictor = entry["predictors"].get(name)
            if predictor is None:
                cells.append("-")
                continue
            at = f" @{predictor['switched_at']}" if predictor.get("refitted") else ""
            cells.append(f"{predictor['tau']:.2f}{at} ({predictor['winner']})")
        outcome = (
            f"{entry['proposed']} queued" if entry["trusted"] else f"not trusted: {entry['reason']}"
        )
        lines.append(
            f"| {entry['trial']} | {entry['points']} | "
            + " | ".join(cells)
            + f" | {outcome} | {entry['seconds']:g} |"
        )
    return lines


def _plot_surrogate(plt: Any, report: _Report, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    names = list(dict.fromkeys(n for entry in report.refits for n in entry["predictors"]))
    for name in names:
        points = [
            (entry["trial"], entry["predictors"][name]["tau"])
            for entry in report.refits
            if name in entry["predictors"]
        ]
        ax.plot(*zip(*points, strict=True), marker="o", label=name)
    line = report.refits[-1]["min_score"]
    ax.axhline(line, color="grey", linestyle="--", label=f"trust line ({line:g}, mean - s.d.)")
    ax.set_xlabel("refit at trial")
    ax.set_ylabel("cross-validated Kendall tau of the winner")
    ax.set_title("The surrogate's predictors, refit by refit", fontsize=10)
    ax.set_ylim(-1, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(plt, fig, path)


def _ood_lines(ood: dict[str, dict[str, Any]]) -> list[str]:
    """The OOD section: one row per evaluated trial, from its `OODResult.to_dict()`."""
    lines = ["", "## Out-of-distribution accuracy", ""]
    if not ood:
        return [*lines, "Not evaluated (search --ood builtin|cifar10_corrupted, or evaluate)."]
    lines += [
        "Front members evaluated under corruptions (`search --ood`).",
        "",
        "| trial | source | clean acc % | mean corruption acc % | mCE | averaged over |",
        "|---|---|---|---|---|---|",
    ]
    for trial_id, summary in sorted(ood.items()):
        clean = summary.get("clean_accuracy")
        lines.append(
            f"| {trial_id} | {summary.get('source', '-')} | "
            f"{_cell(100 * clean if clean is not None else math.nan, '.2f')} | "
            f"{_cell(100 * summary.get('mean_corruption_accuracy', math.nan), '.2f')} | "
            f"{_cell(summary.get('mce', math.nan), '.2f')} | "
            f"{summary.get('averaged_over', '-')} |"
        )
    return [*lines, "", "Per corruption and severity: `ood/trial_<id>.md` beside the report."]


def _hyperparameter_lines(front: list[_Row]) -> list[str]:
    """The front's hyperparameters as a table: a row per hyperparameter, a column per trial.

    A hyperparameter a trial does not use (a conditional one, e.g. the
    fourth layer of a stage of depth 3) is "-" in its column.
    """
    names: list[str] = []  # each trial's order, merged: a new name goes after its predecessor
    for row in front:
        previous = None
        for name in row.hyperparameters:
            if name not in names:
                names.insert(0 if previous is None else names.index(previous) + 1, name)
            previous = name
    lines = [
        "| hyperparameter | " + " | ".join(f"trial {row.trial_id}" for row in front) + " |",
        "|---" * (1 + len(front)) + "|",
    ]
    for name in names:
        cells = (str(row.hyperparameters.get(name, "-")) for row in front)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def front_lines(front: Sequence) -> str:
    """A front's trials, one line each: id, validation accuracy, R and parameters.

    Args:
        front: Trial records (`TrialRecord`) with `val_accuracy`, `robustness`
            and `params` among their figures.

    Example:
    ```python
    print(front_lines(SearchResult.load("runs/digits/search").front()))
    ```
    """
    return "\n".join(
        f"  trial {t.trial_id}  val_acc {100 * t.figures['val_accuracy']:5.1f}%  "
        f"R {t.figures['robustness']:5.2f}  params {int(t.figures['params']):>10,}"
        for t in front
    )


def write_report(
    result: SearchResult,
    out_dir: str | os.PathLike[str],
    alpha: float | None = None,
    plots: bool = True,
    ood: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Writes the report of a search: JSON, CSV, Markdown and PNG plots.

    What is computed, the hypervolume's reference point and the files are
    described in the module docstring. The search may be running: trials
    still RUNNING are listed with their status.

    Args:
        result: The search, e.g. `SearchResult.load(directory)`.
        out_dir: Directory to write into (created if needed).
        alpha: Re-rank the front under this alpha (mode "flatnas") without
            retraining; None keeps the saved one. Nothing is written back.
        plots: Whether to draw the PNG plots (needs matplotlib).
        ood: Trial id -> `OODResult.to_dict()` of the front members evaluated
            out of distribution, for report.md's OOD section.

    Returns:
        File name -> path of each file written ("pareto.json", "trials.csv",
        "report.md", and the three PNGs when `plots` is true; see `FILES`).

    Raises:
        ValueError: If `alpha` is not a number in [0, 1].
        ImportError: If `plots` is true and matplotlib is not installed.

    Example:
    ```python
    paths = write_report(SearchResult.load("runs/c10/search"), "runs/c10/report", alpha=0.8)
    print(paths["report.md"])
    ```
    """
    if plots:
        try:
            import matplotlib
        except ImportError as error:
            raise ImportError(
                "The report's plots need matplotlib: `pip install matplotlib`, or pass "
                "plots=False for the JSON, CSV and Markdown files only."
            ) from error
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    report = _compute(result, alpha)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in (PARETO_JSON, TRIALS_CSV, REPORT_MD)}
    write_text(paths[PARETO_JSON], _to_json(report))
    write_text(paths[TRIALS_CSV], _to_csv(report))
    write_text(paths[REPORT_MD], _to_markdown(report, plots, ood or {}))
    if plots:
        drawers = {
            FRONT_PNG: _plot_front,
            ROBUSTNESS_PNG: _plot_robustness,
            HYPERVOLUME_PNG: _plot_hypervolume,
        }
        if report.refits:
            drawers[SURROGATE_PNG] = _plot_surrogate
        for name, draw in drawers.items():
            paths[name] = out / name
            draw(plt, report, paths[name])
    return paths
