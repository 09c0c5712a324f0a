"""The `flatnas-tf` command group: search, supernet, train, evaluate, export, report, prepare.

One module per command (`cli/<command>.py`) parses its options (the shared
ones declared once in `options.py`), calls the library and prints; no
algorithm lives in `cli/`. Bad input ends with a one-line `Error: ...`
naming the option and exit code 2 (`errors.py`); nothing a finished trial
produced is deleted unless `--overwrite` is given.
"""

from __future__ import annotations

import click

from flatnas_tf._version import __version__
from flatnas_tf.cli.evaluate import evaluate
from flatnas_tf.cli.export import export
from flatnas_tf.cli.prepare import prepare
from flatnas_tf.cli.report import report
from flatnas_tf.cli.search import search
from flatnas_tf.cli.supernet import supernet
from flatnas_tf.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", prog_name="flatnas-tf")
def main() -> None:
    """FlatNAS: search networks for accuracy, flatness and size.

    flatnas-tf trains candidate architectures with Sharpness-Aware
    Minimization, scores them by validation accuracy, by the robustness of
    that accuracy to weight perturbations and by parameter count, and keeps
    the Pareto front of the three.
    """


for _command in (search, supernet, report, export, train, evaluate, prepare):
    main.add_command(_command)
