"""The benchmarks behind `scripts/bench.py`; each returns `Figure`s.

Speed figures are ratios of two implementations timed in alternating rounds in one process, so
that a busy shared machine slows both alike; each value is the median over the rounds, with the
smallest and largest beside it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf import registry
from bigmodel_tf.bench import peers
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
from bigmodel_tf.training.precision import Settings, dtype_policy, native_bf16, settings_for
from bigmodel_tf.training.runs import default_run_dir, load_best, load_run, make_config
from bigmodel_tf.training.task import TrainingTask
from bigmodel_tf.training.trainer import make_optimizer, train

# Every family's entries, in the families' order (each family package's `bench.ENTRIES`).
FAMILIES: tuple[Family, ...] = tuple(registry.bench_entries())


# The peak's figure name per compute precision (what `train.precision` resolves to).
PEAKS = {"float32": "machine.matmul_peak", "mixed_bfloat16": "machine.matmul_peak_bf16"}


def matmul_peak(quick: bool, rounds: int) -> tuple[dict[str, float], list[Figure]]:
    """`tf.matmul` GFLOP/s in float32 and in bf16, the best round of each: the machine's
    attainable peaks, the utilisation denominators of runs in either precision."""
    n = 512 if quick else 2048
    calls = 2 if quick else 10

    def measure(dtype: tf.DType) -> Callable[[], float]:
        a, b = (tf.cast(tf.random.normal((n, n)), dtype) for _ in range(2))
        product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
        product().numpy()

        def one_round() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                product().numpy()
            return 2 * n**3 * calls / (time.perf_counter() - start) / 1e9

        return one_round

    rounds_of = timed_rounds(
        {"float32": measure(tf.float32), "mixed_bfloat16": measure(tf.bfloat16)}, rounds
    )
    hardware = native_bf16() or "no native bf16 on this CPU: emulated"
    peaks, figures = {}, []
    for precision, values in rounds_of.items():
        peaks[precision] = max(values)
        kind = "fp32" if precision == "float32" else f"bf16 ({hardware})"
        figures.append(
            Figure(
                PEAKS[precision],
                max(values),
                "GFLOP/s",
                "peak",
                command=f"{BENCH} --only peak",
                spread=summarise(values)[1],
                note=f"{kind} tf.matmul {n}x{n}, best of {rounds} rounds (the utilisation "
                f"denominator of {precision} runs)",
            )
        )
    return peaks, figures


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
    task: TrainingTask, config: RunConfig, spec: Any, steps: int, settings: Settings
) -> keras.Model:
    """The family's model compiled as a run with `settings` trains it."""
    keras.utils.set_random_seed(config.train.seed)
    with dtype_policy(settings.precision):
        model = task.build_model(config, spec)
    model.compile(
        optimizer=make_optimizer(config.train, steps),
        jit_compile=settings.jit_compile,
        **task.compile_args(config),
    )
    return model


# What the documents' code trains with: Keras' defaults.
PLAIN = Settings("float32", False, "the documents' way")


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


@dataclass
class _Training:
    """A family's default run as the train suites time it."""

    config: RunConfig
    task: TrainingTask
    spec: Any
    steps: int
    batch: int
    pipeline: tf.data.Dataset  # our trainer's input pipeline
    inputs: Any  # the same examples as NumPy arrays, as the documents hold them
    targets: Any

    def model(self, settings: Settings) -> keras.Model:
        return _compiled(self.task, self.config, self.spec, self.steps, settings)

    def fit(self, model: keras.Model, *, ours: bool) -> Callable[[], float]:
        """A round of `steps` steps → examples/s, through our pipeline or NumPy into fit."""
        if ours:  # the pipeline shuffles by (seed, epoch)
            data, kw = (self.pipeline,), {"shuffle": False}
        else:
            data, kw = (self.inputs, self.targets), {"batch_size": self.batch, "shuffle": True}

        def one_round() -> float:
            clock = _StepClock()
            model.fit(
                *data, epochs=1, steps_per_epoch=self.steps, callbacks=[clock], verbose=0, **kw
            )
            return self.batch / clock.per_step()

        return one_round


def _training(family: Family, quick: bool) -> _Training:
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
    return _Training(config, task, spec, steps, batch, pipeline, inputs, targets)


def _timed(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    for run in runs.values():  # compile and warm up
        run()
    return timed_rounds(runs, rounds)


def _label(precision: str, jit: bool) -> str:
    return f"{precision}, XLA {'on' if jit else 'off'}"


def settings_speedups(family: Family, quick: bool, rounds: int) -> list[Figure]:
    """Our pipeline under each precision with XLA off and on, in alternating rounds: what a
    family's `mixed_precision_pays` and `jit_pays` (the `auto` settings) are set from."""
    run = _training(family, quick)
    choices = [Settings(p, jit, "") for p in ("float32", "mixed_bfloat16") for jit in (False, True)]
    speeds = _timed(
        {_label(s.precision, s.jit_compile): run.fit(run.model(s), ours=True) for s in choices},
        rounds,
    )

    def ratio(a: str, b: str) -> tuple[float, list[float]]:
        return summarise([x / y for x, y in zip(speeds[a], speeds[b], strict=True)])

    auto = settings_for(run.config.train, run.task)
    best = max(speeds, key=lambda name: summarise(speeds[name])[0])
    hardware = native_bf16() or "no native bf16: emulated"
    what = f"{run.config.family} `{run.config.preset}`, batch {run.batch}, our pipeline"
    f32, f32_xla = _label("float32", False), _label("float32", True)
    bf16, bf16_xla = _label("mixed_bfloat16", False), _label("mixed_bfloat16", True)
    chosen = _label(auto.precision, auto.jit_compile)
    rows = [
        ("bf16_speedup", bf16, f32, f"mixed_bfloat16 ({hardware}) over float32, XLA off"),
        ("xla_speedup_float32", f32_xla, f32, "XLA on over off, float32"),
        ("xla_speedup_bf16", bf16_xla, bf16, "XLA on over off, mixed_bfloat16"),
        ("auto_of_best", chosen, best, f"what auto chooses ({chosen}) over the fastest ({best})"),
    ]
    figures = []
    for name, a, b, note in rows:
        value, spread = ratio(a, b)
        figures.append(
            Figure(
                f"settings.{family.key}.{name}",
                value,
                "x",
                "settings",
                target=">= 0.95" if name == "auto_of_best" else None,
                command=f"{BENCH} --only settings",
                spread=spread,
                note=f"{what}: {note}",
                family=family.key,
            )
        )
    return figures


def training_throughput(
    family: Family, quick: bool, rounds: int, peaks: dict[str, float]
) -> list[Figure]:
    """Our trainer's input pipeline and `auto` settings against the documents' way: the same
    model and data as NumPy arrays straight into `model.fit`, float32, no XLA."""
    run = _training(family, quick)
    config, spec, batch, inputs = run.config, run.spec, run.batch, run.inputs
    settings = settings_for(config.train, run.task)
    ours = run.model(settings)
    speeds = _timed(
        {"ours": run.fit(ours, ours=True), "reference": run.fit(run.model(PLAIN), ours=False)},
        rounds,
    )
    count = family.forward_flops or forward_flops
    train_flops = 3 * count(config, ours, inputs, spec)  # backward ~ 2x forward
    ratio, ratio_spread = summarise(
        [o / r for o, r in zip(speeds["ours"], speeds["reference"], strict=True)]
    )
    ours_speed, ours_spread = summarise(speeds["ours"])
    reference_speed, reference_spread = summarise(speeds["reference"])
    peak = peaks[settings.precision]
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
            note=f"{what}, our pipeline ({settings.precision}, XLA "
            f"{'on' if settings.jit_compile else 'off'})",
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
            f"forward pass) x our examples/s / the {settings.precision} matmul peak",
            family=key,
        ),
    ]


def peer_throughput(family: Family, quick: bool, rounds: int) -> list[Figure]:
    """Our trainer (its pipeline and `auto` settings) against the family's network written
    plainly in PyTorch (`Family.peer`, trained by `peers.PeerTrainer`): the same architecture
    and weight count, examples, batch, steps, optimizer and schedule, timed in alternating
    rounds. PyTorch must be installed."""
    run = _training(family, quick)
    config, batch, steps = run.config, run.batch, run.steps
    settings = settings_for(config.train, run.task)
    ours = run.model(settings)
    peer = family.peer(config, run.spec)
    weights = sum(int(np.prod(weight.shape)) for weight in ours.trainable_weights)
    if peers.weight_count(peer.model) != weights:
        raise RuntimeError(
            f"{family.label}'s PyTorch peer has {peers.weight_count(peer.model):,} trainable "
            f"weights, ours {weights:,}: not the same network"
        )
    theirs = peers.PeerTrainer(peer, config.train, run.inputs, run.targets, batch, steps)
    speeds = _timed({"ours": run.fit(ours, ours=True), "torch": theirs.train_round}, rounds)
    ratio, ratio_spread = summarise(
        [o / t for o, t in zip(speeds["ours"], speeds["torch"], strict=True)]
    )
    ours_speed, ours_spread = summarise(speeds["ours"])
    torch_speed, torch_spread = summarise(speeds["torch"])
    torch = f"PyTorch {peers.torch_version()}, float32, {peers.threads()} threads, eager"
    command, key = f"{BENCH} --only peers", family.key
    what = (
        f"{config.family} `{config.preset}` ({weights:,} weights), batch {batch}, {steps} steps "
        "a round"
    )
    return [
        Figure(
            f"peers.{key}.ratio",
            ratio,
            "x",
            "peers",
            target=">= 1.2",
            command=command,
            spread=ratio_spread,
            note=f"{what}: our examples/s over PyTorch's ({torch}); the same network, examples, "
            f"optimizer ({config.train.optimizer}) and learning-rate schedule",
            family=key,
        ),
        Figure(
            f"peers.{key}.examples_per_s",
            ours_speed,
            "examples/s",
            "peers",
            command=command,
            spread=ours_spread,
            note=f"{what}, our trainer ({settings.precision}, XLA "
            f"{'on' if settings.jit_compile else 'off'})",
            family=key,
        ),
        Figure(
            f"peers.{key}.torch_examples_per_s",
            torch_speed,
            "examples/s",
            "peers",
            command=command,
            spread=torch_spread,
            note=f"{what}, {torch}: an nn.Module and a standard training loop",
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
