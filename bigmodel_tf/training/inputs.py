"""A run's data as the trainer reads it: the task's spec and splits, each checked to make a
batch, the batchers, and the steps of an epoch."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf

from bigmodel_tf.data.own import SPLITS
from bigmodel_tf.data.pipeline import Batcher, evaluation_batches, fill_cache, num_batches
from bigmodel_tf.errors import UserError
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.faults import reading_data
from bigmodel_tf.training.strategy import barrier, is_chief
from bigmodel_tf.training.task import TrainingTask


@dataclass
class RunInputs:
    """A run's data: what training, validation and the final test read."""

    spec: Any
    train_examples: tf.data.Dataset
    test_examples: tf.data.Dataset
    batcher: Batcher
    # `batcher` then the task's augmentation, if it has one: what training batches are made by.
    train_batcher: Batcher
    steps_per_epoch: int
    validation: tf.data.Dataset


def _read_splits(
    config: RunConfig, task: TrainingTask, strategy: tf.distribute.Strategy, out_dir: Path
) -> tuple[Any, dict[str, tf.data.Dataset], Batcher, dict[str, int]]:
    """The data spec, each split's examples, the batcher and each split's number of batches
    (training's capped at `train.max_steps_per_epoch`; 1 for the others if they make any)."""
    # The chief prepares the data before the others: workers on one host share the dataset
    # cache, where two processes preparing the same dataset at once would collide.
    if not is_chief(strategy):
        barrier(strategy)
    spec = task.prepare(config, out_dir)
    examples = {split: task.examples(config, split, spec) for split in SPLITS}
    if is_chief(strategy):
        barrier(strategy)
    if strategy.num_replicas_in_sync > 1:
        for split in ("train", "validation"):
            examples[split] = fill_cache(examples[split])
    batcher = task.batcher(config, spec, config.train.batch_size)
    # Training needs its steps per epoch; validation and test are counted in full where they are
    # batched for evaluation, so here they only need to make one batch.
    at_most = {"train": config.train.max_steps_per_epoch or None}
    counts = {
        split: num_batches(examples[split], batcher, at_most.get(split, 1)) for split in SPLITS
    }
    return spec, examples, batcher, counts


def run_inputs(
    config: RunConfig, task: TrainingTask, strategy: tf.distribute.Strategy, out_dir: Path
) -> RunInputs:
    """The run's data, checked to give every split a batch. A `UserError` here (bad data,
    splits too small) leaves no trace of a run directory this call created."""
    created = not out_dir.exists()
    try:
        with reading_data(config.dataset, config.data):
            spec, examples, batcher, counts = _read_splits(config, task, strategy, out_dir)
        for split, count in counts.items():
            if not count:
                raise UserError(
                    f"the {split} split of {config.dataset} makes no batch of "
                    f"{config.train.batch_size} (add data, move it with data.*_fraction, or "
                    "lower train.batch_size or the model's sequence length)"
                )
    except UserError:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    steps_per_epoch = counts["train"]
    train_batcher = batcher
    if (augment := task.augment(config, spec)) is not None:

        def train_batcher(examples: tf.data.Dataset) -> tf.data.Dataset:
            return batcher(examples).map(augment, num_parallel_calls=tf.data.AUTOTUNE)

    return RunInputs(
        spec=spec,
        train_examples=examples["train"],
        test_examples=examples["test"],
        batcher=batcher,
        train_batcher=train_batcher,
        steps_per_epoch=steps_per_epoch,
        validation=evaluation_batches(examples["validation"], batcher),
    )
