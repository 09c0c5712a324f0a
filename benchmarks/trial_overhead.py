"""Where a default trial's time goes, phase by phase, and what the graph-cost fixes buy.

Runs real `FlatNASTuner` trials (`run_trial`) on the default CLI space and settings
(digits, widths 0.25/0.5, ASAM, the default epochs and batch size) and times
every phase of every trial from inside the tuner:

  build        clear_session + gc + building the candidate (KerasTuner's _try_build)
  prepare      learning-rate schedule, optimizer and metrics built from shapes
  first step   tracing + instantiating the train function + one step
  steps        the other steps: (number of steps - 1) x median steady step
  fit other    the rest of fit (epoch loop, iterators, callbacks)
  recalibrate  BatchNorm statistics on training batches (eager forward passes)
  evaluation   the measurement: first pass (includes its trace), then passes
               at the steady per-pass time (1 clean + M perturbed)
  save         checkpoint + build config
  rest         the rest of `run_trial` (parameter count, validation labels)

Overhead = build + prepare + (first step - steady step) + fit other +
(first evaluation pass - steady pass) + save + rest: the time that is not
training or evaluation compute. The oracle's own bookkeeping between trials
(6.6 ms per trial at 1,000 trials, `oracle_quality.py`) is left out. The ratio
overhead / trial wall time is the figure to keep small.

Side by side, in one run, trials alternate between two variants on the same
architectures (seeded draws of the default space):
  after   this code: fused BatchNorm and SGD kernels, the two SAM passes traced
          once, the train step traced once, Grappler off on CPU, custom
          gradient registrations released
  before  Keras' BatchNorm and SGD, each SAM pass traced, the train step
          traced twice, Grappler on, registrations kept
Both use the same training regime, so their ratio is the effect of the graph
costs alone.

Usage:
    python benchmarks/trial_overhead.py [--trials 4] [--epochs E] [--depths 2,3,4]
        [--out docs/benchmarks/trial_overhead.json]

Prints one JSON object: per-phase medians per variant, the overhead fraction
of each, and the after/before ratios of trial wall time and steady step time
(and the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from unittest import mock

import keras
from common import add_depths_argument, add_out_argument, report
from keras_tuner.engine.trial import Trial

from flatnas_tf import FlatNASHyperModel, SAMModel, TrainingSettings, load_dataset
from flatnas_tf.robustness import flatness
from flatnas_tf.space import hypermodel
from flatnas_tf.training import regime as regime_module
from flatnas_tf.training.regime import TrainingRegime
from flatnas_tf.tuners import FlatNASTuner

PHASES = (
    "build", "prepare", "first_step", "steps", "fit_other", "recalibrate", "evaluation", "save",
    "rest",
)  # fmt: skip


class _StepTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


#: Phase durations of the trial being run.
_phase: dict[str, float] = {}


class TimedTuner(FlatNASTuner):
    """FlatNASTuner whose trials record the duration of each phase in `_phase`."""

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        figures = super().run_trial(trial, *args, **kwargs)
        _phase["wall"] = time.perf_counter() - start
        return figures

    def _try_build(self, hp):
        start = time.perf_counter()
        model = super()._try_build(hp)
        _phase["build"] = time.perf_counter() - start
        save = model.save_weights

        def timed_save(*args, **kwargs):
            begin = time.perf_counter()
            save(*args, **kwargs)
            _phase["save"] = time.perf_counter() - begin

        model.save_weights = timed_save
        return model

    def train_and_measure(self, hp, *args, **kwargs):
        steps = _StepTimes()
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), steps]
        passes: list[float] = []
        original = flatness.PerturbedEvaluator._totals

        def timed_totals(evaluator, *a, **k):
            begin = time.perf_counter()
            result = original(evaluator, *a, **k)
            passes.append(time.perf_counter() - begin)
            return result

        with mock.patch.object(flatness.PerturbedEvaluator, "_totals", timed_totals):
            model, figures = super().train_and_measure(hp, *args, **kwargs)
        steady = statistics.median(steps.times[1:])
        # train_time_s spans the regime's whole `train`: prepare, fit, recalibrate.
        within_fit = figures["train_time_s"] - _phase["prepare"] - _phase["recalibrate"]
        _phase.update(
            first_step=steps.times[0],
            steady_step=steady,
            steps=steady * (len(steps.times) - 1),
            step_count=len(steps.times),
            fit_other=within_fit - sum(steps.times),
            evaluation=sum(passes),
            evaluation_first_pass=passes[0],
            evaluation_pass=statistics.median(passes[1:]),
        )
        return model, figures


class TimedRegime(TrainingRegime):
    """TrainingRegime recording its prepare and finish durations in `_phase`."""

    def prepare(self, *args, **kwargs):
        start = time.perf_counter()
        callbacks = super().prepare(*args, **kwargs)
        _phase["prepare"] = time.perf_counter() - start
        return callbacks

    def finish(self, *args, **kwargs):
        start = time.perf_counter()
        result = super().finish(*args, **kwargs)
        _phase["recalibrate"] = time.perf_counter() - start
        return result


@contextlib.contextmanager
def before_variant():
    """Undo the graph-cost fixes (see the module docstring)."""
    plain_bn = lambda **kw: keras.layers.BatchNormalization(momentum=0.9, **kw)  # noqa: E731
    with (
        mock.patch.object(hypermodel, "batch_norm", plain_bn),
        mock.patch.object(hypermodel, "FusedSGD", keras.optimizers.SGD),
        mock.patch.object(SAMModel, "_pass_function", lambda model: model._loss_and_gradients),
        mock.patch.object(regime_module, "build_training_state", lambda *a, **k: False),
        mock.patch.object(regime_module, "release_custom_gradients", contextlib.nullcontext),
    ):
        yield


def overhead(trial: dict) -> float:
    """Time that is not training or evaluation compute (module docstring)."""
    return (
        trial["build"]
        + trial["prepare"]
        + trial["first_step"]
        - trial["steady_step"]
        + trial["fit_other"]
        + trial["evaluation_first_pass"]
        - trial["evaluation_pass"]
        + trial["save"]
        + trial["rest"]
    )


def run_trial(variant: str, arch: int, args, data, space, work: str) -> dict:
    """One trial of architecture `arch`, as a search runs it, timed by phase."""
    tuner = TimedTuner(
        space,
        max_params=None,
        seed=0,
        samples=args.samples,
        regime=TimedRegime(grappler=True if variant == "before" else None),
        directory=work,
        project_name=f"{variant}_{arch}",
    )
    trial = Trial(space.random_hyperparameters(arch), trial_id="0")
    train = data.batches("train", args.batch_size, training=True, seed=0)
    validation = data.batches("validation", args.batch_size)
    _phase.clear()
    with before_variant() if variant == "before" else contextlib.nullcontext():
        tuner.run_trial(trial, train, validation_data=validation, epochs=args.epochs, verbose=0)
    timed = dict(_phase)
    timed["rest"] = timed["wall"] - sum(timed[p] for p in PHASES if p != "rest")
    timed["overhead"] = overhead(timed)
    return timed


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="architectures per variant")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--rho", type=float, default=0.5)
    add_depths_argument(parser)
    add_out_argument(parser, "trial_overhead")
    args = parser.parse_args(argv)

    data = load_dataset("digits")
    space = FlatNASHyperModel(
        data.input_shape,
        data.num_classes,
        training=TrainingSettings(rho=args.rho),
        width_multipliers=(0.25, 0.5),
        depths=args.depths,
    )
    timed = {"after": [], "before": []}
    with tempfile.TemporaryDirectory() as work:
        for arch in range(args.trials):
            for variant in ("after", "before") if arch % 2 == 0 else ("before", "after"):
                trial = run_trial(variant, arch, args, data, space, work)
                timed[variant].append(trial)
                print(
                    f"{variant} arch {arch}: wall {trial['wall']:.1f} s, overhead "
                    f"{trial['overhead']:.1f} s, first step {trial['first_step']:.1f} s, "
                    f"steady {1000 * trial['steady_step']:.0f} ms",
                    flush=True,
                )

    def medians(trials: list[dict]) -> dict:
        keys = [*PHASES, "steady_step", "evaluation_first_pass", "evaluation_pass", "wall",
                "overhead"]  # fmt: skip
        out = {key: round(statistics.median(t[key] for t in trials), 3) for key in keys}
        out["step_count"] = trials[0]["step_count"]
        out["overhead_fraction"] = round(
            statistics.median(t["overhead"] / t["wall"] for t in trials), 3
        )
        return out

    after, before = medians(timed["after"]), medians(timed["before"])
    return report(
        "trial_overhead",
        {
            "data": "digits",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "samples": args.samples,
            "architectures": args.trials,
            "after": after,
            "before": before,
            "ratio_wall_after_over_before": round(after["wall"] / before["wall"], 3),
            "ratio_steady_step_after_over_before": round(
                after["steady_step"] / before["steady_step"], 3
            ),
            "ratio_overhead_after_over_before": round(after["overhead"] / before["overhead"], 3),
        },
        args,
    )


if __name__ == "__main__":
    main()
