"""The `flatnas-tf` command group.

Commands (search, train, evaluate, export, report) are registered on `main`.
Heavy libraries (TensorFlow, Keras) are imported inside the commands, never at
module import, so `flatnas-tf --help` and `--version` answer at once.
"""

from __future__ import annotations

import click

from flatnas_tf._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="flatnas-tf")
def main() -> None:
    """FlatNAS: search networks for accuracy, flatness and size.

    flatnas-tf trains candidate architectures with Sharpness-Aware
    Minimization, scores them by validation accuracy, by the robustness of
    that accuracy to weight perturbations and by parameter count, and keeps
    the Pareto front of the three.
    """
