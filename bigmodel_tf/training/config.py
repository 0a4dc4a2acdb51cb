"""Typed run configuration: dataclasses, `key=value` overrides, JSON/YAML files, validation.

A run is described by a `RunConfig`: which model family, which dataset, which preset, the family's
own model config (a dataclass defined next to the model) and a `TrainConfig`. Overrides use dotted
keys (`train.epochs=5`, `model.dropout=0.3`, `dataset=tfds:cifar10`); each value is parsed by the
field's type and checked against the bounds in the field's metadata (`min`, `max`, `choices`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bigmodel_tf.config import option
from bigmodel_tf.data.own import DataOptions
from bigmodel_tf.errors import UserError
from bigmodel_tf.training.precision import JIT_CHOICES, PRECISIONS

# tf.distribute strategies (training/strategy.py says what each one is).
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
# Validation metrics that may pick the best checkpoint, and whether lower or higher is better.
MONITOR_MODES = {"val_loss": "min", "val_accuracy": "max"}
# The config's sections that `--set section.key=value` reaches.
SECTIONS = ("model", "train", "data")


@dataclass
class TrainConfig:
    """How a model is trained; each family overrides what suits it (`Task.train_defaults`)."""

    epochs: int = option(10, min=1, max=100_000)
    # Global batch: split evenly across replicas, so results don't depend on the device count.
    batch_size: int = option(64, min=1, max=1 << 20)
    optimizer: str = option("adam", choices=("adam", "adamw", "sgd"))
    learning_rate: float = option(1e-3, min=0.0, max=10.0)
    # Cosine decay to zero over the run is a robust default that needs no tuning of its own.
    lr_schedule: str = option("cosine", choices=("constant", "cosine"))
    # Where the cosine decay ends, as a fraction of learning_rate (0: at zero). Ending above
    # zero keeps the last steps learning (nanoGPT and Chinchilla decay to ~10%).
    final_lr_fraction: float = option(0.0, min=0.0, max=1.0)
    warmup_epochs: float = option(0.0, min=0.0)
    weight_decay: float = option(0.0, min=0.0, max=1.0)
    # Adam's second-moment decay: 0.999 averages over ~1,000 steps; 0.99 (nanoGPT's for small
    # models) follows the gradient's scale faster when small batches make it noisy.
    adam_beta_2: float = option(0.999, min=0.0, max=0.99999)
    # Rescales the whole gradient when its norm exceeds this (0: never); recurrent nets need it
    # against the occasional exploding gradient.
    global_clipnorm: float = option(0.0, min=0.0)
    # Caps the batches of each epoch (0: the whole training split), for smoke tests and the
    # benchmarks' quick mode; each epoch still draws its batches from a fresh (seed, epoch) shuffle.
    max_steps_per_epoch: int = option(0, min=0)
    # 0 disables early stopping: the cosine schedule expects the run to go to its end.
    early_stopping_patience: int = option(0, min=0)
    seed: int = option(1, min=0, max=2**31 - 1)
    strategy: str = option("auto", choices=STRATEGIES)
    # Steps between fault-tolerance backups, besides every epoch end (0: epoch ends only). A
    # killed run redoes at most this many steps; each backup writes the weights and optimizer
    # state (13 MB for the default CNN) and keeps the previous one.
    backup_steps: int = option(100, min=0)
    # Compute precision: mixed_bfloat16 computes in bf16 with float32 variables, logits and
    # losses. auto: mixed_bfloat16 where the hardware has native bf16 and it speeds the family
    # up, else float32 (training/precision.py says why; the run's settings.json what it chose).
    precision: str = option("auto", choices=PRECISIONS)
    # XLA's effect depends on the model and the precision (it can slow a CNN ~2x and speed up a
    # small GRU ~1.5x): auto takes what was measured for the family (TrainingTask.jit_pays).
    jit_compile: str = option("auto", choices=JIT_CHOICES)
    # The validation metric that picks the best checkpoint ("": the family's, usually the
    # loss). Accuracy where a model grows confident: its validation loss turns up while its
    # accuracy still improves.
    monitor: str = option("", choices=("", *MONITOR_MODES))
    # Knowledge distillation: a finished run of the same family and dataset to learn from
    # ("" trains on the labels alone). See training/distill.py.
    distill_from: str = option("")
    # Weight of the true labels against the teacher's soft targets (Hinton et al. use a small one).
    distill_alpha: float = option(0.1, min=0.0, max=1.0)
    # Softens both distributions so the teacher's ranking of the wrong classes carries signal.
    distill_temperature: float = option(4.0, min=0.01, max=100.0)


@dataclass
class RunConfig:
    """Everything that defines a training run; written to `config.json` in the run directory."""

    family: str
    dataset: str
    preset: str
    model: Any
    train: TrainConfig = field(default_factory=TrainConfig)
    # How own data (`images:DIR`, `csv:PATH`, ...) is read and split.
    data: DataOptions = field(default_factory=DataOptions)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fields(obj: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def valid_keys(config: RunConfig) -> list[str]:
    """The dotted keys `--set` accepts for this config."""
    keys = ["dataset"]
    for section in SECTIONS:
        keys += [f"{section}.{name}" for name in _fields(getattr(config, section))]
    return keys


def describe(config: RunConfig) -> list[tuple[str, str, str]]:
    """`(key, value, allowed)` for each key `--set` accepts: its value in `config` as `--set`
    would spell it, and the choices or bounds it is checked against ("" when free)."""
    rows = [("dataset", config.dataset, "")]
    for section in SECTIONS:
        values = getattr(config, section)
        for name, spec in _fields(values).items():
            value = getattr(values, name)
            if isinstance(value, tuple):
                text = ",".join(map(str, value))
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
            meta = spec.metadata
            if "choices" in meta:
                allowed = "|".join(str(c) or '""' for c in meta["choices"])
            else:
                bounds = [
                    f">= {meta['min']}" if "min" in meta else "",
                    f"<= {meta['max']}" if "max" in meta else "",
                ]
                allowed = ", ".join(b for b in bounds if b)
            rows.append((f"{section}.{name}", text or '""', allowed))
    return rows


def parse_value(text: str, kind: Any, key: str) -> Any:
    """Parses a `--set` string as type `kind` (int, float, bool, str or tuple[int, ...])."""
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if typing.get_origin(kind) is tuple:
            (item_kind, *_) = typing.get_args(kind)
            parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
            return tuple(parse_value(p.strip(), item_kind, key) for p in parts)
        return str(text)
    except ValueError:
        name = getattr(kind, "__name__", str(kind))
        raise UserError(f"--set {key}={text!r}: expected a value of type {name}") from None


def set_value(config: RunConfig, key: str, value: Any) -> None:
    """Sets one dotted key, converting strings by the field's type and validating the result."""
    if key == "dataset":
        config.dataset = str(value)
        return
    section_name, _, name = key.partition(".")
    section = getattr(config, section_name, None) if section_name in SECTIONS else None
    if section is None or name not in _fields(section):
        raise UserError(f"unknown config key {key!r}; valid keys: {', '.join(valid_keys(config))}")
    kind = typing.get_type_hints(type(section))[name]
    if isinstance(value, str) and kind is not str:
        value = parse_value(value, kind, key)
    elif isinstance(value, list):
        value = tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    expected = typing.get_origin(kind) or kind
    if not isinstance(value, expected) or (kind is int and isinstance(value, bool)):
        raise UserError(
            f"{key}={value!r}: expected a value of type {getattr(kind, '__name__', kind)}"
        )
    _check_bounds(key, value, _fields(section)[name].metadata)
    setattr(section, name, value)


def _check_bounds(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if not values:
        raise UserError(f"{key}: needs at least one value")
    for v in values:
        if "choices" in meta and v not in meta["choices"]:
            raise UserError(f"{key}={v!r}: must be one of {', '.join(map(str, meta['choices']))}")
        if "min" in meta and v < meta["min"]:
            raise UserError(f"{key}={v!r}: must be >= {meta['min']}")
        if "max" in meta and v > meta["max"]:
            raise UserError(f"{key}={v!r}: must be <= {meta['max']}")


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """Turns `["train.epochs=5", ...]` into a dict; a malformed item is a `UserError`."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        parsed[key.strip()] = value.strip()
    return parsed


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"epochs": 5}}` → `{"train.epochs": 5}`."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_config_file(path: Path) -> dict[str, Any]:
    """Reads a JSON or YAML config file as a flat dict of dotted keys."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        tree = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError) as e:
        raise UserError(f"config file {path} is not valid {path.suffix[1:]}: {e}") from None
    if not isinstance(tree, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return flatten(tree)
