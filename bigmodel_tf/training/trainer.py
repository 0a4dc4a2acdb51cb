"""The one training loop every model family goes through: `train` (run directories, configs
and evaluation are in `training.runs`, the run's data as training reads it in `training.inputs`)."""

from __future__ import annotations

import csv
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.data.pipeline import (
    evaluation_batches,
    training_epochs,
)
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json
from bigmodel_tf.registry import task_for
from bigmodel_tf.training.config import MONITOR_MODES, RunConfig, TrainConfig
from bigmodel_tf.training.distill import Distiller
from bigmodel_tf.training.faults import (
    BestCheckpoint,
    Preemption,
    RunLock,
    StopOnNonFinite,
    reading_data,
    save_model,
)
from bigmodel_tf.training.inputs import RunInputs, run_inputs
from bigmodel_tf.training.precision import Settings, dtype_policy, settings_for
from bigmodel_tf.training.resume import StepBackup, StepSeeds, restore_agreed
from bigmodel_tf.training.runs import (
    check_run_dir,
    default_run_dir,
    load_best,
    load_run,
    teacher_dir_of,
)
from bigmodel_tf.training.strategy import (
    barrier,
    describe,
    from_chief,
    is_chief,
    is_multiworker,
    resolve_strategy,
    task_name,
)
from bigmodel_tf.training.task import TrainingTask


def make_optimizer(train: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule `train` asks for (over its epochs)."""
    total = train.epochs * steps_per_epoch
    warmup = min(int(train.warmup_epochs * steps_per_epoch), total - 1)
    learning_rate: Any = train.learning_rate
    if train.lr_schedule == "cosine" or warmup:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else train.learning_rate,
            decay_steps=total - warmup,
            # alpha=1 holds the rate constant after warm-up.
            alpha=train.final_lr_fraction if train.lr_schedule == "cosine" else 1.0,
            warmup_target=train.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    clip = {"global_clipnorm": train.global_clipnorm or None}
    adam = {"beta_2": train.adam_beta_2, **clip}
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=train.weight_decay, **adam)
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=0.9, weight_decay=train.weight_decay or None, **clip
        )
    return keras.optimizers.Adam(learning_rate, weight_decay=train.weight_decay or None, **adam)


def _history_until(path: Path, epoch: int) -> list[dict[str, str]]:
    """Rows of history.csv before `epoch`, rewriting the file without later (redone) epochs."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < epoch]
    if rows:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.unlink()
    return rows


def train(
    config: RunConfig,
    run_dir: Path | str | None = None,
    *,
    overwrite: bool = False,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Trains, checkpoints, evaluates on the test split and writes `metrics.json`.

    Re-running with the same config and run directory resumes from the last backup (every
    `train.backup_steps` steps and every epoch end) with the same data order, dropout masks and
    augmentations as an uninterrupted run; re-running a finished run returns its metrics without
    training.

    Under MultiWorkerMirroredStrategy every worker makes this same call: the chief writes the run
    directory, the others write to temporary folders that are removed when they finish, and each
    keeps its own backup, `backup/` for the chief and `backup-<role>-<index>/` for the others.

    Args:
        config: RunConfig. From `make_config`.
        run_dir: path. Defaults to `default_run_dir(config)`.
        overwrite: bool. Delete whatever `run_dir` holds first. Defaults to `False`.
        verbose: Keras' `fit` verbosity (`"auto"`, 0, 1 or 2). Defaults to `"auto"`.
        callbacks: Keras callbacks of your own, called after the run's. Defaults to none.

    Returns:
        The contents of `metrics.json`, plus `run_dir`.
    """
    task = task_for(config.family)
    run_dir = Path(run_dir) if run_dir else default_run_dir(config)
    keras.utils.set_random_seed(config.train.seed)
    strategy = resolve_strategy(config.train.strategy)
    chief = is_chief(strategy)
    finished = chief and check_run_dir(config, run_dir, overwrite)
    if chief and overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    # Every worker follows the chief's reading of the run directory: the others may not see it
    # (storage not shared), and none may start training alone.
    if from_chief(strategy, finished):
        print(f"{run_dir} has already finished; returning its metrics", file=sys.stderr)
        metrics = run_dir / "metrics.json"
        return {**(read_json(metrics) if metrics.is_file() else {}), "run_dir": str(run_dir)}
    if config.train.batch_size % strategy.num_replicas_in_sync:
        raise UserError(
            f"train.batch_size={config.train.batch_size} must be a multiple of the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    if strategy.num_replicas_in_sync > 1:
        per_replica = config.train.batch_size // strategy.num_replicas_in_sync
        print(f"{describe(strategy)}, {per_replica} examples each per step", file=sys.stderr)
    if chief:
        # One writer per run directory; taken after the checks above, which only read.
        with RunLock(run_dir):
            return _train(
                config, task, strategy, run_dir, run_dir, run_dir / "backup", verbose, callbacks
            )
    role = task_name(strategy).replace(" ", "-")
    backup_dir = run_dir / f"backup-{role}"
    if overwrite:  # the chief removed it with the run directory, unless storage is not shared
        shutil.rmtree(backup_dir, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"bigmodel-tf-{role}-"))
    try:
        return _train(config, task, strategy, run_dir, scratch, backup_dir, verbose, callbacks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fit(
    model: keras.Model,
    callbacks: list[keras.callbacks.Callback],
    inputs: RunInputs,
    config: RunConfig,
    first_epoch: int,
    first_step: int,
    verbose: int | str,
) -> None:
    """`model.fit` from `(first_epoch, first_step)` to the end of the run."""
    train_cfg = config.train
    model.fit(
        training_epochs(
            inputs.train_examples,
            inputs.train_batcher,
            seed=train_cfg.seed,
            first_epoch=first_epoch,
            epochs=train_cfg.epochs,
            first_step=first_step,
            steps_per_epoch=inputs.steps_per_epoch,
        ),
        epochs=train_cfg.epochs,
        initial_epoch=first_epoch,
        steps_per_epoch=inputs.steps_per_epoch,
        shuffle=False,  # the dataset shuffles itself, by (seed, epoch)
        validation_data=inputs.validation,
        callbacks=callbacks,
        verbose=verbose,
    )


def _train(
    config: RunConfig,
    task: TrainingTask,
    strategy: tf.distribute.Strategy,
    run_dir: Path,
    out_dir: Path,
    backup_dir: Path,
    verbose: int | str,
    own_callbacks: Sequence[keras.callbacks.Callback],
) -> dict[str, Any]:
    """`train` on one worker, writing what the run directory holds to `out_dir` (`run_dir` on
    the chief) and its backups to `backup_dir`."""
    train_cfg = config.train
    # Teacher and data first: a bad one fails before anything is written to the run directory.
    teacher_dir = teacher_dir_of(config)
    inputs = run_inputs(config, task, strategy, out_dir)
    spec, steps_per_epoch = inputs.spec, inputs.steps_per_epoch
    write_json(out_dir / "config.json", config.to_dict())
    settings = settings_for(config, task)
    with strategy.scope(), dtype_policy(settings.precision):
        model = _compiled_model(config, task, spec, teacher_dir, steps_per_epoch, settings)
    _record_settings(_as_compiled(settings, model), strategy, out_dir, verbose)

    backup = StepBackup(backup_dir, train_cfg.backup_steps, steps_per_epoch)
    step = _resumed_at(backup, backup_dir, model, strategy, run_dir, steps_per_epoch)
    first_epoch, first_step = divmod(step, steps_per_epoch)
    history = _history_until(out_dir / "history.csv", first_epoch)
    preemption = Preemption(backup, run_dir)
    callbacks = _callbacks(
        config, task, spec, strategy, out_dir, history, backup, preemption, own_callbacks
    )
    started = time.perf_counter()
    try:
        with reading_data(config.dataset, config.data):
            _fit(model, callbacks, inputs, config, first_epoch, first_step, verbose)
    finally:
        preemption.restore_handlers()  # an exception skips Keras' on_train_end
    seconds = time.perf_counter() - started
    save_model(model, out_dir / "checkpoints" / "last.keras")
    if is_multiworker(strategy):
        print(
            f"{task_name(strategy)} final weights sha256 {_weights_digest(model)}", file=sys.stderr
        )

    best_model = load_best(out_dir, task, config)
    metrics = {
        "family": config.family,
        "dataset": config.dataset,
        **_evaluation(config, task, inputs, best_model),
        "epochs_trained_this_invocation": train_cfg.epochs - first_epoch,
        "steps_trained_this_invocation": train_cfg.epochs * steps_per_epoch - step,
        "train_seconds_this_invocation": round(seconds, 2),
        "parameters": int(best_model.count_params()),
        "replicas": strategy.num_replicas_in_sync,
    }
    write_json(out_dir / "metrics.json", metrics)
    # No worker leaves while another still works: the chief hosts the cluster's coordination
    # service, and its peers treat its exit as a failure.
    barrier(strategy)
    if is_chief(strategy):
        # Imported here: the report imports the training package, which imports this module.
        from bigmodel_tf.report import report_after_training

        report_after_training(run_dir, config, task, spec, best_model)
    return {**metrics, "run_dir": str(run_dir)}


def _as_compiled(settings: Settings, model: keras.Model) -> Settings:
    """`settings` as `model` was compiled with them: Keras leaves XLA off (with a warning) when a
    layer says it cannot be compiled, such as an image augmentation XLA has no kernel for."""
    if not settings.jit_compile or model.jit_compile:
        return settings
    layers = sorted({layer.name for layer in model._flatten_layers() if not layer.supports_jit})
    why = f"{settings.why}, but XLA off: XLA cannot compile {', '.join(layers)}"
    return Settings(settings.precision, False, why)


def _record_settings(
    settings: Settings, strategy: tf.distribute.Strategy, out_dir: Path, verbose: int | str
) -> None:
    """Keeps the precision and XLA choice the run trains with in `settings.json` and says it
    once (by the chief)."""
    write_json(out_dir / "settings.json", settings.to_dict())
    if verbose and is_chief(strategy):
        print(f"Settings: {settings.why}", file=sys.stderr)


def _resumed_at(
    backup: StepBackup,
    backup_dir: Path,
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    run_dir: Path,
    steps_per_epoch: int,
) -> int:
    """The global step the run goes on from, the backup every worker agrees on restored into
    `model`; 0 for a new run."""
    step = restore_agreed(backup, model, strategy)
    if step:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        print(
            f"Resuming {run_dir} at epoch {epoch + 1} step {in_epoch + 1}/{steps_per_epoch} "
            f"(global step {step}) from {backup_dir}",
            file=sys.stderr,
        )
    return step


def _compiled_model(
    config: RunConfig,
    task: TrainingTask,
    spec: Any,
    teacher_dir: Path | None,
    steps_per_epoch: int,
    settings: Settings,
) -> keras.Model:
    """The family's model, inside a `Distiller` with its teacher when it learns from one,
    compiled (called in the strategy's scope and the run's dtype policy, which its variables
    and layers are made in)."""
    train_cfg = config.train
    model = task.build_model(config, spec)
    if teacher_dir:
        teacher_config = load_run(teacher_dir)
        model = Distiller(
            model,
            load_best(teacher_dir, task, teacher_config),
            alpha=train_cfg.distill_alpha,
            temperature=train_cfg.distill_temperature,
            teacher_inputs=task.teacher_inputs(spec, task.prepare(teacher_config, teacher_dir)),
        )
    model.compile(
        optimizer=make_optimizer(train_cfg, steps_per_epoch),
        jit_compile=settings.jit_compile,
        **task.compile_args(config),
    )
    return model


def _callbacks(
    config: RunConfig,
    task: TrainingTask,
    spec: Any,
    strategy: tf.distribute.Strategy,
    out_dir: Path,
    history: list[dict[str, str]],
    backup: StepBackup,
    preemption: Preemption,
    own_callbacks: Sequence[keras.callbacks.Callback],
) -> list[keras.callbacks.Callback]:
    """The run's callbacks, in the order they must run; the best checkpoint is judged against
    the best value of the epochs `history` already holds."""
    train_cfg = config.train
    monitor = train_cfg.monitor or task.monitor
    mode = task.monitor_mode if monitor == task.monitor else MONITOR_MODES[monitor]
    best_so_far = [float(row[monitor]) for row in history if row.get(monitor)]
    pick = max if mode == "max" else min
    # The chief's: only its run directory holds the history the best value comes from.
    best = from_chief(strategy, pick(best_so_far) if best_so_far else float("nan"))
    checkpoints = out_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    callbacks = [
        StepSeeds(train_cfg.seed),
        # Before the backup: a non-finite step must not overwrite the last finite backup.
        StopOnNonFinite(),
        BestCheckpoint(checkpoints / "best.keras", monitor, mode, best),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "logs")),
        *task.callbacks(config, spec, out_dir),
        *own_callbacks,
        # After the others, so that an epoch counts as done only once its history row and
        # checkpoint exist; a kill in between redoes the epoch's last steps, and _history_until
        # drops its row.
        backup,
    ]
    if not is_multiworker(strategy):  # a worker leaving alone would stall its peers' collectives
        callbacks.append(preemption)
    if train_cfg.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=train_cfg.early_stopping_patience,
            )
        )
    return callbacks


def _evaluation(
    config: RunConfig, task: TrainingTask, inputs: RunInputs, best_model: keras.Model
) -> dict[str, dict[str, float]]:
    """The best model's validation and test metrics, the test ones with the task's own."""
    test = evaluation_batches(inputs.test_examples, inputs.batcher)
    return {
        "validation": best_model.evaluate(inputs.validation, return_dict=True, verbose=0),
        "test": {
            **best_model.evaluate(test, return_dict=True, verbose=0),
            **task.extra_metrics(config, inputs.spec, best_model, "test"),
        },
    }


def _weights_digest(model: keras.Model) -> str:
    """sha256 of a model's weights: equal on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()
