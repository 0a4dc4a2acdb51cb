"""What the benchmarks share with the families' entries: how a family is benchmarked
(`Family`, `Quality`, `Peer`), alternating timed rounds and FLOP counts.

Each family package's `bench` module lists its `ENTRIES` (and hooks for what only it measures,
such as decoding speed); the suites find them through `registry.bench_entries()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.bench.results import Figure

BENCH = "python scripts/bench.py"
# Toy models for `--quick`: one short epoch each.
QUICK = {"train.epochs": 1, "train.max_steps_per_epoch": 10}


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
class Target:
    """A family's time-to-accuracy target (`bench/time_to_accuracy.py`).

    Args:
        metric: str. The `model.evaluate` key (`accuracy`, `loss`).
        target: str. The bound, e.g. `">= 0.985"`.
        checks_per_epoch: int. Test evaluations per epoch (more: a finer time, a longer run).
            Defaults to 1.
        unit: str. The metric's unit. Defaults to none.
    """

    metric: str
    target: str
    checks_per_epoch: int = 1
    unit: str = ""


@dataclass(frozen=True)
class Peer:
    """A family's network written plainly in PyTorch, which the peers suite trains against ours.

    Args:
        model: torch.nn.Module. The network of the run's config: our model's layers and
            trainable weights, in PyTorch's own modules.
        loss: callable. `(outputs, targets)` → the scalar training loss, our model's.
        tensors: callable. `(inputs, targets)` NumPy arrays as our model takes them → the
            tensors `model` and `loss` take (called once, before any timing).
    """

    model: Any
    loss: Callable[[Any, Any], Any]
    tensors: Callable[[Any, Any], tuple[Any, Any]]


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
        settings_suite: bool. Whether the settings suite times it. Defaults to `True`.
        generation: callable. `(entry, run_dir, quick, rounds)` → the family's decoding speed
            figures. Defaults to none (a classifier has none).
        time_to_accuracy: Target. What the time-to-accuracy suite times the default run to.
            Defaults to none (not timed).
        forward_flops: callable. `(config, model, inputs, spec)` → forward FLOPs of one
            training example. Defaults to `forward_flops`: one call of the model on one example
            of the batch's shape.
        peer: callable. `(config, spec)` → the family's `Peer`, importing PyTorch when called.
            Defaults to none (the peers suite leaves the family out).
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
    settings_suite: bool = True
    generation: Callable[[Family, Path, bool, int], list[Figure]] | None = None
    time_to_accuracy: Target | None = None
    forward_flops: Callable[[Any, keras.Model, Any, Any], float] | None = None
    peer: Callable[[Any, Any], Peer] | None = None

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


def timed_rounds(functions: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Calls each function once per round, alternating; each returns its own measurement."""
    results: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            results[name].append(function())
    return results


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


def batch_of_one(signature: list[tf.TensorSpec]) -> list[tf.TensorSpec]:
    """`signature` with a batch of one: the FLOPs of one example."""
    return [tf.TensorSpec((1, *spec.shape[1:]), spec.dtype) for spec in signature]


def mean_length(ids: np.ndarray) -> int:
    """Mean non-padding (id 0) length of `(examples, time)` ids, rounded up."""
    return int(np.ceil(np.count_nonzero(ids, axis=1).mean()))


def forward_flops(config: Any, model: keras.Model, inputs: Any, spec: Any) -> float:
    """Forward FLOPs of one training example of `inputs`' shape: one call of the model.

    The profiler counts the body of a graph loop once, so a recurrent family counts itself
    through its loop-free pieces (its entry's own `forward_flops`)."""
    signature = batch_of_one([tf.TensorSpec(inputs.shape, inputs.dtype)])
    return graph_flops(lambda x: model(x, training=False), signature)
