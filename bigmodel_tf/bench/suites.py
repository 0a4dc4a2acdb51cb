"""The benchmarks behind `scripts/bench.py`; each returns `Figure`s.

Speed figures are ratios of two implementations timed in alternating rounds in one process, so
that a busy shared machine slows both alike; each value is the median over the rounds, with the
smallest and largest beside it.
"""

from __future__ import annotations

import functools
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
from bigmodel_tf.data.pipeline import training_epochs
from bigmodel_tf.data.text import char_lookup, text_to_ids
from bigmodel_tf.data.transduction import PAD_ID, reference_batches
from bigmodel_tf.export import export
from bigmodel_tf.export.report import (
    LATENCY_BATCH,
    Variant,
    latency_ratios,
    latency_rounds,
)
from bigmodel_tf.export.tflite import QUANTIZATIONS
from bigmodel_tf.io import read_json
from bigmodel_tf.models.generation import generate, generate_by_rerunning_prefix
from bigmodel_tf.models.seq2seq_decoding import beam_decode, decode_step_by_step, greedy_decode
from bigmodel_tf.training import make_config, train
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.tasks import Task
from bigmodel_tf.training.trainer import (
    default_run_dir,
    load_best,
    load_run,
    load_trained,
    make_optimizer,
    task_for,
)

BENCH = "python scripts/bench.py"


@dataclass(frozen=True)
class Quality:
    """One quality figure of a family's default run: a test metric, as the issues report it.

    Args:
        name: str. The figure's name after `<family>.<dataset>.` (`test_accuracy`, `per`).
        metric: str. The key in the run's `metrics.json` test metrics.
        unit: str. The figure's unit. Defaults to none (a fraction).
        scale: float. Multiplies the metric (100: a fraction as percent). Defaults to 1.
        target: str. The bound the issues set, or None.
    """

    name: str
    metric: str
    unit: str = ""
    scale: float = 1.0
    target: str | None = None


@dataclass(frozen=True)
class Family:
    """How one model family is benchmarked.

    Args:
        name: str. The family (`bigmodel-tf train NAME`).
        quality: tuple of Quality. The figures of its default run's test metrics.
        mfu_target: str. Model-FLOP utilisation target, or None.
        quick_overrides: dict. Config of the toy model `--quick` uses.
        train_steps: int. Training steps per timed round (full size).
        export_unit: str. Unit of the export report's metric as figures give it.
        export_scale: float. Multiplies the export report's metric into `export_unit`.
        variant: str. Names a run of the family other than its default (`pretrained`): its
            figures' key and `--family` label carry it. Defaults to none.
        preset: str. The run's preset. Defaults to `"default"`.
        teacher: str. The `label` of the entry whose run this one distils. Defaults to none.
        train_suite: bool. Whether the train suite times it. Defaults to `True`.
    """

    name: str
    quality: tuple[Quality, ...]
    mfu_target: str | None = None
    quick_overrides: dict[str, Any] = field(default_factory=dict)
    train_steps: int = 20
    export_unit: str = ""
    export_scale: float = 1.0
    variant: str = ""
    preset: str = "default"
    teacher: str | None = None
    train_suite: bool = True

    @property
    def base(self) -> str:
        """The family as figure names spell it (`gru_lm`)."""
        return self.name.replace("-", "_")

    @property
    def key(self) -> str:
        """The family and variant as figure names spell them (`transformer_pretrained`)."""
        return f"{self.base}_{self.variant}" if self.variant else self.base

    @property
    def label(self) -> str:
        """The entry as `--family` names it (`transformer-pretrained`)."""
        return f"{self.name}-{self.variant}" if self.variant else self.name


# Toy models for `--quick`: one short epoch each.
_QUICK = {"train.epochs": 1, "train.max_steps_per_epoch": 10}
_LOSS = {"unit": "nats/char"}

FAMILIES = (
    Family(
        "cnn",
        (Quality("test_accuracy", "accuracy", target=">= 0.985"),),
        mfu_target=">= 0.30",
        quick_overrides={
            "model.filters": (8, 16),
            "model.dense_units": 16,
            "model.augment": False,
            **_QUICK,
        },
        train_steps=40,
    ),
    Family(
        "gru-lm",
        (Quality("test_loss_nats", "loss", target="<= 1.60", **_LOSS),),
        quick_overrides={
            "model.embedding_dim": 8,
            "model.rnn_units": 32,
            "model.num_layers": 1,
            "model.sequence_length": 20,
            **_QUICK,
        },
        train_steps=10,
        export_unit="nats/char",
    ),
    Family(
        "transformer",
        (Quality("test_accuracy", "accuracy", target=">= 0.80"),),
        mfu_target=">= 0.30",
        quick_overrides={
            "model.vocabulary_size": 500,
            "model.sequence_length": 32,
            "model.num_layers": 1,
            "model.num_heads": 2,
            "model.hidden_dim": 16,
            "model.intermediate_dim": 32,
            **_QUICK,
        },
    ),
    Family(
        "transformer",
        (Quality("pretrained_test_accuracy", "accuracy", target=">= 0.84"),),
        # The architecture is the checkpoint's: quick runs take few, short steps instead.
        quick_overrides={"model.sequence_length": 16, **_QUICK, "train.max_steps_per_epoch": 2},
        variant="pretrained",
        preset="minilm",
        train_suite=False,
    ),
    Family(
        "transformer",
        (Quality("student_test_accuracy", "accuracy", target=">= 0.80"),),
        quick_overrides={"model.sequence_length": 16, **_QUICK},
        variant="student",
        preset="student",
        teacher="transformer-pretrained",
        train_suite=False,
    ),
    Family(
        # Compared with the GRU LM at equal size and time (docs/results.md) rather than with a
        # bound of its own.
        "transformer-lm",
        (Quality("test_loss_nats", "loss", **_LOSS),),
        quick_overrides={
            "model.num_layers": 1,
            "model.num_heads": 2,
            "model.hidden_dim": 16,
            "model.intermediate_dim": 32,
            "model.sequence_length": 32,
            **_QUICK,
        },
        export_unit="nats/char",
    ),
    Family(
        # Published G2P figures are on phonemes without stress digits: the model predicts
        # them, and the figures strip them from its outputs and the references alike.
        "seq2seq",
        tuple(
            Quality(name, metric, "%", 100, target)
            for name, metric, target in (
                ("per", "beam_per_no_stress", "<= 6.0"),
                ("wer", "beam_wer_no_stress", "<= 25"),
                ("greedy_per", "greedy_per_no_stress", None),
                ("greedy_wer", "greedy_wer_no_stress", None),
                ("per_with_stress", "beam_per", None),
                ("wer_with_stress", "beam_wer", None),
            )
        ),
        quick_overrides={
            "model.embedding_dim": 8,
            "model.units": 16,
            "model.encoder_layers": 1,
            "model.attention_units": 16,
            "model.beam_width": 2,
            **_QUICK,
        },
        export_unit="%",
        export_scale=100,
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


def _batch_of_one(signature: list[tf.TensorSpec]) -> list[tf.TensorSpec]:
    return [tf.TensorSpec((1, *spec.shape[1:]), spec.dtype) for spec in signature]


def _mean_length(ids: np.ndarray) -> int:
    """Mean non-padding (id 0) length of `(examples, time)` ids, rounded up."""
    return int(np.ceil(np.count_nonzero(ids, axis=1).mean()))


def forward_flops(config: RunConfig, model: keras.Model, inputs: Any, spec: Any) -> float:
    """Forward FLOPs of one training example, counted on its mean unpadded length.

    The profiler counts the body of a graph loop once, so a recurrent model is counted through
    its loop-free pieces: the GRU LM's `step` times the window, and the Seq2Seq's unrolled
    `encode` (scaled from the longest source to the mean one) plus its decoder `step` times
    the mean target length.
    """
    if config.family == "gru-lm":
        units, layers = model.rnn_units, model.num_layers
        signature = [tf.TensorSpec((1,), tf.int32)] + [
            tf.TensorSpec((1, units), tf.float32) for _ in range(layers)
        ]
        return inputs.shape[-1] * graph_flops(lambda t, *s: model.step(t, list(s)), signature)
    if config.family == "seq2seq":
        endpoints = task_for(config.family).serving_endpoints(model, spec)
        source, decoder_input = inputs
        encode, step = (
            graph_flops(function, _batch_of_one(signature))
            for function, signature in (endpoints["encode"], endpoints["step"])
        )
        source_share = _mean_length(source) / spec.max_source_length
        return source_share * encode + _mean_length(decoder_input) * step
    if config.family == "transformer":  # padded to each batch's longest text
        spec = tf.TensorSpec((1, _mean_length(inputs)), tf.int32)
    else:
        spec = tf.TensorSpec((1, *inputs.shape[1:]), inputs.dtype)
    return graph_flops(lambda x: model(x, training=False), [spec])


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
    train_flops = 3 * forward_flops(config, ours, inputs, spec)  # backward ~ 2x forward
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
    """The family's decoding figures: a language model's carried state against re-running the
    prefix, a Seq2Seq's compiled decoding against Python loops; none for classifiers."""
    if family.name in LM_GENERATION:
        return lm_generation_speed(family, run_dir, quick, rounds)
    if family.name == "seq2seq":
        return seq2seq_decode_speed(family, run_dir, quick, rounds)
    return []


# Carried state (a GRU's states, a Transformer's key/value cache) against re-running the
# prefix: the figure's name, the target and the lengths (characters) it is measured
# at, the first carrying the target.
LM_GENERATION = {
    "gru-lm": ("generate_speedup", ">= 20", (1000,)),
    "transformer-lm": ("kv_cache_speedup", ">= 5", (512, 64, 256, 1024)),
}


def lm_generation_speed(family: Family, run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """The stateful compiled loop (carried GRU states, or a Transformer's key/value cache)
    against re-running the whole prefix (a Transformer: its last `max_length` characters) for
    every new character, in alternating rounds."""
    _, _, spec, model = load_trained(run_dir)
    prompt, _ = text_to_ids("ROMEO:", char_lookup(spec.vocabulary))
    name, target, lengths = LM_GENERATION[family.name]
    lengths = (50,) if quick else lengths
    command, key = f"{BENCH} --only generation", family.key

    def timed(sample: Callable, length: int) -> Callable[[], float]:
        def one_round() -> float:
            start = time.perf_counter()
            sample(model, prompt, length, seed=1).numpy()
            return length / (time.perf_counter() - start)

        return one_round

    for sample in (generate, generate_by_rerunning_prefix):
        sample(model, prompt, 2, seed=1).numpy()  # traces the loop, which any length reuses
    figures = []
    for length in lengths:
        runs = {
            "stateful": timed(generate, length),
            "rerun": timed(generate_by_rerunning_prefix, length),
        }
        # The GRU's baseline takes ~100 s a round at 1,000 characters (O(length^2) steps).
        speeds = timed_rounds(runs, min(rounds, 3))
        ratio, spread = summarise(
            [s / r for s, r in zip(speeds["stateful"], speeds["rerun"], strict=True)]
        )
        first = length == lengths[0]
        figures.append(
            Figure(
                f"{key}.{name}" if first else f"{key}.{name}_{length}",
                ratio,
                "x",
                "generation",
                target=target if first else None,
                command=command,
                spread=spread,
                note=f"{length:,} characters: carried state over re-running the prefix",
                family=key,
            )
        )
        if first:
            for variant, what in (
                ("stateful", "`generate`, carried state, one tf.function loop, XLA-compiled step"),
                ("rerun", "`generate_by_rerunning_prefix`, the loop re-running the prefix, no XLA"),
            ):
                speed, speed_spread = summarise(speeds[variant])
                figures.append(
                    Figure(
                        f"{key}.generate_{variant}_chars_per_s",
                        speed,
                        "chars/s",
                        "generation",
                        command=command,
                        spread=speed_spread,
                        note=f"{what}, {length:,} characters ({run_dir})",
                        family=key,
                    )
                )
    return figures


# Words the per-word Python loop is timed on (~35 s a round for the default model).
PER_WORD_SAMPLE = 200


def seq2seq_decode_speed(family: Family, run_dir: Path, quick: bool, rounds: int) -> list[Figure]:
    """Greedy decoding of the test split three ways, in alternating rounds: the compiled
    in-graph loop over batches of 256 words; a Python loop calling the model once per step
    over the same batches; and the documents' way, that loop one word at a time (timed on
    `PER_WORD_SAMPLE` words spread over the split, as words/s). Beam search (width 5)
    over the batches is timed beside them."""
    config, _, spec, model = load_trained(run_dir)
    max_length = spec.max_target_length + 1
    batches = [
        source[:, : int((source != PAD_ID).sum(1).max())]  # each batch to its longest word
        for source, _ in reference_batches(config.dataset, "test", spec, 256).as_numpy_iterator()
    ][: 1 if quick else None]
    words = [word[None, : int((word != PAD_ID).sum())] for batch in batches for word in batch]
    sample = words[:: max(1, len(words) // (10 if quick else PER_WORD_SAMPLE))]  # all lengths

    def words_per_s(decode: Callable, inputs: list[np.ndarray]) -> Callable[[], float]:
        def one_round() -> float:
            start = time.perf_counter()
            for source in inputs:
                np.asarray(decode(source))
            return sum(len(source) for source in inputs) / (time.perf_counter() - start)

        return one_round

    greedy = functools.partial(greedy_decode, model, max_length=max_length)
    loop = functools.partial(decode_step_by_step, model, max_length=max_length)
    runs = {
        "compiled": words_per_s(greedy, batches),
        "batched_loop": words_per_s(loop, batches),
        "per_word_loop": words_per_s(loop, sample),
        "beam": words_per_s(
            functools.partial(beam_decode, model, max_length=max_length, beam_width=5), batches
        ),
    }
    same = all(
        np.array_equal(np.asarray(greedy(b)), loop(b)) for b in batches
    )  # also traces the compiled loops
    runs["beam"]()
    speeds = timed_rounds(runs, min(rounds, 3))
    command, key = f"{BENCH} --only generation", family.key
    identical = "identical ids" if same else "**different ids**"

    def ratio(baseline: str) -> tuple[float, list[float]]:
        pairs = zip(speeds["compiled"], speeds[baseline], strict=True)
        return summarise([ours / theirs for ours, theirs in pairs])

    figures = []
    for name, baseline, target, what in (
        ("decode_speedup", "per_word_loop", ">= 20", "a Python loop per word (the documents')"),
        ("decode_speedup_vs_batched_loop", "batched_loop", None, "the same batched Python loop"),
    ):
        value, spread = ratio(baseline)
        figures.append(
            Figure(
                f"{key}.{name}",
                value,
                "x",
                "generation",
                target=target,
                command=command,
                spread=spread,
                note=f"greedy decoding of {len(words):,} test words, the compiled loop over "
                f"batches of 256 against {what} calling the model once per step; {identical}",
                family=key,
            )
        )
    for variant, what in (
        ("compiled", "compiled greedy loop, batches of 256"),
        ("batched_loop", "Python loop, one model call per step, batches of 256"),
        (
            "per_word_loop",
            f"Python loop, one model call per step, one word at a time ({len(sample)} words "
            "spread over the split)",
        ),
        ("beam", "compiled beam search, width 5, batches of 256"),
    ):
        value, spread = summarise(speeds[variant])
        figures.append(
            Figure(
                f"{key}.decode_{variant}_words_per_s",
                value,
                "words/s",
                "generation",
                command=command,
                spread=spread,
                note=what,
                family=key,
            )
        )
    return figures


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
    whose deployed form is a loop of stateful steps (`Task.model_inputs` is None)."""
    config = load_run(run_dir)
    task = task_for(config.family)
    spec = task.prepare(config, run_dir)
    inputs, targets = next(
        task.raw_batches(config, spec, "test", LATENCY_BATCH).as_numpy_iterator()
    )
    batch = task.model_inputs(inputs)
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
