"""KerasTuner integration for FlatNAS, installed as `flatnas_tf.tuners`.

- `pareto`: non-dominated sorting, crowding distance, constrained domination
  and hypervolume (on moocore), the numerics of NSGA-II selection.
- `NSGA2Oracle`: a KerasTuner oracle running NSGA-II over several objectives.
- `durable`: atomic state files, recovery on reload, leases of distributed
  trials; `distributed`: the chief's server and the workers' heartbeats.
- `FlatNASTuner`, `FlatNASOracle`: one trial = SAM training + flatness, ranked
  on FlatNAS's objectives.
- `SupernetTuner`: the same trials through a trained supernet (inherited
  weights, short fine-tuning), FlatNAS's weight-sharing regime.

Import this package only as `flatnas_tf.tuners`.
"""

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
from flatnas_tf.tuners.tuner import DiskFullError, FlatNASOracle, FlatNASTuner, SearchFailedError
from flatnas_tf.tuners.weight_sharing import SupernetTuner

__all__ = [
    "DiskFullError",
    "FlatNASOracle",
    "FlatNASTuner",
    "NSGA2Oracle",
    "SearchFailedError",
    "SupernetTuner",
    "constrained_dominates",
    "crowding_distance",
    "fronts",
    "hypervolume",
    "non_dominated_ranks",
    "rank_and_crowd",
    "survival_order",
    "to_minimisation",
    "total_violation",
]
