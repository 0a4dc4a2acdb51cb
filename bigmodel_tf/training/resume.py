"""Exact resume at any backed-up step, on one process or on every worker of a cluster.

A resumed run must see what an uninterrupted one would have seen from the step it resumes at:
the same batches (`data.pipeline.training_epochs` starts at that epoch and step), the same
dropout masks and augmentations (`StepSeeds`), and the same weights and optimizer state
(`StepBackup`). The step is the optimizer's iteration count, which the backup restores with the
weights.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import keras
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.training.faults import writing
from bigmodel_tf.training.strategy import gather_rows


def global_step(model: keras.Model) -> int:
    """Training steps taken so far: the optimizer's iteration count (a mirrored variable under a
    strategy, read through numpy)."""
    return int(model.optimizer.iterations.numpy())


class StepSeeds(keras.callbacks.Callback):
    """Sets every seed generator in the model (dropout, augmentation) from (seed, step) before
    each training step.

    Keras does not save seed-generator states in its backups, so without this a resumed run
    would draw different dropout masks and augmentations than an uninterrupted one.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed
        self._states: list = []

    def on_train_begin(self, logs=None):
        self._states = [v for v in self.model.variables if v.name == "seed_generator_state"]

    def on_train_batch_begin(self, batch, logs=None):
        step = global_step(self.model)
        for index, state in enumerate(self._states):
            # state = [seed, counter]; each draw advances the counter. One seed per (generator,
            # step), unique for a million steps within Keras' int32 range, keeps steps apart
            # however many draws a step makes.
            seed = ((self.seed * 7919 + index) * 1_000_003 + step) % (2**31 - 2)
            state.assign(tf.constant([seed, 0], dtype=state.dtype))


class StepBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` every `save_steps` steps and at every epoch end, resuming at the
    exact step.

    Keras 3.15 backs up mid-epoch, but restoring it restarts the interrupted epoch from its first
    batch (and records a resumed run's epoch as 0 until that epoch ends). Here the step to resume
    at is the optimizer's iteration count inside the weights file, so it cannot disagree with the
    weights as `training_metadata.json` can after a kill between the two writes; `restore` loads
    the backup before `fit`, so that the data can start at that step, and a resumed epoch ends
    where an uninterrupted one would. Two generations are kept: a kill while one is written leaves
    the other to restore from.

    Args:
        backup_dir: path. This process's own backup folder (one per worker).
        save_steps: int. Steps between backups; 0 backs up at epoch ends only.
        steps_per_epoch: int. Steps in a full epoch.
    """

    def __init__(self, backup_dir: Path, save_steps: int, steps_per_epoch: int):
        super().__init__(str(backup_dir), save_freq=save_steps or "epoch", double_checkpoint=True)
        self.steps_per_epoch = steps_per_epoch
        self._ending_epoch = False

    def restore(self, model: keras.Model, *, previous: bool = False) -> int:
        """Loads the last backup (or the one before, with `previous`) into the built, compiled
        `model`, if there is one; returns the global step training resumes at (0 if none)."""
        self.set_model(model)
        if previous and Path(self._prev_weights_path).is_file():
            Path(self._prev_weights_path).replace(self._weights_path)
            if Path(self._prev_training_metadata_path).is_file():
                Path(self._prev_training_metadata_path).replace(self._training_metadata_path)
        try:
            with model.distribute_strategy.scope():  # where the optimizer builds its variables
                super().on_train_begin()  # Keras' loading, with its fall-back to the older backup
        except (OSError, ValueError, KeyError) as e:
            raise UserError(
                f"the backup in {self.backup_dir} is damaged ({str(e)[:100]}); delete that folder "
                "to restart from the beginning, or train with --overwrite"
            ) from None
        step = global_step(model)
        self._current_epoch = step // self.steps_per_epoch  # what Keras records in the metadata
        model._initial_epoch = None  # fit's `initial_epoch` decides, not the metadata
        return step

    def _load_model(self):
        # Metadata torn by a kill mid-write does not matter: the step comes from the weights.
        with contextlib.suppress(json.JSONDecodeError):
            super()._load_model()

    def on_train_begin(self, logs=None):
        pass  # restored by `restore`, before fit

    def _save_model(self):
        # A full disk mid-write leaves the older generation to restore from; say which folder.
        with writing(Path(self.backup_dir), "the backup in"):
            super()._save_model()

    def save_now(self) -> None:
        """Writes a backup at the current step, between the regular ones (a preempted run's)."""
        step = global_step(self.model)
        self._current_epoch, batch = divmod(step, self.steps_per_epoch)
        self._last_batch_seen = batch - 1
        self._save_model()

    def _should_save_on_batch(self, batch):
        # By the global step, which survives a restart (Keras counts batches since the process
        # started). Not at an epoch's last step: that backup waits for on_epoch_end, after the
        # epoch's validation, history row and checkpoints, so that resuming never skips them.
        step = global_step(self.model)
        self._last_batch_seen = step % self.steps_per_epoch - 1  # what Keras records as "batch"
        return (
            self.save_freq != "epoch"
            and step % self.save_freq == 0
            and step % self.steps_per_epoch != 0
        )

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        last_of_epoch = global_step(self.model) % self.steps_per_epoch == 0
        if last_of_epoch and batch + 1 < self.steps_per_epoch and not self.model.stop_training:
            # A resumed epoch started part-way: end it here, as an uninterrupted one ends. fit
            # then validates and calls on_epoch_end, which lets training go on.
            self.model.stop_training = self._ending_epoch = True

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()
        if self._ending_epoch:
            self.model.stop_training = self._ending_epoch = False


def restore_agreed(backup: StepBackup, model: keras.Model, strategy: tf.distribute.Strategy) -> int:
    """Restores `backup` into `model` at a step every worker restores; returns that step.

    Workers back up at the same steps, but a worker killed between its peers' backups and its
    own lags one generation behind them; they then all resume from the older one.
    """
    step = backup.restore(model)
    steps = gather_rows(strategy, [step])[:, 0]
    if steps.min() == steps.max():
        return step
    if step > steps.min():
        step = backup.restore(model, previous=True)
    steps = gather_rows(strategy, [step])[:, 0]
    if steps.min() != steps.max():
        raise UserError(
            f"the workers' backups are of different steps ({sorted(set(steps.astype(int)))}) and "
            "no older backup is common to all; delete the run's backup folders to start over"
        )
    return step
