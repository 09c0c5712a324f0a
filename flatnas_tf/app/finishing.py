"""What follows the last trial of a search: its report, its front under corruptions, exports.

    report     OUT/report/ (`flatnas_tf.tuners.report.write_report`) from the
               trial files, with the OOD results already in OUT/ood/
    front      each front member, in the oracle's order:
                 OOD      with a source: `evaluate_ood` of its model, written
                          as OUT/ood/trial_<id>.json/.csv/.md
                 export   OUT/models/trial_<id>/ (SavedModel, .keras,
                          manifest.json with the run's data split); an export
                          an earlier run finished (its manifest names the
                          trial: the manifest is written last) is kept
    report     again, when OOD results were added, so that report.md shows them

Running it again on a finished search repeats nothing finished: the exports
stay, the OOD results are measured again (they are cheap beside a search).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flatnas_tf.app import models
from flatnas_tf.app.runs import RunDirectory
from flatnas_tf.defaults import OOD_EXAMPLES

__all__ = ["FinishedSearch", "finish_search"]


@dataclasses.dataclass(frozen=True)
class FinishedSearch:
    """What `finish_search` found and wrote.

    Attributes:
        result: The search read back (`SearchResult`).
        front: Its Pareto front (`TrialRecord`s).
        report_file: The report.md written.
        exported: Ids of the front members exported now.
        kept: Ids of the front members whose earlier exports were kept.
        ood: Trial id -> its OOD result, for the members evaluated.
    """

    result: Any
    front: list
    report_file: Path
    exported: list[str]
    kept: list[str]
    ood: dict[str, Any]


def finish_search(
    run: RunDirectory,
    settings: dict[str, Any],
    *,
    data=None,
    ood_source: Any = None,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    ood_examples: int | None = OOD_EXAMPLES,
    data_dir: str | None = None,
    frost_dir: str | None = None,
    export: bool = True,
    front_table: Callable[[list], str] | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> FinishedSearch:
    """Writes the report of the search in `run`, evaluates its front under corruptions, exports it.

    Args:
        run: The search's directory.
        settings: Its run.json settings (`run.settings()`).
        data: The data set of the search (the clean figures of the OOD tables).
        ood_source: What `evaluate_ood` reads (`data` for its built-in
            corruptions, "cifar10_corrupted", a `CorruptedSet`); None: no OOD.
        corruptions: Which corruptions of the source (None: `evaluate_ood`'s
            default for it).
        severities: Which severities (None: 1 to 5).
        ood_examples: Test images per corruption and severity.
        data_dir: TFDS data directory of CIFAR-10-C.
        frost_dir: The frost photographs of the built-in frost corruption.
        export: Whether to export the front's models.
        front_table: Renders the front for `echo` (the tuner's
            `results_table`); None: trial ids and figures, one line each.
        echo: Called with each line to show.

    Returns:
        What was found and written.

    Example:
    ```python
    run = RunDirectory(Path("runs/digits"))
    finished = finish_search(run, run.settings(), echo=print)
    ```
    """
    from flatnas_tf.persistence.export import read_manifest
    from flatnas_tf.tuners import report

    result = models.search_result(run, settings)
    written = report.write_report(result, run.report_dir, ood=run.ood_results())
    front = result.front()
    echo(f"\nPareto front ({len(front)} of {len(result.trials)} trials):")
    echo(front_table(front) if front_table is not None else report.front_lines(front))
    if not front:
        echo(
            "No trial is on the front: report.md says why each was excluded (networks not "
            "clearly above chance usually need more --epochs)."
        )
    metadata = models.export_metadata(settings)
    exported, kept, ood = [], [], {}
    for trial in front:
        model = None
        if ood_source is not None:
            from flatnas_tf.robustness.ood import evaluate_ood

            echo(f"Evaluating trial {trial.trial_id} under corruptions ...")
            model = result.load_model(trial)
            measured = evaluate_ood(
                model,
                ood_source,
                corruptions,
                severities,
                max_examples=ood_examples,
                clean=data,
                data_dir=data_dir,
                frost_dir=frost_dir,
            )
            measured.write(run.ood_dir / f"trial_{trial.trial_id}")
            ood[trial.trial_id] = measured
            echo(
                f"OOD trial {trial.trial_id}: mean corruption accuracy "
                f"{100 * measured.mean_corruption_accuracy:.1f}%, mCE {measured.mce:.1f}"
            )
        if export:
            target = run.model_dir(trial.trial_id)
            if read_manifest(target).get("trial_id") == trial.trial_id:
                kept.append(trial.trial_id)
                continue
            echo(f"Exporting trial {trial.trial_id} to {target} ...")
            for note in result.export(trial, target, metadata=metadata, model=model):
                echo(note)
            exported.append(trial.trial_id)
    if ood:  # again, now with the front's OOD section
        written = report.write_report(result, run.report_dir, ood=run.ood_results())
    return FinishedSearch(result, front, written["report.md"], exported, kept, ood)
