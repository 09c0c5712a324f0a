"""One line when a trial starts and one when it ends: a search's progress, as people read it.

`FlatNASTuner.search(verbose=1)` (the default) and `flatnas-tf search` print the
same lines, in place of KerasTuner's per-trial block:

    [  3/10] trial 02 started: 253,018 params; training 8 epochs, then R from 10 weight
             perturbations
    [  3/10] trial 02  val_acc  98.9%  R  0.94  params   253,018   48.6s  |  elapsed 0:02:35,
             ~0:06:02 left

(each one line on the screen).
The position counts trials ended so far (a resumed search counts those before
it); the time left extrapolates this session's pace to the trials still to
run. A distributed worker, which does not see the others' trials, numbers its
own ("[  2 here]"). Over-budget trials say so and are not trained; failed ones
show the first line of their error.
"""

from __future__ import annotations

import math
import time

from keras_tuner.engine.trial import Trial

from flatnas_tf.tuners.archive import last_value
from flatnas_tf.tuners.surrogate import describe_refit

__all__ = ["TrialLines", "clock"]


def clock(seconds: float) -> str:
    """H:MM:SS of a duration in seconds."""
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class TrialLines:
    """Formats a search's per-trial lines.

    Args:
        oracle: The search's oracle (a distributed worker's proxy has no trials).
        significance: The above-chance test's level, or None when not tested.

    Example:
    ```python
    lines = TrialLines(tuner.oracle)
    print(lines.started(trial, params=253_018, plan="training 8 epochs"))
    ```
    """

    def __init__(self, oracle, significance: float | None = None):
        self.oracle = oracle
        self.significance = significance
        self.started_at = time.monotonic()
        self.ended_before = self._ended() or 0
        self.ran = 0

    def _ended(self) -> int | None:
        trials = getattr(self.oracle, "trials", None)
        if trials is None:
            return None
        return sum(1 for t in trials.values() if t.status not in ("RUNNING", "IDLE"))

    def _position(self, ahead: int) -> str:
        ended = self._ended()
        if ended is None:
            return f"[{self.ran + ahead:>3} here]"
        return f"[{ended + ahead:>3}/{self.oracle.max_trials}]"

    def started(self, trial: Trial, params: int, plan: str) -> str:
        """The line of a trial that starts: its id, size and what it will do.

        In a surrogate-assisted search, a trial that the surrogate proposed
        says so, and the first trial after a refit is preceded by the refit's
        line (`surrogate.describe_refit`).
        """
        line = f"{self._position(1)} trial {trial.trial_id} started: {params:,} params; {plan}"
        proposer = getattr(self.oracle, "surrogate", None)
        order = getattr(self.oracle, "start_order", [])
        if proposer is None or trial.trial_id not in order:
            return line
        number = order.index(trial.trial_id)
        if number in proposer.handed_out:
            line += " (proposed by the surrogate)"
        if proposer.log and proposer.log[-1]["trial"] == number:
            line = describe_refit(proposer.log[-1]) + "\n" + line
        return line

    def ended(self, trial: Trial) -> str:
        """The line of a trial that ended: its figures, or why it has none."""
        self.ran += 1
        elapsed = time.monotonic() - self.started_at
        ended = self._ended()
        remaining = ""
        if ended is not None:
            this_session = max(1, ended - self.ended_before)
            left = max(0, self.oracle.max_trials - ended) * elapsed / this_session
            remaining = f", ~{clock(left)} left"
        accuracy = last_value(trial, "val_accuracy")
        if trial.status == "COMPLETED" and math.isfinite(accuracy):
            seconds = last_value(trial, "train_time_s") + last_value(trial, "measure_time_s")
            figures = (
                f"val_acc {100 * accuracy:5.1f}%  R {last_value(trial, 'robustness'):5.2f}  "
                f"params {int(last_value(trial, 'params')):>9,}  {seconds:5.1f}s"
            )
            p_value = last_value(trial, "chance_p_value")
            if self.significance is not None and not p_value <= self.significance:
                figures += "  (not above chance: excluded)"
        elif trial.status == "COMPLETED":
            figures = f"over budget: params {int(last_value(trial, 'params')):,}, not trained"
        else:
            figures = f"{trial.status.lower()}: {trial.message or 'no message'}".splitlines()[0]
        position = self._position(0) if ended is not None else f"[{self.ran:>3} here]"
        timing = f"elapsed {clock(elapsed)}{remaining}"
        return f"{position} trial {trial.trial_id}  {figures}  |  {timing}"
