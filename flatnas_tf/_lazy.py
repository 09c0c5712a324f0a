"""Lazy package namespaces: a public name imports its module on first use.

A package lists `{name: module}` and calls `attach`, which returns the
package's `__getattr__` and `__dir__` (PEP 562). The first lookup of a name
imports `<package>.<module>` and stores the value in the package, so later
lookups are plain attribute reads. A submodule's name imports the submodule
(as the eager package did: `flatnas_tf.tuners.pareto` after `import
flatnas_tf.tuners`); any other name raises AttributeError as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def attach(
    package: str, exports: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of a lazy package.

    Args:
        package: The package's `__name__`.
        exports: Public name -> the submodule (relative name) defining it.
        public: The package's `__all__`.

    Returns:
        (`__getattr__`, `__dir__`) to assign at the package's top level.

    Example:
    ```python
    __getattr__, __dir__ = _lazy.attach(__name__, {"SAMModel": "sam"}, __all__)
    ```
    """
    public = list(public)

    def __getattr__(name: str) -> Any:  # noqa: N807 (PEP 562)
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f"{package}.{module}"), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:  # noqa: N807 (PEP 562)
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
