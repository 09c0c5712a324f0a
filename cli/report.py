"""`flatnas-tf report DIRECTORY`: a search's report rebuilt, its front printed; no TensorFlow."""

from __future__ import annotations

import pathlib

import click

from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--alpha",
    type=opt.FiniteFloatRange(0, 1),
    default=None,
    help="Re-rank under another alpha (mode flatnas) without retraining.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the report. Default DIRECTORY/report, or with another --alpha "
    "DIRECTORY/report/alpha-<A> (the search's own report stays as it is).",
)
@errors.fail_cleanly
def report(directory: str, alpha: float | None, out: str | None) -> None:
    """Rebuild the report of a search directory (also while it runs), and print its front."""
    from flatnas_tf.tuners.report import front_lines, write_report
    from flatnas_tf.tuners.result import SearchResult

    run = inputs.search_dir(directory)
    result = SearchResult.load(run.project_dir)
    reranked = alpha is not None and alpha != result.alpha
    if out is not None:
        target = pathlib.Path(out)
    else:
        target = run.report_dir / f"alpha-{alpha:g}" if reranked else run.report_dir
    written = write_report(result, target, alpha=alpha, ood=run.ood_results())
    for name, path in written.items():
        click.echo(f"{name}: {path}")
    ranking = result.rank(alpha)
    front = ranking.front()
    under = f", re-ranked with alpha {alpha:g}" if reranked else ""
    click.echo(f"\nPareto front: {len(front)} of {len(result.completed)} completed trials{under}")
    if front:
        click.echo(front_lines(front))
