"""Time to accuracy, MLPerf-style: wall time of a family's default run until its test metric
first reaches a target, under the `auto` settings and under the float32 reference.

Both runs train the same config with the same seed through the same trainer; only
`train.precision` and `train.jit_compile` differ. The test split is evaluated a few times an
epoch; the clock stops while it is, and keeps running through the run's own validation, as
MLPerf's does. Each run's final test metric is a figure too: it shows whether the quality held
under the faster settings.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import keras

from bigmodel_tf.bench.harness import BENCH, Family, Target
from bigmodel_tf.bench.results import Figure, target_met
from bigmodel_tf.data.pipeline import evaluation_batches, num_batches
from bigmodel_tf.registry import task_for
from bigmodel_tf.training.config import RunConfig, set_value
from bigmodel_tf.training.precision import settings_for
from bigmodel_tf.training.trainer import train


class TestClock(keras.callbacks.Callback):
    """Evaluates the test split `checks_per_epoch` times an epoch and records `(seconds of
    training so far, metric)`, the clock stopped while it evaluates."""

    def __init__(self, test_batches, metric: str, steps_per_epoch: int, checks_per_epoch: int):
        super().__init__()
        self.test_batches, self.metric = test_batches, metric
        self.every = max(1, steps_per_epoch // checks_per_epoch)
        self.points: list[tuple[float, float]] = []

    def on_train_begin(self, logs=None):
        self.started, self.paused, self.step = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self.check()

    def check(self) -> None:
        stopped = time.perf_counter()
        # The variables are float32 whatever the policy: this is the model as it stands.
        value = self.model.evaluate(self.test_batches, return_dict=True, verbose=0)[self.metric]
        self.points.append((stopped - self.started - self.paused, float(value)))
        self.paused += time.perf_counter() - stopped


def _run(config: RunConfig, target: Target, root: Path, name: str) -> tuple[TestClock, dict]:
    task = task_for(config.family)
    run_dir = root / name
    # The run prepares its own copy in its directory, which must not exist before it starts.
    spec = task.prepare(config, root / f"{name}-data")
    batcher = task.batcher(config, spec, config.train.batch_size)
    test = evaluation_batches(task.examples(config, "test", spec), batcher)
    steps = num_batches(task.examples(config, "train", spec), batcher)
    if config.train.max_steps_per_epoch:
        steps = min(steps, config.train.max_steps_per_epoch)
    clock = TestClock(test, target.metric, steps, target.checks_per_epoch)
    metrics = train(config, run_dir, verbose=0, callbacks=[clock])
    return clock, metrics


def time_to_accuracy(family: Family, config: RunConfig, quick: bool) -> list[Figure]:
    """The figures of `family`'s default run (`config`) under `auto` and under float32."""
    target: Target = family.time_to_accuracy
    task = task_for(config.family)
    auto = settings_for(config, task)
    reference = copy.deepcopy(config)
    set_value(reference, "train.precision", "float32")
    set_value(reference, "train.jit_compile", "false")
    runs = {"auto": config, "float32": reference}
    if (auto.precision, auto.jit_compile) == ("float32", False):
        runs = {"auto": config}  # the same run twice: time it once
    figures, command = [], f"{BENCH} --only time_to_accuracy"
    with tempfile.TemporaryDirectory() as scratch:
        results = {name: _run(c, target, Path(scratch), name) for name, c in runs.items()}
    results.setdefault("float32", results["auto"])
    for name, (clock, metrics) in results.items():
        reached = [s for s, value in clock.points if target_met(value, target.target)]
        best = (min if target.target.startswith("<") else max)(v for _, v in clock.points)
        how = (
            f"auto: {auto.why}"
            if name == "auto"
            else "float32, XLA off" + (" (what auto chose)" if len(runs) == 1 else "")
        )
        minutes = reached[0] / 60 if reached else clock.points[-1][0] / 60
        seen = (
            f"first reached after {minutes:.1f} min"
            if reached
            else f"not reached in {minutes:.1f} min (best {best:.4g})"
        )
        figures += [
            Figure(
                f"time_to_accuracy.{family.key}.{name}_minutes",
                minutes,
                "min",
                "time_to_accuracy",
                command=command,
                note=f"{config.family} `{config.preset}` test {target.metric} {target.target}"
                f"{' ' + target.unit if target.unit else ''}: {seen}; {how}"
                + ("; quick: toy model" if quick else ""),
                family=family.key,
            ),
            Figure(
                f"time_to_accuracy.{family.key}.{name}_test_{target.metric}",
                metrics["test"][target.metric],
                target.unit,
                "time_to_accuracy",
                command=command,
                note=f"the best checkpoint's test {target.metric} after the whole run ({how})",
                family=family.key,
            ),
        ]
    auto_min, f32_min = (figures[i].value for i in (0, 2))
    figures.append(
        Figure(
            f"time_to_accuracy.{family.key}.speedup",
            f32_min / auto_min,
            "x",
            "time_to_accuracy",
            command=command,
            note="float32 minutes over auto minutes (to the target, or to the end where a run "
            "never reached it)",
            family=family.key,
        )
    )
    return figures
