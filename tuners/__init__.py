"""KerasTuner integration for FlatNAS, installed as `flatnas_tf.tuners`.

- `pareto`: non-dominated sorting, crowding distance, constrained domination
  and hypervolume (on moocore), the numerics of NSGA-II selection.

Import this package only as `flatnas_tf.tuners`.
"""

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

__all__ = [
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
