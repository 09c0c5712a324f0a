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
    for package in ("flatnas_tf", "tuners", "cli", "benchmarks")
    for path in sorted((ROOT / package).rglob("*.py"))
    if path.name != "compat.py"
]
_COMPAT = (ROOT / "flatnas_tf" / "compat.py").read_text()
#: The private members compat.py reaches: a `._name` (called or read) or a "_name" string
#: (`getattr`, and the hooks and state it lists).
PRIVATE = sorted(
    set(re.findall(r"\._([a-z]\w*)\b", _COMPAT)) | set(re.findall(r"\"_([a-z]\w*)\"", _COMPAT))
)


def test_the_hooks_and_state_relied_on_exist_in_the_installed_keras_tuner(tmp_path):
    missing = [name for name in compat.ORACLE_HOOKS if not hasattr(kt.Oracle, name)]
    missing += [name for name in compat.TUNER_HOOKS if not hasattr(kt.Tuner, name)]
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("f", "min"), max_trials=1)
    oracle._set_project_dir(str(tmp_path), "p")
    missing += [name for name in compat.ORACLE_STATE if not hasattr(oracle, name)]
    assert missing == []


def test_every_private_member_is_reached_through_compat():
    keras_tuner_members = {"compute_values_hash", "try_build", "is_worker", "get_n_values"}
    keras_members = {"flatten_layers", "symbolic_build", "loss_tracker", "learning_rate"}
    assert keras_tuner_members | keras_members | {"registry"} <= set(PRIVATE)
    assert any(path.parent.name == "training" for path in SOURCES)  # subpackages are read
    outside = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            if re.search(
                r"\bfrom (keras(_tuner)?|tensorflow)\.(src|python)\b"
                r"|\bimport (keras(_tuner)?|tensorflow)\.(src|python)\b|\btf\.__internal__\b",
                line,
            ):
                outside.append(where)
            for name in PRIVATE:
                # An override (`def _name`, `super()._name(`) and a subclass's own state
                # (`self._name`, `ORACLE_STATE`) are the subclass's, not a reach inside.
                if re.search(rf"(?<!super\(\))(?<!\bself)\._{name}\b|[\"']_{name}[\"']", line):
                    outside.append(where)
    assert outside == []


def test_the_optimizer_hooks_exist_in_the_installed_keras():
    import keras

    assert [n for n in compat.OPTIMIZER_HOOKS if not hasattr(keras.optimizers.SGD, n)] == []


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


def test_the_keras_accessors_answer_as_keras_does(tmp_path):
    import keras
    import numpy as np

    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.BatchNormalization()])
    within = compat.layers_within(model)  # public `layers` stops at `inner`: the walk recurses
    assert inner.layers[0] in within and inner in within and model.layers[-1] in within
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4),
        loss="mse",
    )
    batch = (np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32"))
    assert compat.symbolic_build(model, batch) and model.optimizer.built
    assert isinstance(compat.loss_tracker(model), keras.metrics.Mean)
    optimizer = model.optimizer
    assert float(compat.learning_rate_object(optimizer).numpy()) == np.float32(0.1)
    kernel = inner.layers[0].kernel
    assert optimizer.momentums[compat.variable_index(optimizer, kernel)].shape == kernel.shape
    optimizer.exclude_from_weight_decay(var_list=[kernel])
    assert not compat.uses_weight_decay(optimizer, kernel)
    assert compat.uses_weight_decay(optimizer, inner.layers[0].bias)
    strategy, value = compat.merge_call(lambda strategy, x: (strategy, x), optimizer, 3)
    assert value == 3 and strategy.num_replicas_in_sync == 1
    assert isinstance(compat.custom_gradient_registry(), dict)
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("f", "min"), max_trials=1)
    compat.set_project_dir(oracle, str(tmp_path), "p")
    assert compat.project_dir(oracle) == str(tmp_path / "p")
