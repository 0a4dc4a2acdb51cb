"""The benchmarks behind `scripts/bench.py`; each returns `Figure`s.

Speed figures are ratios of two implementations timed in alternating rounds in one process, so
that a busy shared machine slows both alike; each value is the median over the rounds, with the
smallest and largest beside it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf import registry
from bigmodel_tf.bench.harness import BENCH, Family, forward_flops, timed_rounds
from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.data.pipeline import training_epochs
from bigmodel_tf.export import export
from bigmodel_tf.export.report import (
    LATENCY_BATCH,
    Variant,
    latency_ratios,
    latency_rounds,
)
from bigmodel_tf.export.tflite import QUANTIZATIONS
from bigmodel_tf.io import read_json
from bigmodel_tf.registry import serving_for, task_for
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.runs import default_run_dir, load_best, load_run, make_config
from bigmodel_tf.training.task import TrainingTask
from bigmodel_tf.training.trainer import make_optimizer, train

# Every family's entries, in the families' order (each family package's `bench.ENTRIES`).
FAMILIES: tuple[Family, ...] = tuple(registry.bench_entries())


def matmul_peak(quick: bool, rounds: int) -> tuple[float, list[Figure]]:
    """fp32 `tf.matmul` GFLOP/s, the best round: the machine's attainable peak."""
    n = 512 if quick else 2048
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product().numpy()
    calls = 2 if quick else 10

    def one_round() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            product().numpy()
        return 2 * n**3 * calls / (time.perf_counter() - start) / 1e9

    (values,) = timed_rounds({"matmul": one_round}, rounds).values()
    _, spread = summarise(values)
    figure = Figure(
        "machine.matmul_peak",
        max(values),
        "GFLOP/s",
        "peak",
        command=f"{BENCH} --only peak",
        spread=spread,
        note=f"fp32 tf.matmul {n}x{n}, best of {rounds} rounds (the utilisation denominator)",
    )
    return max(values), [figure]


def in_memory(batches: tf.data.Dataset) -> Any:
    """Every batch joined into one NumPy array per input, as the documents hold a dataset:
    variable-length ids padded with 0 to the longest of the whole split."""

    def join(*parts: np.ndarray) -> np.ndarray:
        if parts[0].ndim > 1:
            width = max(part.shape[1] for part in parts)
            pad = [(0, 0), (0, 0)] + [(0, 0)] * (parts[0].ndim - 2)
            parts = [np.pad(p, [pad[0], (0, width - p.shape[1]), *pad[2:]]) for p in parts]
        return np.concatenate(parts)

    return tf.nest.map_structure(join, *batches.as_numpy_iterator())


def family_by_label(label: str) -> Family:
    (family,) = [f for f in FAMILIES if f.label == label]
    return family


def bench_config(family: Family, quick: bool, root: Path | None = None) -> RunConfig:
    """The config of the entry's run; a student's names its teacher's run (trained first,
    unless it has finished)."""
    overrides = dict(family.quick_overrides) if quick else {}
    if family.teacher:
        teacher = quality_run(family_by_label(family.teacher), quick, root)
        overrides["train.distill_from"] = str(teacher)
    return make_config(family.name, preset=family.preset, overrides=overrides)


def _compiled(
    task: TrainingTask, config: RunConfig, spec: Any, steps: int, jit: bool
) -> keras.Model:
    keras.utils.set_random_seed(config.train.seed)
    model = task.build_model(config, spec)
    model.compile(
        optimizer=make_optimizer(config.train, steps),
        jit_compile=jit,
        **task.compile_args(config),
    )
    return model


class _StepClock(keras.callbacks.Callback):
    """Times from the end of the first batch to the end of the last (excludes start-up)."""

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if batch == 0:
            self.first, self.steps = now, 0
        else:
            self.last, self.steps = now, batch

    def per_step(self) -> float:
        return (self.last - self.first) / self.steps


def training_throughput(family: Family, quick: bool, rounds: int, peak: float) -> list[Figure]:
    """Our trainer's input pipeline and compile settings against the documents' way: the same
    model and data as NumPy arrays straight into `model.fit`, no cache or prefetch, no XLA."""
    config = bench_config(family, quick)
    task = task_for(config.family)
    steps = 5 if quick else family.train_steps
    batch = config.train.batch_size
    with tempfile.TemporaryDirectory() as scratch:
        spec = task.prepare(config, Path(scratch))
    batcher = task.batcher(config, spec, batch)
    examples = task.examples(config, "train", spec)
    if quick:  # a few steps: a few batches' examples, not passes over the whole split
        examples = examples.take(4 * steps * batch)
    pipeline = training_epochs(
        examples, batcher, seed=config.train.seed, first_epoch=0, epochs=10_000
    )
    # The same examples as the model takes them (decoded, scaled), held in memory.
    inputs, targets = in_memory(batcher(examples))
    ours = _compiled(task, config, spec, steps, config.train.jit_compile)
    reference = _compiled(task, config, spec, steps, False)

    def fit(model: keras.Model, *data: Any, **kw: Any) -> Callable[[], float]:
        def one_round() -> float:
            clock = _StepClock()
            model.fit(*data, epochs=1, steps_per_epoch=steps, callbacks=[clock], verbose=0, **kw)
            return batch / clock.per_step()

        return one_round

    runs = {
        "ours": fit(ours, pipeline, shuffle=False),  # the pipeline shuffles by (seed, epoch)
        "reference": fit(reference, inputs, targets, batch_size=batch, shuffle=True),
    }
    for run in runs.values():  # compile and warm up
        run()
    speeds = timed_rounds(runs, rounds)
    count = family.forward_flops or forward_flops
    train_flops = 3 * count(config, ours, inputs, spec)  # backward ~ 2x forward
    ratio, ratio_spread = summarise(
        [o / r for o, r in zip(speeds["ours"], speeds["reference"], strict=True)]
    )
    ours_speed, ours_spread = summarise(speeds["ours"])
    reference_speed, reference_spread = summarise(speeds["reference"])
    mfu, mfu_spread = summarise([train_flops * s / (peak * 1e9) for s in speeds["ours"]])
    command = f"{BENCH} --only train"
    key, what = family.key, f"{config.family} `{config.preset}`, batch {batch}"
    return [
        Figure(
            f"train.{key}.throughput_ratio",
            ratio,
            "x",
            "train",
            target=">= 1.5",
            command=command,
            spread=ratio_spread,
            note=f"{what}: our examples/s over the reference's",
            family=key,
        ),
        Figure(
            f"train.{key}.examples_per_s",
            ours_speed,
            "examples/s",
            "train",
            command=command,
            spread=ours_spread,
            note=f"{what}, our pipeline (jit_compile={config.train.jit_compile})",
            family=key,
        ),
        Figure(
            f"train.{key}.reference_examples_per_s",
            reference_speed,
            "examples/s",
            "train",
            command=command,
            spread=reference_spread,
            note=f"{what}, NumPy arrays into model.fit, no XLA",
            family=key,
        ),
        Figure(
            f"train.{key}.mfu",
            mfu,
            "fraction",
            "train",
            target=family.mfu_target,
            command=command,
            spread=mfu_spread,
            note=f"{train_flops / 1e6:,.1f} MFLOP per training example (3x the profiled "
            "forward pass) x our examples/s / the matmul peak",
            family=key,
        ),
    ]


def quality_run(family: Family, quick: bool, root: Path | None) -> Path:
    """The family's default run on its default dataset, trained unless it has finished."""
    config = bench_config(family, quick, root)
    run_dir = root / family.label if root else default_run_dir(config)
    return Path(train(config, run_dir, verbose=0 if quick else "auto")["run_dir"])


def quality(family: Family, run_dir: Path) -> list[Figure]:
    config = load_run(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    minutes = metrics["train_seconds_this_invocation"] / 60
    return [
        Figure(
            f"{family.base}.{config.dataset}.{figure.name}",
            metrics["test"][figure.metric] * figure.scale,
            figure.unit,
            "quality",
            target=figure.target,
            command=f"bigmodel-tf train {family.name}"
            + (f" --preset {family.preset}" if family.preset != "default" else "")
            + (" --set train.distill_from=TEACHER_RUN" if family.teacher else ""),
            note=f"test `{figure.metric}`; `{config.preset}` preset, {config.train.epochs} epochs, "
            f"{minutes:.1f} min of training, {metrics['parameters']:,} weights ({run_dir})",
            family=family.key,
        )
        for figure in family.quality
    ]


def generation(family: Family, run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """The family's decoding figures (a language model's carried state against re-running the
    prefix, a Seq2Seq's compiled decoding against Python loops); none for classifiers."""
    return family.generation(family, run_dir, quick, rounds) if family.generation else []


def inference(family: Family, run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """Every deployable form of the run, from its export report (Keras, SavedModel, the TFLite
    files: all four, or float32 and int8 with `quick`), and `model.predict` for the
    classifiers."""
    with tempfile.TemporaryDirectory() as scratch:
        out = export(
            run_dir,
            Path(scratch) / "export",
            # The figures compare int8 with float32; `quick` converts only those two.
            quantize=("none", "int8") if quick else tuple(QUANTIZATIONS),
            calibration_batches=2 if quick else 100,
            test_batches=1 if quick else None,
            rounds=rounds,
        )
        report = read_json(out / "report.json")
    command, key, metric = f"{BENCH} --only inference", family.key, report["metric"]
    figures = []
    for row in report["rows"]:
        variant = row["variant"].replace(" ", "_")
        # The report's Keras row runs the model eagerly through the export's endpoints:
        # `model(x)` for a classifier, its steps for the others.
        how = "eager, through the endpoints, " if row["variant"] == "keras" else ""
        figures += latency_figures(
            f"inference.{key}.{variant}",
            row["latency_rounds_ms"],
            f"{how}{row['bytes'] / 1e6:.2f} MB, {metric} {row[metric]:.4f}",
            command,
            key,
        )
    figures += keras_predict(family, run_dir, command, rounds)
    by_variant = {row["variant"]: row for row in report["rows"]}
    float32, int8 = by_variant["tflite float32"], by_variant["tflite int8"]
    lost = next(check for check in report["targets"] if check["target"].endswith(" by int8"))
    latency_ratio, latency_ratio_spread = summarise(latency_ratios(int8, float32))
    figures += [
        Figure(
            f"export.{key}.int8_size_ratio",
            int8["bytes"] / float32["bytes"],
            "x",
            "inference",
            target="<= 0.30",
            command=command,
            note="int8 .tflite bytes / float32 .tflite bytes",
            family=key,
        ),
        Figure(
            f"export.{key}.int8_size_bytes",
            int8["bytes"],
            "bytes",
            "inference",
            target="< 1000000" if family.teacher else None,
            command=command,
            note="the full-int8 .tflite file",
            family=key,
        ),
        Figure(
            f"export.{key}.int8_latency_ratio",
            latency_ratio,
            "x",
            "inference",
            target="<= 0.6",
            command=command,
            spread=latency_ratio_spread,
            note="int8 / float32 TFLite latency, 1 example, timed side by side in each round",
            family=key,
        ),
        Figure(
            f"export.{key}.int8_metric_delta",
            lost["value"] * family.export_scale,
            family.export_unit,
            "inference",
            target=f"<= {lost['limit'] * family.export_scale:g}",
            command=command,
            note=f"test {lost['target']} against Keras",
            family=key,
        ),
    ]
    return figures


def latency_figures(
    name: str, rounds: dict[str, list[float]], note: str, command: str, family: str
) -> list[Figure]:
    """`NAME.latency_ms` (one example) and `NAME.throughput` (a batch of `LATENCY_BATCH`) from
    per-round median latencies, as `export.report.latency_rounds` times them."""
    single, single_spread = summarise(rounds["1"])
    batch = [LATENCY_BATCH * 1e3 / ms for ms in rounds[str(LATENCY_BATCH)]]
    throughput, throughput_spread = summarise(batch)
    return [
        Figure(
            f"{name}.latency_ms",
            single,
            "ms",
            "inference",
            command=command,
            spread=single_spread,
            note=f"median, 1 example, {note}",
            family=family,
        ),
        Figure(
            f"{name}.throughput",
            throughput,
            "examples/s",
            "inference",
            command=command,
            spread=throughput_spread,
            note=f"batch of {LATENCY_BATCH}",
            family=family,
        ),
    ]


def keras_predict(family: Family, run_dir: Path, command: str, rounds: int) -> list[Figure]:
    """`model.predict` on the first 1 and `LATENCY_BATCH` test examples, timed in rounds as the
    export report times the other forms (its `keras` row is `model(x)`); none for the families
    whose deployed form is a loop of stateful steps (`ServingTask.model_inputs` is None)."""
    config = load_run(run_dir)
    task, serving = task_for(config.family), serving_for(config.family)
    spec = task.prepare(config, run_dir)
    inputs, targets = next(
        serving.raw_batches(config, spec, "test", LATENCY_BATCH).as_numpy_iterator()
    )
    batch = serving.model_inputs(inputs)
    if batch is None:  # decided before loading a model that would go unused
        return []
    batch = np.asarray(batch)
    model = load_best(run_dir, task, config)
    # The same outputs as `model(x)`, so the figures time the same computation.
    called = np.asarray(model(batch, training=False))
    difference = np.max(np.abs(model.predict(batch, verbose=0) - called))
    variant = Variant("keras predict", None, 0, lambda x: model.predict(x["x"], verbose=0))
    (times,) = latency_rounds(
        [variant], lambda run, batches: run(batches[0][0]), [({"x": batch}, targets)], rounds
    )
    note = f"`model.predict` (largest difference from `model(x)`: {difference:.1e})"
    return latency_figures(
        f"inference.{family.key}.keras_predict", times, note, command, family.key
    )
