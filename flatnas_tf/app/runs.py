"""The output directory of a search, and everything that reads one back.

Layout of `flatnas-tf search --out OUT` (documented in docs/cli.md):

    OUT/run.json              the settings of the search: data set, space,
                              training, flatness and search options, versions
    OUT/search/               KerasTuner's project: oracle.json, trial_*/
                              (trial.json, checkpoint.weights.h5, build_config.json)
    OUT/report/               pareto.json, trials.csv, report.md, *.png
    OUT/models/<trial>/       exports: saved_model/, model.keras, manifest.json
    OUT/ood/<trial>.*         OOD evaluation of front members (JSON, CSV, Markdown)

`run.json`, marked `"format": "flatnas-tf search"`, is what makes a directory
a flatnas-tf search: commands that read a search refuse other directories, and
`search --overwrite` deletes only the entries above, of a run.json so marked.
`OUT/run.lock` keeps a second `search` out while one runs (`storage.directory_lock`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import Any

from flatnas_tf.persistence import storage
from flatnas_tf.training.config import UNRECORDED

RUN_FILE = "run.json"
PROJECT = "search"
LOCK_FILE = "run.lock"
#: The marker of a run.json written by `flatnas-tf search`.
FORMAT = "flatnas-tf search"
#: What a search writes in its directory: all that --overwrite deletes.
WRITTEN = (RUN_FILE, PROJECT, "report", "models", "ood")

#: Settings that define a search; resuming with other values is refused (of
#: "supernet", its weights' digest: the same supernet read from another path, as
#: a worker on another host or a moved directory reads it, is the same search).
DEFINING = (
    "data",
    "validation_fraction",
    "mode",
    "alpha",
    "max_params",
    "widths",
    "depths",
    "population",
    "epochs",
    "batch_size",
    "schedule",
    "warmup",
    "sam",
    "rho",
    "learning_rate",
    "momentum",
    "weight_decay",
    "label_smoothing",
    "sigma",
    "samples",
    "seed",
    "supernet",
    "surrogate",
)

#: What a search whose run.json lacks these keys ran with (it predates their
#: recording, and every search then had these values): the training's
#: (`UNRECORDED`) and the space's stage depths.
UNRECORDED_SETTINGS = {**UNRECORDED, "depths": [2, 3, 4]}


def changed_settings(recorded: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The defining settings (`DEFINING`) in which `settings` differ from `recorded`.

    A run.json from before some settings were recorded ran with the values
    they had then (`UNRECORDED_SETTINGS`); other missing keys still differ.

    Returns:
        One "key recorded -> given" text per difference, in `DEFINING`'s order.

    Example:
    >>> changed_settings({"alpha": 0.5}, {"alpha": 0.75})
    ['alpha 0.5 -> 0.75']
    """
    before, now = (_defining({**UNRECORDED_SETTINGS, **given}) for given in (recorded, settings))
    return [
        f"{key} {before.get(key)!r} -> {now.get(key)!r}"
        for key in DEFINING
        if before.get(key) != now.get(key)
    ]


def _defining(settings: dict[str, Any]) -> dict[str, Any]:
    """The defining settings' values as compared: a supernet by its weights, not its path."""
    supernet = settings.get("supernet")
    if isinstance(supernet, dict):
        settings = {**settings, "supernet": supernet.get("weights")}
    return settings


class RunError(ValueError):
    """A directory that is not (or not compatibly) a flatnas-tf search, or bad settings."""


class TrialError(RunError):
    """A trial the search does not hold, or one whose model cannot be rebuilt."""


def default_directory(data: str, suffix: str = "") -> pathlib.Path:
    """Where a command writes when not told: `runs/<data spec as a file name><suffix>`.

    Example:
    >>> default_directory("npz:data/cifar.npz", "-supernet").as_posix()
    'runs/npz_data_cifar.npz-supernet'
    """
    return pathlib.Path("runs") / (re.sub(r"[^A-Za-z0-9_.-]+", "_", data) + suffix)


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

    def ood_results(self) -> dict[str, dict]:
        """Trial id -> the OOD summary written for it (`ood/trial_<id>.json`), if any.

        A file that cannot be read as a JSON object is left out, not an error:
        the report is rebuilt from what is there.
        """
        found = {}
        for path in sorted(self.ood_dir.glob("trial_*.json")):
            try:
                summary = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(summary, dict):
                found[path.stem.removeprefix("trial_")] = summary
        return found

    def ended_trials(self) -> int:
        """How many trials of the search here have ended (completed or failed).

        Read from the trial files as the oracle's reload reads them, so a search
        that a crash left damaged (oracle.json missing or half written, a trial
        file lost) is counted, not refused: the tuner repairs it next. A lost
        trial file counts as ended, as the oracle keeps its trial as FAILED.
        """
        from flatnas_tf.tuners import records
        from flatnas_tf.tuners.result import TrialRecord

        if not self.project_dir.is_dir():
            return 0
        files = records.read_project(self.project_dir, TrialRecord.from_state)
        ended = sum(t.status in records.ENDED for t in files.trials.values())
        return ended + len(files.lost)

    def is_search(self) -> bool:
        """Whether the directory holds a flatnas-tf search (a run.json)."""
        return self.settings_file.is_file()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Keeps other `search` processes out of the directory while the block runs.

        Raises:
            RunError: --out is a file, or a directory that is not a search.
            flatnas_tf.persistence.storage.DirectoryLockedError: Another search runs here.
        """
        self._check_target()
        with storage.directory_lock(self.root, LOCK_FILE):
            yield

    def _check_target(self) -> None:
        """Refuses a file, or a non-empty directory that is not a search (nothing is written)."""
        if self.root.exists() and not self.root.is_dir():
            raise RunError(f"--out {self.root} is a file; pass a directory.")
        present = self.root.is_dir() and any(p.name != LOCK_FILE for p in self.root.iterdir())
        if present and not self.is_search():
            raise RunError(
                f"--out {self.root} exists and is not a flatnas-tf search; choose another "
                "directory (nothing in it is touched)."
            )

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
            settings = json.loads(self.settings_file.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunError(f"{self.settings_file} is not valid JSON ({error}).") from None
        if not isinstance(settings, dict) or (
            settings.get("format") != FORMAT and "flatnas_tf_version" not in settings
        ):
            raise RunError(
                f"{self.settings_file} was not written by flatnas-tf; pass the --out directory "
                "of a `flatnas-tf search`."
            )
        return settings

    def join(self, settings: dict[str, Any]) -> None:
        """Checks a distributed worker's settings against its chief's run.json.

        A worker builds its candidates from its own options: with another
        space or training than the chief's, it would train other networks
        than the trials record.

        Raises:
            RunError: No search here yet, or one with other defining settings.
        """
        changed = changed_settings(self.settings(), settings)
        if changed:
            raise RunError(
                f"{self.root} holds the chief's search with other settings "
                f"({'; '.join(changed)}): start the worker with the chief's options."
            )

    def prepare(self, settings: dict[str, Any], overwrite: bool) -> bool:
        """Makes the directory ready for a search with `settings`.

        A new or empty directory is initialised; an existing search with the
        same defining settings is resumed; `overwrite` deletes what an
        existing search wrote (`WRITTEN`; nothing else, and only from a
        run.json with the format marker).

        Args:
            settings: The search's settings (written to run.json).
            overwrite: Start afresh, deleting a previous search here.

        Returns:
            True if an existing search is resumed.

        Raises:
            RunError: A foreign non-empty directory, a search with other
                defining settings and no `overwrite`, or `overwrite` of an
                unmarked run.json.
        """
        self._check_target()
        resumed = False
        if self.is_search():
            previous = self.settings()
            if overwrite:
                if previous.get("format") != FORMAT:
                    raise RunError(
                        f"{self.settings_file} has no flatnas-tf format marker (an older version "
                        "wrote it); --overwrite deletes only marked searches: delete the "
                        "directory yourself, or choose another --out."
                    )
                for name in WRITTEN:
                    path = self.root / name
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    elif path.exists() or path.is_symlink():
                        path.unlink()
            else:
                changed = changed_settings(previous, settings)
                if changed:
                    raise RunError(
                        f"{self.root} holds a search with other settings ({'; '.join(changed)}); "
                        "rerun with the same options to resume, or pass --overwrite to start "
                        "afresh, or choose another --out."
                    )
                resumed = True
        self.root.mkdir(parents=True, exist_ok=True)
        storage.write_json(self.settings_file, {"format": FORMAT, **settings})
        return resumed
