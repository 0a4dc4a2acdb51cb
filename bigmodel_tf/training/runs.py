"""Run directories: the config that names one, finding and reading one, its best model.

A run directory `runs/<family>/<name>/` holds:

    config.json            the resolved RunConfig (re-running with the same config resumes)
    settings.json          the precision and XLA setting the run trained with, and why
    logs/                  TensorBoard (train/ and validation/ scalars; samples/ text; report/
                           the report's pictures; the config and test metrics as HParams)
    backup/                BackupAndRestore state while training; removed when training ends
                           (`backup-<role>-<index>/`: another worker's, on a cluster)
    checkpoints/best.keras the model with the best validation metric (what evaluate/export use)
    checkpoints/last.keras the model after the last epoch
    history.csv            per-epoch metrics
    metrics.json           validation and test metrics of the best model: the run has finished
    report.html            the run on one page (`bigmodel_tf.report`), written after them
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import keras

from bigmodel_tf.data import DataOptions, check_name
from bigmodel_tf.data.pipeline import evaluation_batches
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json
from bigmodel_tf.registry import task_for
from bigmodel_tf.training.config import RunConfig, TrainConfig, set_value
from bigmodel_tf.training.distill import student_of
from bigmodel_tf.training.faults import load_keras, reading_data
from bigmodel_tf.training.task import TrainingTask


def make_config(
    family: str,
    *,
    dataset: str | None = None,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Resolves a run config: family defaults, then the preset, then `overrides` (dotted keys).

    Args:
        family: str. Model family, e.g. `"cnn"`.
        dataset: str. Dataset name; defaults to the family's (`mnist5k` for the CNN).
        preset: str. A named model configuration of the family (it may set `train.*` values
            too). Defaults to `"default"`.
        overrides: dict. `{"train.epochs": 5, "model.dropout": "0.3"}`; strings are parsed by the
            field's type. Unknown keys and out-of-range values raise `UserError`.
    """
    task = task_for(family)
    if preset not in task.presets:
        raise UserError(
            f"unknown preset {preset!r} for {family}; choose one of: {', '.join(task.presets)}"
        )
    config = RunConfig(
        family=family,
        dataset=dataset or task.default_dataset,
        preset=preset,
        model=task.config_class(),
        train=TrainConfig(),
    )
    for key, value in task.train_defaults.items():
        set_value(config, f"train.{key}", value)
    for key, value in task.presets[preset].items():  # `train.*` keys, else a model field
        set_value(config, key if key.startswith("train.") else f"model.{key}", value)
    for key, value in (overrides or {}).items():
        set_value(config, key, value)
    check_name(config.dataset)
    return config


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Rebuilds a RunConfig from `config.json`."""
    task = task_for(raw["family"])
    model = task.config_class(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in raw["model"].items()}
    )
    return RunConfig(
        raw["family"],
        raw["dataset"],
        raw["preset"],
        model,
        TrainConfig(**_train_section(raw["train"])),
        DataOptions(**raw.get("data", {})),
    )


def _train_section(raw: dict[str, Any]) -> dict[str, Any]:
    """A `config.json`'s train section as `TrainConfig` takes it. Runs from before the precision
    settings trained in float32 and spelled `jit_compile` as a boolean."""
    raw = {"precision": "float32", **raw}
    if isinstance(raw.get("jit_compile"), bool):
        raw["jit_compile"] = str(raw["jit_compile"]).lower()
    return raw


def default_run_dir(config: RunConfig) -> Path:
    """`runs/<family>/<dataset>-<preset>-<config hash>`: the same command finds the same run."""
    described = config.to_dict()
    if config.data == DataOptions():
        # Runs that read no own data (or read it the default way) keep the directory they had
        # before the data options existed.
        del described["data"]
    for key in ("precision", "jit_compile"):
        # `auto` is a choice made per machine: a run keeps one directory wherever it trains.
        if described["train"][key] == "auto":
            del described["train"][key]
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:8]
    dataset = config.dataset.replace(":", "_").replace("/", "_")
    return Path("runs") / config.family / f"{dataset}-{config.preset}-{digest}"


def load_run(run_dir: Path) -> RunConfig:
    """The config of an existing run directory."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    return config_from_dict(read_json(path))


def check_run_dir(config: RunConfig, run_dir: Path, overwrite: bool) -> bool:
    """Checks, without writing, that `run_dir` can hold this run; True if it already finished."""
    saved = run_dir / "config.json"
    if overwrite or not run_dir.exists():
        return False
    if saved.is_file():
        previous = read_json(saved)
        if previous.get("family") != config.family:
            raise UserError(
                f"{run_dir} holds a {previous.get('family')!r} run, not {config.family!r}; "
                "choose another --run-dir"
            )
        # Read back through the dataclasses: options added since the run was made take their
        # defaults, which keep the behaviour the run had.
        differences = _differences(config_from_dict(previous).to_dict(), config.to_dict())
        if differences:
            raise UserError(
                f"{run_dir} holds a run with a different config ({'; '.join(differences[:4])}); "
                "choose another --run-dir, or --overwrite to replace it"
            )
        return (run_dir / "metrics.json").is_file()
    if any(run_dir.iterdir()):
        raise UserError(f"{run_dir} exists and is not a run directory; choose another --run-dir")
    return False


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif json.dumps(a) != json.dumps(b):
            found.append(f"{prefix}{key}: {a} → {b}")
    return found


def load_trained(run_dir: Path | str) -> tuple[RunConfig, TrainingTask, Any, keras.Model]:
    """A trained run's config, task, data spec and best model (`checkpoints/best.keras`)."""
    run_dir = Path(run_dir)
    config = load_run(run_dir)
    task = task_for(config.family)
    spec = task.prepare(config, run_dir)
    return config, task, spec, load_best(run_dir, task, config)


def load_best(run_dir: Path, task: TrainingTask, config: RunConfig) -> keras.Model:
    """A run's best checkpoint (a distilled run's student), compiled with the task's loss.

    Compiled afresh rather than from the checkpoint: a student is evaluated on the labels alone,
    not on the distillation loss, and evaluation needs no optimizer state.
    """
    checkpoint = Path(run_dir) / "checkpoints" / "best.keras"
    if not checkpoint.is_file():
        raise UserError(f"{run_dir} has no checkpoints/best.keras yet; train it first")
    remedy = f"train the run again (bigmodel-tf train ... --overwrite --run-dir {run_dir})"
    model = student_of(load_keras(checkpoint, remedy))
    model.compile(**task.compile_args(config))
    return model


def teacher_dir_of(config: RunConfig) -> Path | None:
    """`train.distill_from`, checked: a finished run of the same family and dataset."""
    if not config.train.distill_from:
        return None
    if not task_for(config.family).distillable:
        raise UserError(f"train.distill_from: {config.family} runs cannot be distilled yet")
    teacher_dir = Path(config.train.distill_from)
    if not (teacher_dir / "config.json").is_file():
        raise UserError(f"train.distill_from={teacher_dir} is not a run directory")
    teacher = load_run(teacher_dir)
    if (teacher.family, teacher.dataset) != (config.family, config.dataset):
        raise UserError(
            f"train.distill_from={teacher_dir} is a {teacher.family} run on {teacher.dataset}, "
            f"not {config.family} on {config.dataset}"
        )
    if not (teacher_dir / "metrics.json").is_file():
        raise UserError(f"train.distill_from={teacher_dir} has not finished training")
    return teacher_dir


def evaluate(
    run_dir: Path | str, split: str = "test", *, verbose: int | str = 0
) -> dict[str, float]:
    """`model.evaluate` of a run's best checkpoint on `split` (any TFDS split expression)."""
    config = load_run(run_dir)
    with reading_data(config.dataset, config.data):
        config, task, spec, model = load_trained(run_dir)
        batches = evaluation_batches(
            task.examples(config, split, spec), task.batcher(config, spec, config.train.batch_size)
        )
        return {
            **model.evaluate(batches, return_dict=True, verbose=verbose),
            **task.extra_metrics(config, spec, model, split),
        }
