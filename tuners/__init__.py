"""KerasTuner integration for FlatNAS, installed as `flatnas_tf.tuners`.

- `pareto`: non-dominated sorting, crowding distance, constrained domination
  and hypervolume (on moocore), the numerics of NSGA-II selection.
- `NSGA2Oracle`: a KerasTuner oracle running NSGA-II over several objectives.
- `durable`: atomic state files, recovery on reload, leases of distributed
  trials; `distributed`: the chief's server and the workers' heartbeats.
- `FlatNASTuner`, `FlatNASOracle`: one trial = SAM training + flatness, ranked
  on FlatNAS's objectives.
- `SearchResult`: a search read from its directory (or `FlatNASTuner.result()`):
  trials (`TrialRecord`), figures, re-ranking, front, hypervolume history,
  models, export; `records`, `objectives` and `ranking` are what it reads and
  ranks with, as the oracle does.
- `SupernetTuner`: the same trials through a trained supernet (inherited
  weights, short fine-tuning), FlatNAS's weight-sharing regime.
- `AdaptivePredictor`: a figure of a configuration predicted from trained
  ones (RBF, GP, trees, MLP chosen by cross-validated Kendall tau), over
  configurations encoded by `SpaceEncoding`: the surrogate of a search;
  `SurrogateSettings` turns it on (`FlatNASTuner(surrogate=...)`).

Import this package only as `flatnas_tf.tuners`. The namespace is lazy:
each name imports its module (and with it KerasTuner and TensorFlow) on
first use, so `pareto` and `SearchResult` (until it builds a model) need
neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flatnas_tf import _lazy

#: Each public name and the module that defines it, imported on first use.
_EXPORTS = {
    "AdaptivePredictor": "predictors",
    "SpaceEncoding": "encoding",
    "SurrogateSettings": "surrogate",
    "NSGA2Oracle": "nsga2",
    "Ranking": "ranking",
    "constrained_dominates": "pareto",
    "crowding_distance": "pareto",
    "fronts": "pareto",
    "hypervolume": "pareto",
    "non_dominated_ranks": "pareto",
    "rank_and_crowd": "pareto",
    "survival_order": "pareto",
    "to_minimisation": "pareto",
    "total_violation": "pareto",
    "HypervolumeHistory": "result",
    "SearchResult": "result",
    "TrialRecord": "records",
    "DiskFullError": "tuner",
    "FlatNASOracle": "tuner",
    "FlatNASTuner": "tuner",
    "SearchFailedError": "tuner",
    "SupernetTuner": "weight_sharing",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy.attach(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from flatnas_tf.tuners.encoding import SpaceEncoding
    from flatnas_tf.tuners.nsga2 import NSGA2Oracle
    from flatnas_tf.tuners.pareto import (
        constrained_dominates,
        crowding_distance,
        fronts,
        hypervolume,
        non_dominated_ranks,
        rank_and_crowd,
        survival_order,
        to_minimisation,
        total_violation,
    )
    from flatnas_tf.tuners.predictors import AdaptivePredictor
    from flatnas_tf.tuners.ranking import Ranking
    from flatnas_tf.tuners.records import TrialRecord
    from flatnas_tf.tuners.result import HypervolumeHistory, SearchResult
    from flatnas_tf.tuners.surrogate import SurrogateSettings
    from flatnas_tf.tuners.tuner import (
        DiskFullError,
        FlatNASOracle,
        FlatNASTuner,
        SearchFailedError,
    )
    from flatnas_tf.tuners.weight_sharing import SupernetTuner
