"""`flatnas-tf export DIRECTORY`: SavedModel, .keras and manifest.json of a search's trials."""

from __future__ import annotations

import pathlib

import click

from flatnas_tf.app import runs
from flatnas_tf.cli import errors


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--trial",
    "trial_ids",
    multiple=True,
    help="Trial id to export (repeatable); default: the Pareto front.",
)
@click.option("--tflite", is_flag=True, help="Also convert to TFLite, when it converts cleanly.")
@errors.fail_cleanly
@errors.quiet_tensorflow
def export(directory: str, trial_ids: tuple[str, ...], tflite: bool) -> None:
    """Export models of a search: SavedModel, .keras and manifest.json."""
    from flatnas_tf.app.models import export_trials

    run = runs.RunDirectory(pathlib.Path(directory))
    exported = export_trials(run, trial_ids, tflite=tflite, echo=click.echo)
    for trial_id, target in exported.items():
        click.echo(f"trial {trial_id}: {target}")
