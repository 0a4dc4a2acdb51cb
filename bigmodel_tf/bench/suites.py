"""The benchmarks behind `scripts/bench.py`; each returns `Figure`s.

Speed figures are ratios of two implementations timed in alternating rounds in one process, so
that a busy shared machine slows both alike; each value is the median over the rounds, with the
smallest and largest beside it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.data.pipeline import evaluation_batches, training_epochs
from bigmodel_tf.data.text import char_lookup, text_to_ids
from bigmodel_tf.export import export
from bigmodel_tf.io import read_json
from bigmodel_tf.models import generation
from bigmodel_tf.training import make_config, train
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.tasks import Task
from bigmodel_tf.training.trainer import (
    default_run_dir,
    load_run,
    load_trained,
    make_optimizer,
    task_for,
)

BENCH = "python scripts/bench.py"


@dataclass(frozen=True)
class Family:
    """How one model family is benchmarked.

    Args:
        name: str. The family (`bigmodel-tf train NAME`).
        quality_metric: str. The test metric of its quality figure.
        quality_target: str. The bound the issues set for it.
        mfu_target: str. Model-FLOP utilisation target, or None.
        quick_overrides: dict. Config of the toy model `--quick` uses.
        train_steps: int. Training steps per timed round (full size).
    """

    name: str
    quality_metric: str
    quality_target: str
    mfu_target: str | None = None
    quick_overrides: dict[str, Any] = field(default_factory=dict)
    train_steps: int = 20

    @property
    def key(self) -> str:
        """The family as figure names spell it (`gru_lm`)."""
        return self.name.replace("-", "_")


FAMILIES = (
    Family(
        "cnn",
        "accuracy",
        ">= 0.985",
        mfu_target=">= 0.30",
        quick_overrides={
            "model.filters": (8, 16),
            "model.dense_units": 16,
            "model.augment": False,
            "train.epochs": 1,
            "train.max_steps_per_epoch": 10,
        },
        train_steps=40,
    ),
    Family(
        "gru-lm",
        "loss",
        "<= 1.60",
        quick_overrides={
            "model.embedding_dim": 8,
            "model.rnn_units": 32,
            "model.num_layers": 1,
            "model.sequence_length": 20,
            "train.epochs": 1,
            "train.max_steps_per_epoch": 10,
        },
        train_steps=10,
    ),
)


def timed_rounds(functions: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Calls each function once per round, alternating; each returns its own measurement."""
    results: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            results[name].append(function())
    return results


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


def graph_flops(function: Callable, signature: list[tf.TensorSpec]) -> float:
    """Floating-point operations of one call, counted by TF's profiler on the frozen graph."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(function).get_concrete_function(*signature)
    frozen = convert_variables_to_constants_v2(concrete)
    # The v1 profiler warns about its own deprecation on every call.
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        )
        .with_empty_output()
        .build()
    )
    try:
        profile = tf.compat.v1.profiler.profile(
            graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    finally:
        logger.setLevel(level)
    return float(profile.total_float_ops)


def forward_flops(config: RunConfig, model: keras.Model, example: np.ndarray) -> float:
    """Forward FLOPs of one training example. A GRU's time loop is a graph loop the profiler
    counts once, so the LM's figure is its loop-free `step` times the window length."""
    if config.family == "gru-lm":
        units, layers = model.rnn_units, model.num_layers
        signature = [tf.TensorSpec((1,), tf.int32)] + [
            tf.TensorSpec((1, units), tf.float32) for _ in range(layers)
        ]
        return example.shape[-1] * graph_flops(lambda t, *s: model.step(t, list(s)), signature)
    spec = tf.TensorSpec((1, *example.shape[1:]), tf.float32)
    return graph_flops(lambda x: model(x, training=False), [spec])


def bench_config(family: Family, quick: bool) -> RunConfig:
    return make_config(family.name, overrides=family.quick_overrides if quick else None)


def _compiled(task: Task, config: RunConfig, spec: Any, steps: int, jit: bool) -> keras.Model:
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
    pipeline = training_epochs(
        examples, batcher, seed=config.train.seed, first_epoch=0, epochs=10_000
    )
    # The same examples as the model takes them (decoded, scaled), held in memory.
    inputs, targets = (
        np.concatenate(parts)
        for parts in zip(*evaluation_batches(examples, batcher).as_numpy_iterator(), strict=True)
    )
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
    train_flops = 3 * forward_flops(config, ours, inputs[:1])  # backward ~ 2x forward
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
        ),
        Figure(
            f"train.{key}.examples_per_s",
            ours_speed,
            "examples/s",
            "train",
            command=command,
            spread=ours_spread,
            note=f"{what}, our pipeline (jit_compile={config.train.jit_compile})",
        ),
        Figure(
            f"train.{key}.reference_examples_per_s",
            reference_speed,
            "examples/s",
            "train",
            command=command,
            spread=reference_spread,
            note=f"{what}, NumPy arrays into model.fit, no XLA",
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
        ),
    ]


def quality_run(family: Family, quick: bool, root: Path | None) -> Path:
    """The family's default run on its default dataset, trained unless it has finished."""
    config = bench_config(family, quick)
    run_dir = root / config.family if root else default_run_dir(config)
    return Path(train(config, run_dir, verbose=0 if quick else "auto")["run_dir"])


def quality(family: Family, run_dir: Path) -> list[Figure]:
    config = load_run(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    accuracy = family.quality_metric == "accuracy"
    minutes = metrics["train_seconds_this_invocation"] / 60
    return [
        Figure(
            f"{family.key}.{config.dataset}.test_{'accuracy' if accuracy else 'loss_nats'}",
            metrics["test"][family.quality_metric],
            "" if accuracy else "nats/char",
            "quality",
            target=family.quality_target,
            command=f"bigmodel-tf train {family.name}",
            note=f"`{config.preset}` preset, {config.train.epochs} epochs, {minutes:.1f} min of "
            f"training, {metrics['parameters']:,} weights ({run_dir})",
        )
    ]


# The issues' targets for carried state (a GRU's, a Transformer's key/value cache) over
# re-running the prefix, and the characters each is measured on.
GENERATION_TARGETS = {"gru-lm": (">= 20", 1000), "transformer-lm": (">= 5", 512)}


def generation_speed(run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """The stateful compiled loop (carried GRU states, or a Transformer's key/value cache)
    against re-running the whole prefix (a Transformer: its last `max_length` characters) for
    every new character, for a language-model run."""
    config, _, spec, model = load_trained(run_dir)
    prompt, _ = text_to_ids("ROMEO:", char_lookup(spec.vocabulary))
    target, length = GENERATION_TARGETS[config.family]
    length = 50 if quick else length
    key = config.family.replace("-", "_")

    def timed(generate: Callable) -> Callable[[], float]:
        generate(model, prompt, 2, seed=1).numpy()  # traces the loop, which any length reuses

        def one_round() -> float:
            start = time.perf_counter()
            generate(model, prompt, length, seed=1).numpy()
            return length / (time.perf_counter() - start)

        return one_round

    runs = {
        "stateful": timed(generation.generate),
        "rerun": timed(generation.generate_by_rerunning_prefix),
    }
    # The baseline takes ~100 s a round at full size (O(length^2) GRU steps): 3 rounds at most.
    speeds = timed_rounds(runs, min(rounds, 3))
    ratios = [s / r for s, r in zip(speeds["stateful"], speeds["rerun"], strict=True)]
    command = f"{BENCH} --only generation"
    median, spread = summarise(ratios)
    stateful, stateful_spread = summarise(speeds["stateful"])
    rerun, rerun_spread = summarise(speeds["rerun"])
    return [
        Figure(
            f"{key}.generate_speedup",
            median,
            "x",
            "generation",
            target=target,
            command=command,
            spread=spread,
            note=f"{length:,} characters: carried state over re-running the prefix ({run_dir})",
        ),
        Figure(
            f"{key}.generate_chars_per_s",
            stateful,
            "chars/s",
            "generation",
            command=command,
            spread=stateful_spread,
            note="stateful `generate`, one tf.function loop",
        ),
        Figure(
            f"{key}.generate_rerun_chars_per_s",
            rerun,
            "chars/s",
            "generation",
            command=command,
            spread=rerun_spread,
            note="`generate_by_rerunning_prefix`, the same loop re-running the prefix",
        ),
    ]


def inference(family: Family, run_dir: Path, quick: bool) -> list[Figure]:
    """Every deployable form of the run, from its export report (Keras, SavedModel, TFLite x4)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = export(run_dir, Path(scratch) / "export", calibration_batches=2 if quick else 100)
        report = read_json(out / "report.json")
    command, key = f"{BENCH} --only inference", family.key
    figures = []
    for row in report["rows"]:
        variant = row["variant"].replace(" ", "_")
        single, batch = row["latency_ms"]["1"], row["latency_ms"]["32"]
        figures += [
            Figure(
                f"inference.{key}.{variant}.latency_ms",
                single,
                "ms",
                "inference",
                command=command,
                note=f"median, 1 example, {row['bytes'] / 1e6:.2f} MB, "
                f"{report['metric']} {row[report['metric']]:.4f}",
            ),
            Figure(
                f"inference.{key}.{variant}.throughput",
                32e3 / batch,
                "examples/s",
                "inference",
                command=command,
                note="batch of 32",
            ),
        ]
    targets = {check["target"]: check for check in report["targets"]}
    by_variant = {row["variant"]: row for row in report["rows"]}
    float32, int8 = by_variant["tflite float32"], by_variant["tflite int8"]
    delta = int8[report["metric"]] - by_variant["keras"][report["metric"]]
    figures += [
        Figure(
            f"export.{key}.int8_size_ratio",
            int8["bytes"] / float32["bytes"],
            "x",
            "inference",
            target="<= 0.30",
            command=command,
            note="int8 .tflite bytes / float32 .tflite bytes",
        ),
        Figure(
            f"export.{key}.int8_latency_ratio",
            int8["latency_ms"]["1"] / float32["latency_ms"]["1"],
            "x",
            "inference",
            target="<= 0.6",
            command=command,
            note="int8 / float32 TFLite median latency, 1 example",
        ),
        Figure(
            f"export.{key}.int8_metric_delta",
            -delta if family.quality_metric == "accuracy" else delta,
            "",
            "inference",
            target=f"<= {next(c['limit'] for t, c in targets.items() if 'by int8' in t)}",
            command=command,
            note=f"{report['metric']} worsened by full int8 against Keras on the test split",
        ),
    ]
    return figures
