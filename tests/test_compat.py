"""KerasTuner's and Keras' private members: all still there, and used through compat only."""

from __future__ import annotations

import pathlib
import re

import keras_tuner as kt
import pytest

from flatnas_tf import compat

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = [
    path
    for package in ("flatnas_tf", "tuners", "cli")
    for path in sorted((ROOT / package).glob("*.py"))
    if path.name != "compat.py"
]
#: The private members compat.py calls (a `._name(` in it).
CALLED = sorted(
    set(re.findall(r"\._([a-z]\w*)\(", (ROOT / "flatnas_tf" / "compat.py").read_text()))
)


def test_the_hooks_and_state_relied_on_exist_in_the_installed_keras_tuner(tmp_path):
    missing = [name for name in compat.ORACLE_HOOKS if not hasattr(kt.Oracle, name)]
    missing += [name for name in compat.TUNER_HOOKS if not hasattr(kt.Tuner, name)]
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("f", "min"), max_trials=1)
    oracle._set_project_dir(str(tmp_path), "p")
    missing += [name for name in compat.ORACLE_STATE if not hasattr(oracle, name)]
    assert missing == []


def test_every_private_call_goes_through_compat():
    assert {"compute_values_hash", "try_build", "is_worker", "get_n_values"} <= set(CALLED)
    outside = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"\bfrom keras(_tuner)?\.src\b|\bimport keras(_tuner)?\.src\b", line):
                outside.append(f"{path.name}:{number}: {line.strip()}")
            for name in CALLED:
                # An override (`def _name`, `super()._name(`) is the subclass's own.
                if re.search(rf"(?<!super\(\))\._{name}\(", line):
                    outside.append(f"{path.name}:{number}: {line.strip()}")
    assert outside == []


@pytest.fixture(scope="module")
def tuner(tmp_path_factory):
    def build(hp):
        import keras

        units = hp.Int("units", 1, 4)
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])

    return kt.RandomSearch(
        build, objective="loss", max_trials=1, directory=tmp_path_factory.mktemp("t"),
        project_name="compat",
    )  # fmt: skip


def test_the_accessors_answer_as_keras_tuner_does(tuner):
    oracle = tuner.oracle
    assert compat.values_hash(oracle, {"a": 1}) == compat.values_hash(oracle, {"a": 1})
    assert compat.values_hash(oracle, {"a": 1}) != compat.values_hash(oracle, {"a": 2})
    assert compat.tried_so_far(oracle) == set()
    assert compat.oracle_file(oracle).endswith("oracle.json")
    assert compat.tuner_file(tuner).endswith(".json")
    assert compat.checkpoint_file(tuner, "07").endswith(f"trial_07/{compat.CHECKPOINT_FILE}")
    assert "trial_07" in compat.build_config_file(tuner, "07")
    assert not compat.is_worker(tuner) and not compat.is_chief_oracle()
    assert compat.grid_size(kt.engine.hyperparameters.Int("n", 0, 9)) == 10
    assert compat.try_build(tuner, kt.HyperParameters()).count_params() > 0
    assert compat.copy_callbacks(tuner, []) == []
    protos, servicer = compat.chief_service()
    assert hasattr(protos, "get_service_grpc") and servicer.__name__ == "OracleServicer"
