"""The benchmarks behind `scripts/bench.py`, each returning `Figure`s: the matmul peak, each
family's run and its quality and generation figures here; the suites that time training in
`bench.throughput`, the inference suite in `bench.inference`.

Speed figures are ratios of two implementations timed in alternating rounds in one process, so
that a busy shared machine slows both alike; each value is the median over the rounds, with the
smallest and largest beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from bigmodel_tf import registry
from bigmodel_tf.bench.harness import BENCH, Family, timed_rounds
from bigmodel_tf.bench.results import Figure, summarise
from bigmodel_tf.io import read_json
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.precision import native_bf16
from bigmodel_tf.training.runs import default_run_dir, load_run, make_config
from bigmodel_tf.training.trainer import train

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
