"""The training side every character-level language-model family shares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.data.pipeline import Batcher
from bigmodel_tf.families.language_model.components import BitsPerCharacter, TextSample
from bigmodel_tf.families.language_model.data import (
    CharSpec,
    char_examples,
    char_spec,
    random_windows,
)
from bigmodel_tf.families.language_model.report import sample_sections
from bigmodel_tf.report.sections import Section
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.task import TrainingTask


class LanguageModelTask(TrainingTask):
    """Character-level language modelling: what every language-model family shares.

    Trains on `model.sequence_length`-character windows and reports loss in nats/char, bits/char
    and perplexity. Subclasses build the model; their serving side is a `LanguageModelServing`.
    """

    default_dataset = "shakespeare"

    def prepare(self, config: RunConfig, run_dir: Path) -> CharSpec:
        return char_spec(config.dataset, run_dir, config.model.sequence_length, config.data)

    def examples(self, config: RunConfig, split: str, spec: CharSpec) -> tf.data.Dataset:
        # Random training windows are cut from one window and the next one's first part.
        spare = spec.sequence_length if split == "train" and config.model.random_windows else 0
        return char_examples(config.dataset, split, spec, config.data, spare)

    def augment(self, config: RunConfig, spec: CharSpec) -> Callable | None:
        if not config.model.random_windows:
            return None
        length, seed = spec.sequence_length, config.train.seed
        return lambda inputs, targets: random_windows(inputs, targets, length, seed)

    def batcher(self, config: RunConfig, spec: CharSpec, batch_size: int) -> Batcher:
        # Every batch the same shape (XLA compiles once); drops at most batch_size - 1 windows.
        return lambda examples: examples.batch(batch_size, drop_remainder=True)

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        import keras_hub  # 1.5 s to import: only language-model runs pay for it

        return {
            # The mean over every predicted character: the loss is in nats/char.
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": [BitsPerCharacter(), keras_hub.metrics.Perplexity(from_logits=True)],
        }

    def callbacks(
        self, config: RunConfig, spec: CharSpec, run_dir: Path
    ) -> list[keras.callbacks.Callback]:
        return [TextSample(run_dir / "logs" / "samples", spec.vocabulary, seed=config.train.seed)]

    def report_sections(
        self, config: RunConfig, spec: CharSpec, model: keras.Model, run_dir: Path
    ) -> list[Section]:
        return sample_sections(config, spec, model)
