"""The distributed search's options, and what they become: KerasTuner's roles, the tuner's.

`flatnas-tf search --role chief|worker` runs one process of a distributed
search (docs/distributed.md): the chief serves the oracle on --oracle-host
and --oracle-port, workers train its trials, all in one --out. Here the
options are declared (`OPTIONS`), the role is set in the environment
variables KerasTuner reads (`take_role`), and the rest become the tuner's
arguments (`tuner_options`: the trial lease, the token, the chief's timeout,
TLS).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from flatnas_tf import defaults
from flatnas_tf.cli import options as opt


def _file_option(flag: str, help: str) -> Callable:  # noqa: A002 (Click's name)
    """An option naming a file that must exist (a token, a PEM certificate or key)."""
    return click.option(flag, type=click.Path(exists=True, dir_okay=False), default=None, help=help)


#: --role, --oracle-host/-port, --worker-id and the chief's and workers' settings.
OPTIONS = opt.stack(
    click.option(
        "--role",
        type=click.Choice(["chief", "worker"]),
        default=None,
        help="Distributed search: the chief serves the oracle, workers run trials; all share "
        "--out.",
    ),
    click.option(
        "--oracle-host",
        default="127.0.0.1",
        help="Chief's address (with --role); the chief listens on it. Calls need the search's "
        "token but travel unencrypted: use a loopback or private address on a trusted network.",
    ),
    click.option(
        "--oracle-port",
        type=click.IntRange(1, 65535),
        default=8000,
        help="Chief's port (with --role).",
    ),
    click.option(
        "--worker-timeout",
        type=opt.FiniteFloatRange(min=0, min_open=True),
        default=1800,
        help="With --role chief: seconds a worker may go without a heartbeat (it sends one per "
        "epoch and every few seconds of training) before its trial is handed to another worker. "
        "Make it longer than a trial's measurement.",
    ),
    _file_option(
        "--token-file",
        "With --role: a file holding the token every call to the chief presents (default: "
        "$FLATNAS_TF_TOKEN, else the token file the chief writes in OUT/search/).",
    ),
    _file_option(
        "--tls-cert",
        "With --role chief: serve over TLS with this certificate (PEM; its names must include "
        "--oracle-host), with --tls-key.",
    ),
    _file_option(
        "--tls-key",
        "With --role chief: the private key of --tls-cert (PEM).",
    ),
    _file_option(
        "--tls-ca",
        "With --role worker: connect over TLS, trusting this CA (or the chief's self-signed "
        "certificate; PEM).",
    ),
    click.option(
        "--chief-timeout",
        type=opt.FiniteFloatRange(min=0, min_open=True),
        default=defaults.CHIEF_TIMEOUT_S,
        help="With --role worker: seconds a call waits for a chief that is not there (restarted "
        "after a preemption, say) before the worker gives up; it trains on meanwhile.",
    ),
    click.option(
        "--worker-id",
        type=click.IntRange(min=0),
        default=0,
        help="This worker's number (with --role worker).",
    ),
)


def take_role(options: dict[str, Any]) -> None:
    """Sets --role, --oracle-host/-port and --worker-id as KerasTuner's environment variables."""
    if options["role"] is None:
        return
    worker = f"tuner{options['worker_id']}"
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if options["role"] == "chief" else worker
    os.environ["KERASTUNER_ORACLE_IP"] = options["oracle_host"]
    os.environ["KERASTUNER_ORACLE_PORT"] = str(options["oracle_port"])


def tuner_options(options: dict[str, Any]) -> dict[str, Any]:
    """The tuner's arguments of a distributed search (`run_search`'s `tuner_options`).

    The chief's trial lease (--worker-timeout), the token file, a worker's
    --chief-timeout, and the TLS files (--tls-cert/--tls-key of the chief,
    --tls-ca of a worker) or None.
    """
    tls = None
    if options["tls_cert"] or options["tls_key"] or options["tls_ca"]:
        from flatnas_tf.tuners.access import TLS

        tls = TLS(options["tls_cert"], options["tls_key"], trusted=options["tls_ca"])
    return {
        "trial_lease_s": options["worker_timeout"] if options["role"] == "chief" else None,
        "token_file": options["token_file"],
        "chief_timeout_s": options["chief_timeout"],
        "tls": tls,
    }
