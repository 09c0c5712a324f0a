"""`flatnas-tf export DIRECTORY`: SavedModel, .keras and manifest.json of a search's trials."""

from __future__ import annotations

import click

from flatnas_tf.cli import errors, inputs


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
    from flatnas_tf.app import models

    run = inputs.search_dir(directory)
    settings = run.settings()
    result = models.search_result(run, settings)
    trials = [inputs.find_trial(result, t) for t in trial_ids] or result.front()
    if not trials:
        raise click.UsageError(f"{directory} has no finished trial on a Pareto front yet.")
    metadata = models.export_metadata(settings)
    for trial in trials:
        model = inputs.trial_model(result, trial)
        target = run.model_dir(trial.trial_id)
        for note in result.export(trial, target, tflite, metadata, model):
            click.echo(note)
        click.echo(f"trial {trial.trial_id}: {target}")
