"""A search's report rebuilt from its files: what `flatnas-tf report` does, without TensorFlow.

What it does, step by step:

    read    the search's trial files (`SearchResult.load`), also while it runs
    rank    under the search's own alpha, or under another (mode flatnas):
            re-ranked from the recorded figures, nothing retrained
    write   `flatnas_tf.tuners.report.write_report`, with the front's OOD results
            in OUT/ood/, into OUT/report/; re-ranked, into
            OUT/report/alpha-<A>/, so that the search's own report stays as it is
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flatnas_tf.app.runs import RunDirectory

__all__ = ["RebuiltReport", "rebuild_report"]


@dataclasses.dataclass(frozen=True)
class RebuiltReport:
    """What `rebuild_report` wrote and ranked.

    Attributes:
        written: File name -> path of each file written (report.md, pareto.json, ...).
        front: The Pareto front under the ranking (`TrialRecord`s, in survival order).
        completed: Completed trials ranked.
        reranked_alpha: The alpha the search was re-ranked under; None: its own.
    """

    written: dict[str, Path]
    front: list
    completed: int
    reranked_alpha: float | None


def rebuild_report(
    run: RunDirectory, alpha: float | None = None, out: str | Path | None = None
) -> RebuiltReport:
    """Writes the report of the search in `run` again, under its alpha or another.

    Args:
        run: The search's directory.
        alpha: Error/flatness trade-off to re-rank under (mode flatnas); None
            or the search's own: its own ranking.
        out: Directory for the report; None: OUT/report, or re-ranked
            OUT/report/alpha-<A>.

    Returns:
        What was written, and the front.

    Raises:
        RunError: `run` is not a search.

    Example:
    ```python
    rebuilt = rebuild_report(RunDirectory(Path("runs/digits")), alpha=0.9)
    rebuilt.written["report.md"]  # runs/digits/report/alpha-0.9/report.md
    ```
    """
    from flatnas_tf.tuners.report import write_report
    from flatnas_tf.tuners.result import SearchResult

    run.settings()  # a RunError for a directory that is not a search
    result = SearchResult.load(run.project_dir)
    reranked = alpha is not None and alpha != result.alpha
    if out is None:
        out = run.report_dir / f"alpha-{alpha:g}" if reranked else run.report_dir
    written = write_report(result, out, alpha=alpha, ood=run.ood_results())
    return RebuiltReport(
        written,
        result.rank(alpha).front(),
        len(result.completed),
        alpha if reranked else None,
    )
