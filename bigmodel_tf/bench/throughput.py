"""The suites that time training, each in alternating rounds on the family's default config:
`settings` (float32 and bf16, XLA off and on), `train` (our trainer against NumPy arrays into
`model.fit`) and `peers` (our trainer against the family's PyTorch peer)."""

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

from bigmodel_tf.bench import peers
from bigmodel_tf.bench.harness import BENCH, Family, forward_flops, timed_rounds
from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.bench.suites import bench_config
from bigmodel_tf.data.pipeline import training_epochs
from bigmodel_tf.registry import task_for
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.precision import Settings, dtype_policy, native_bf16, settings_for
from bigmodel_tf.training.task import TrainingTask
from bigmodel_tf.training.trainer import make_optimizer


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
    family's `mixed_precision_pays` and `jit_pays` (the `auto` settings) are set from. A model
    XLA cannot compile (Keras then trains it without) has no XLA figures."""
    run = _training(family, quick)
    choices = [Settings(p, jit, "") for p in ("float32", "mixed_bfloat16") for jit in (False, True)]
    models = {_label(s.precision, s.jit_compile): run.model(s) for s in choices}
    # A model with a layer XLA cannot compile trains without it (Keras warns): nothing to time.
    models = {label: m for label, m in models.items() if m.jit_compile or "XLA off" in label}
    speeds = _timed({label: run.fit(model, ours=True) for label, model in models.items()}, rounds)

    def ratio(a: str, b: str) -> tuple[float, list[float]]:
        return summarise([x / y for x, y in zip(speeds[a], speeds[b], strict=True)])

    auto = settings_for(run.config, run.task)
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
        if a not in speeds:
            continue
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
    config, spec, inputs = run.config, run.spec, run.inputs
    settings = settings_for(config, run.task)
    ours = run.model(settings)
    speeds = _timed(
        {"ours": run.fit(ours, ours=True), "reference": run.fit(run.model(PLAIN), ours=False)},
        rounds,
    )
    count = family.forward_flops or forward_flops
    train_flops = 3 * count(config, ours, inputs, spec)  # backward ~ 2x forward
    return _throughput_figures(family, config, settings, speeds, train_flops, peaks)


def _throughput_figures(
    family: Family,
    config: RunConfig,
    settings: Settings,
    speeds: dict[str, list[float]],
    train_flops: float,
    peaks: dict[str, float],
) -> list[Figure]:
    """Our examples/s and the reference's per round, as the ratio, both speeds and the model
    FLOPs utilisation of ours (against the matmul peak of the precision we train in)."""
    batch = config.train.batch_size
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
            note=f"{what}, our pipeline ({_label(settings.precision, settings.jit_compile)})",
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
    settings = settings_for(config, run.task)
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
    return _peer_figures(family, config, settings, speeds, weights, steps)


def _peer_figures(
    family: Family,
    config: RunConfig,
    settings: Settings,
    speeds: dict[str, list[float]],
    weights: int,
    steps: int,
) -> list[Figure]:
    """Our examples/s over PyTorch's per round, and both speeds."""
    batch = config.train.batch_size
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
            note=f"{what}, our trainer ({_label(settings.precision, settings.jit_compile)})",
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
