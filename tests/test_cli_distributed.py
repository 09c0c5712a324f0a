"""The distributed search's options: KerasTuner's role variables and the tuner's arguments."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from flatnas_tf.cli import distributed
from flatnas_tf.cli.main import main
from flatnas_tf.tuners.access import TLS

ROLE_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
#: The distributed options' parameter names.
_NAMES = [
    "role", "oracle_host", "oracle_port", "worker_timeout", "token_file",
    "tls_cert", "tls_key", "tls_ca", "chief_timeout", "worker_id",
]  # fmt: skip


def _options(**given):
    """The distributed options of `flatnas-tf search` as its parser gives them, with `given`."""
    defaults = {p.name: p.default for p in main.commands["search"].params}
    return {name: defaults[name] for name in _NAMES} | given


@pytest.fixture
def environment(monkeypatch):
    """No role variables during the test, and after it the environment as it was.

    `take_role` writes os.environ itself; a role left behind would make every
    later KerasTuner search in this process a chief serving on its address.
    Setting each variable through monkeypatch first records it for the undo.
    """
    for name in ROLE_VARIABLES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_without_a_role_nothing_is_set_and_no_lease_is_taken(environment):
    distributed.take_role(_options())
    assert not any(name in os.environ for name in ROLE_VARIABLES)
    assert distributed.tuner_options(_options(worker_timeout=60)) == {
        "trial_lease_s": None,
        "token_file": None,
        "chief_timeout_s": _options()["chief_timeout"],
        "tls": None,
    }


@pytest.mark.parametrize("role, tuner_id", [("chief", "chief"), ("worker", "tuner3")])
def test_a_role_becomes_keras_tuners_variables(environment, role, tuner_id):
    given = {"oracle_host": "10.0.0.2", "oracle_port": 9001, "worker_id": 3}
    distributed.take_role(_options(role=role, **given))
    assert [os.environ[name] for name in ROLE_VARIABLES] == [tuner_id, "10.0.0.2", "9001"]
    lease = distributed.tuner_options(_options(role=role, worker_timeout=60))["trial_lease_s"]
    assert lease == (60 if role == "chief" else None)  # only the chief hands out leases


def test_tls_files_become_the_tuners_tls(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("a certificate")
    options = distributed.tuner_options(_options(role="worker", tls_ca=str(ca)))
    assert options["tls"] == TLS(trusted=str(ca))


def test_every_distributed_option_is_one_of_the_search_command():
    help_text = CliRunner().invoke(main, ["search", "--help"]).output
    for name in _NAMES:
        assert f"--{name.replace('_', '-')}" in help_text


def test_no_role_variable_outlives_the_tests_that_set_one():
    # Runs after the role tests in this module (pytest keeps file order).
    assert not any(name in os.environ for name in ROLE_VARIABLES)
