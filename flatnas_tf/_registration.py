"""Registering flatnas_tf's Keras classes as soon as Keras is imported.

A `.keras` file names its classes by their registered names
("flatnas_tf>SAMModel"); Keras finds them only once the modules defining them
have run their `register_keras_serializable` decorators. The top-level
namespace is lazy, so this module imports them at the first moment Keras is
completely imported:

    Keras already imported when flatnas_tf is      -> register now
    otherwise: a finder on sys.meta_path wraps the loaders of `keras` and
    `tensorflow`; after either finishes executing, if Keras is complete
    and TensorFlow is not half-way through its own import -> register,
    and the finder removes itself

TensorFlow's import imports Keras half-way through, and Keras imports
TensorFlow: registering at the end of Keras' execution inside TensorFlow's
would meet a half-initialised TensorFlow, so that case waits for TensorFlow
to finish. A failure to register is a warning, never a failed `import keras`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings
from types import ModuleType

#: The modules whose classes are registered with Keras.
MODULES = (
    "flatnas_tf.training.batchnorm",
    "flatnas_tf.training.losses",
    "flatnas_tf.training.optimizers",
    "flatnas_tf.space.resizing",
    "flatnas_tf.training.sam",
)
_WATCHED = ("keras", "tensorflow")


def register() -> None:
    """Imports the modules that register flatnas_tf's Keras classes (idempotent)."""
    for name in MODULES:
        importlib.import_module(name)


def _complete(name: str, finished: str | None = None) -> bool:
    """Whether module `name` is imported and done executing (`finished` just did)."""
    module = sys.modules.get(name)
    if module is None:
        return False
    return name == finished or not getattr(module.__spec__, "_initializing", False)


def _ready(finished: str | None = None) -> bool:
    """Keras complete, TensorFlow not half-way through its import."""
    tensorflow_busy = "tensorflow" in sys.modules and not _complete("tensorflow", finished)
    return _complete("keras", finished) and not tensorflow_busy


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds `keras` and `tensorflow` as the other finders do, registering once both are done."""

    def find_spec(self, fullname: str, path: object, target: ModuleType | None = None):
        if fullname not in _WATCHED:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            if _ready(finished=fullname) and self in sys.meta_path:
                sys.meta_path.remove(self)
                _register_or_warn()

        loader.exec_module = exec_module
        return spec


def _register_or_warn() -> None:
    try:
        register()
    except Exception as error:  # never break the user's `import keras`
        warnings.warn(
            f"flatnas_tf could not register its Keras classes ({error!r}); `.keras` files of "
            "flatnas_tf models will not load until `import flatnas_tf.training.sam` succeeds.",
            RuntimeWarning,
            stacklevel=2,
        )


def register_when_keras_is_imported() -> None:
    """Registers now if Keras is imported, else as soon as it is (module docstring)."""
    if _ready():
        register()
    elif not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
