import ast
import pathlib
import re
import subprocess
import sys

import flatnas_tf

# Log lines carry a timestamp and a thread id: compare their text only.
_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")


def _stderr_lines(code: str) -> tuple[str, set[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    lines = {_LOG_PREFIX.sub("", line) for line in completed.stderr.splitlines() if line}
    return completed.stdout, lines


def test_import_adds_no_output_beyond_tensorflow():
    stdout, ours = _stderr_lines("import flatnas_tf")
    _, tensorflows = _stderr_lines("import tensorflow, keras; tensorflow.constant(0)")
    assert stdout == ""
    assert ours <= tensorflows, ours - tensorflows


def test_keras_imported_by_keras_tuner_still_registers_flatnas_tf_classes():
    # flatnas_tf registers its Keras classes once Keras is imported; here that
    # happens half-way through KerasTuner's own import.
    code = "import flatnas_tf, keras_tuner, keras; print(keras.saving.get_registered_object("
    code += "'flatnas_tf>SAMModel').__name__)"
    stdout, lines = _stderr_lines(code)
    assert stdout.strip() == "SAMModel"
    assert not any("could not register" in line for line in lines), lines


def test_subpackages_install_under_the_flatnas_tf_namespace():
    import flatnas_tf.cli.main
    import flatnas_tf.tuners

    assert flatnas_tf.tuners.__name__ == "flatnas_tf.tuners"
    assert flatnas_tf.cli.main.__name__ == "flatnas_tf.cli.main"


def test_public_api_is_declared():
    for name in flatnas_tf.__all__:
        assert hasattr(flatnas_tf, name), name


def _run(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip()


def test_import_is_lazy_and_pareto_needs_no_tensorflow():
    loaded = _run(
        "import sys, flatnas_tf, flatnas_tf.cli.main, flatnas_tf.tuners\n"
        "from flatnas_tf.tuners import pareto\n"
        "pareto.survival_order([[1, 2], [2, 1]], 'min')\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules))"
    )
    assert loaded == "[]"


def _type_checking_names(package) -> dict[str, str]:
    """Name -> module (relative to the package) of each import under its `if TYPE_CHECKING:`."""
    tree = ast.parse(pathlib.Path(package.__file__).read_text())
    (block,) = [
        node for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    ]  # fmt: skip
    return {
        alias.name: statement.module.removeprefix(package.__name__ + ".")
        for statement in block.body
        for alias in statement.names
    }


def test_lazy_namespaces_declare_their_exports():
    import flatnas_tf.tuners

    for package in (flatnas_tf, flatnas_tf.tuners):
        assert set(package.__all__) - {"__version__"} == set(package._EXPORTS)
        assert set(package.__all__) <= set(dir(package))
        # What type checkers see is what the lazy map serves, from the same modules.
        assert _type_checking_names(package) == package._EXPORTS
    assert flatnas_tf.tuners.pareto.fronts is flatnas_tf.tuners.fronts  # submodules too
    try:
        flatnas_tf.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


_SAVE = (
    "import flatnas_tf, keras, numpy as np\n"
    "inputs = keras.Input((4,))\n"
    "x = flatnas_tf.FusedBatchNormalization()(keras.layers.Dense(3)(inputs))\n"
    "model = flatnas_tf.SAMModel(inputs, keras.layers.Dense(2)(x), rho=0.1)\n"
    "model.compile(optimizer='sgd', loss=flatnas_tf.SparseCrossentropyWithSmoothing())\n"
    "model.save({path!r})\n"
    "print(model.predict(np.ones((1, 4)), verbose=0).round(5).tolist())\n"
)
_LOAD = {
    "keras after flatnas_tf": "import flatnas_tf\nimport keras\nload = keras.models.load_model",
    "tensorflow after flatnas_tf": (
        "import flatnas_tf\nimport tensorflow as tf\nload = tf.keras.models.load_model"
    ),
    "keras before flatnas_tf": "import keras\nimport flatnas_tf\nload = keras.models.load_model",
}


def test_keras_files_load_after_import_flatnas_tf_in_any_order(tmp_path):
    path = str(tmp_path / "model.keras")
    expected = _run(_SAVE.format(path=path))
    for how, prelude in _LOAD.items():
        code = (
            f"{prelude}\nimport numpy as np\nmodel = load({path!r})\n"
            "print(isinstance(model, flatnas_tf.SAMModel))\n"
            "print(model.predict(np.ones((1, 4)), verbose=0).round(5).tolist())"
        )
        assert _run(code).splitlines()[-2:] == ["True", expected], how
