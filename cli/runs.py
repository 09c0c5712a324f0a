"""The output directory of a search, and everything that reads one back.

Layout of `flatnas-tf search --out OUT` (documented in README.md):

    OUT/run.json              the settings of the search: data set, space,
                              training, flatness and search options, versions
    OUT/search/               KerasTuner's project: oracle.json, trial_*/
                              (trial.json, checkpoint.weights.h5, build_config.json)
    OUT/report/               pareto.json, trials.csv, report.md, *.png
    OUT/models/<trial>/       exports: saved_model/, model.keras, manifest.json
    OUT/ood/<trial>.*         OOD evaluation of front members (JSON, CSV, Markdown)

`run.json` is what makes a directory a flatnas-tf search: commands that read a
search refuse other directories, and `search --overwrite` deletes nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from typing import Any

RUN_FILE = "run.json"
PROJECT = "search"

#: Settings that define a search; resuming with other values is refused.
DEFINING = (
    "data",
    "validation_fraction",
    "mode",
    "alpha",
    "max_params",
    "widths",
    "population",
    "epochs",
    "batch_size",
    "schedule",
    "warmup",
    "sam",
    "rho",
    "learning_rate",
    "sigma",
    "samples",
    "seed",
    "supernet",
)


class RunError(ValueError):
    """A directory that is not (or not compatibly) a flatnas-tf search."""


@dataclasses.dataclass
class RunDirectory:
    """A search's output directory (see the module docstring).

    Attributes:
        root: The directory given with --out.
    """

    root: pathlib.Path

    @property
    def settings_file(self) -> pathlib.Path:
        """`run.json`."""
        return self.root / RUN_FILE

    @property
    def project_dir(self) -> pathlib.Path:
        """KerasTuner's project directory."""
        return self.root / PROJECT

    @property
    def report_dir(self) -> pathlib.Path:
        """Where `report` writes."""
        return self.root / "report"

    def model_dir(self, trial_id: str) -> pathlib.Path:
        """Where `export` writes one trial's model."""
        return self.root / "models" / f"trial_{trial_id}"

    @property
    def ood_dir(self) -> pathlib.Path:
        """Where OOD evaluations of front members go."""
        return self.root / "ood"

    def is_search(self) -> bool:
        """Whether the directory holds a flatnas-tf search."""
        return self.settings_file.is_file()

    def settings(self) -> dict[str, Any]:
        """The saved settings of the search.

        Raises:
            RunError: The directory is not a flatnas-tf search.
        """
        if not self.is_search():
            raise RunError(
                f"{self.root} is not a flatnas-tf search directory (no {RUN_FILE}); pass the "
                "--out directory of a `flatnas-tf search`."
            )
        try:
            return json.loads(self.settings_file.read_text())
        except json.JSONDecodeError as error:
            raise RunError(f"{self.settings_file} is not valid JSON ({error}).") from None

    def prepare(self, settings: dict[str, Any], overwrite: bool) -> bool:
        """Makes the directory ready for a search with `settings`.

        A new or empty directory is initialised; an existing search with the
        same defining settings is resumed; `overwrite` deletes an existing
        *search* (never a directory that is not one).

        Args:
            settings: The search's settings (written to run.json).
            overwrite: Start afresh, deleting a previous search here.

        Returns:
            True if an existing search is resumed.

        Raises:
            RunError: A foreign non-empty directory, or a search with other
                defining settings and no `overwrite`.
        """
        if self.root.exists() and not self.root.is_dir():
            raise RunError(f"--out {self.root} is a file; pass a directory.")
        if self.root.is_dir() and any(self.root.iterdir()) and not self.is_search():
            raise RunError(
                f"--out {self.root} exists and is not a flatnas-tf search; choose another "
                "directory (nothing in it is touched)."
            )
        resumed = False
        if self.is_search():
            if overwrite:
                shutil.rmtree(self.root)
            else:
                previous = self.settings()
                changed = [
                    f"{key} {previous.get(key)!r} -> {settings.get(key)!r}"
                    for key in DEFINING
                    if previous.get(key) != settings.get(key)
                ]
                if changed:
                    raise RunError(
                        f"{self.root} holds a search with other settings ({'; '.join(changed)}); "
                        "rerun with the same options to resume, or pass --overwrite to start "
                        "afresh, or choose another --out."
                    )
                resumed = True
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(settings, indent=2) + "\n")
        return resumed
