"""Packaging for flatnas-tf.

`tuners/` and `cli/` live at the top of the repository but install under the
`flatnas_tf` namespace (`flatnas_tf.tuners`, `flatnas_tf.cli`), so no generic
top-level `tuners` or `cli` module is ever installed.
"""

import pathlib
import re

from setuptools import setup

ROOT = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (ROOT / "flatnas_tf" / "_version.py").read_text(),
    re.MULTILINE,
).group(1)

#: What builds the guide's site (mkdocs.yml).
DOCS = ["mkdocs>=1.6", "mkdocstrings-python>=1.10", "pyyaml>=6"]

setup(
    name="flatnas-tf",
    version=VERSION,
    description=(
        "FlatNAS in TensorFlow/Keras: neural architecture search for accuracy, "
        "flatness and size, with SAM training and OOD evaluation."
    ),
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "flatnas_tf",
        "flatnas_tf.app",
        "flatnas_tf.persistence",
        "flatnas_tf.robustness",
        "flatnas_tf.space",
        "flatnas_tf.training",
        "flatnas_tf.tuners",
        "flatnas_tf.cli",
    ],
    package_dir={
        "flatnas_tf": "flatnas_tf",
        "flatnas_tf.tuners": "tuners",
        "flatnas_tf.cli": "cli",
    },
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0,<4",
        "keras-tuner>=1.4,<1.5",  # private members: flatnas_tf/compat.py
        "tensorflow-datasets>=4.9",
        "numpy>=1.23",
        "click>=8.0",
        "moocore>=0.3",  # exact Pareto ranking and hypervolume (what pymoo delegates to)
        "scikit-learn>=1.2",  # ships the bundled default data set, digits (offline)
        "importlib_resources",  # TFDS's download path imports it without depending on it
        "matplotlib>=3.5",  # the report's plots
        "tomli>=1.1; python_version < '3.11'",  # --config files (tomllib from 3.11)
    ],
    extras_require={
        # tensorboard: so that the tests cover the TensorBoard path too.
        # mkdocs: the tests build the guide's site (tests/test_docs_site.py).
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "pillow>=9",
            "tensorboard>=2.16",
            *DOCS,
        ],
        "docs": DOCS,  # mkdocs build: the guide in docs/ as a site
        "tensorboard": ["tensorboard>=2.16"],  # search --tensorboard, TensorBoard callbacks
        "bench": ["scipy>=1.9", "pillow>=9", "optuna>=3.4"],
        "lint": ["ruff>=0.5"],
        "and-cuda": ["tensorflow[and-cuda]>=2.16"],
    },
    entry_points={"console_scripts": ["flatnas-tf=flatnas_tf.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
