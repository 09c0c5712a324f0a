"""KerasTuner's progress display for a Pareto search: objectives, not a rank.

KerasTuner's `Display` prints, after each trial, `<objective>: <trial.score>`
and `Best <objective> So Far: <score of the best trial>`, and beside each
hyperparameter the best trial's value. With one objective `NSGA2Oracle`'s
score is the objective's value and that display is kept as it is. With
several there is no single best trial and the score is a position in the
survival order, so printing it as a metric would mislead; instead:

    Trial 12 Complete [00h 00m 04s]
    f1 (min): 0.4213 | f2 (max): 0.7781          this trial's objective values
    outside the constraints (violation 1.2e+06)  when it is infeasible
    Pareto front so far: 7 of 12 completed trials (this trial is on it)
    Total elapsed time: 00h 00m 51s

and the hyperparameter table lists the values without a "best so far" column.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from keras_tuner.engine.trial import Trial

from flatnas_tf.compat import Display

if TYPE_CHECKING:
    from flatnas_tf.tuners.nsga2 import NSGA2Oracle

__all__ = ["ParetoDisplay", "objectives_line"]


class ParetoDisplay(Display):
    """KerasTuner's `Display`, truthful when there are several objectives.

    Args:
        oracle: The `NSGA2Oracle` whose trials are shown.
        verbose: 0 prints nothing, 1 a block per trial (as KerasTuner).
    """

    oracle: NSGA2Oracle

    def _several(self) -> bool:
        return len(self.oracle.objectives) > 1

    def show_hyperparameter_table(self, trial: Trial) -> None:
        if not self._several():
            super().show_hyperparameter_table(trial)
            return
        if not trial.hyperparameters.values:
            print("default configuration")
            return
        template = f"{{0:{self.col_width}}}|{{1}}"
        print(template.format("Value", "Hyperparameter"))
        for name, value in trial.hyperparameters.values.items():
            print(template.format(self.format_value(value), name))

    def on_trial_end(self, trial: Trial) -> None:
        if not self._several():
            super().on_trial_end(trial)
            return
        if self.verbose < 1:
            return
        started = self.trial_start.get(trial.trial_id)
        took = f" [{self.format_duration(datetime.now() - started)}]" if started else ""
        print(f"Trial {self.trial_number.get(trial.trial_id, trial.trial_id)} Complete{took}")
        print(objectives_line(self.oracle, trial))
        ranking = self.oracle.rank(count=1)
        front = {t.trial_id for t in ranking.front()}
        on_it = " (this trial is on it)" if trial.trial_id in front else ""
        print(f"Pareto front so far: {len(front)} of {len(ranking.trials)} completed trials{on_it}")
        if self.search_start is not None:
            print(f"Total elapsed time: {self.format_duration(datetime.now() - self.search_start)}")


def objectives_line(oracle: NSGA2Oracle, trial: Trial) -> str:
    """One line: a trial's objective values as ranked, or why it has none.

    Args:
        oracle: The oracle of the trial.
        trial: An ended trial.

    Returns:
        `name (direction): value` per objective, joined by " | ", with a
        second line giving the constraint violation of an infeasible trial.

    Example:
    >>> objectives_line(oracle, trial)  # doctest: +SKIP
    'val_accuracy (max): 0.91 | robustness (min): 2.4 | params (min): 1.2e+05'
    """
    if trial.status != "COMPLETED":
        return f"status {trial.status}" + (f": {trial.message}" if trial.message else "")
    values, violation = oracle.objectives_of(trial.trial_id)
    line = " | ".join(
        f"{objective.name} ({objective.direction}): {float(value):.5g}"
        for objective, value in zip(oracle.objectives, values, strict=True)
    )
    if violation > 0:
        shown = "a constraint metric missing" if math.isinf(violation) else f"{violation:.3g}"
        line += f"\noutside the constraints (violation {shown})"
    return line
