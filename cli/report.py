"""`flatnas-tf report DIRECTORY`: a search's report rebuilt, its front printed; no TensorFlow."""

from __future__ import annotations

import pathlib

import click

from flatnas_tf.app import runs
from flatnas_tf.cli import errors
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
    from flatnas_tf.app.reporting import rebuild_report
    from flatnas_tf.tuners.report import front_lines

    rebuilt = rebuild_report(runs.RunDirectory(pathlib.Path(directory)), alpha, out)
    for name, path in rebuilt.written.items():
        click.echo(f"{name}: {path}")
    under = "" if rebuilt.reranked_alpha is None else f", re-ranked with alpha {alpha:g}"
    click.echo(
        f"\nPareto front: {len(rebuilt.front)} of {rebuilt.completed} completed trials{under}"
    )
    if rebuilt.front:
        click.echo(front_lines(rebuilt.front))
