"""Masked-language-model pretraining (BERT) of the classifier's backbone: its training task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf import registry
from bigmodel_tf.data import builder
from bigmodel_tf.data.pipeline import Batcher
from bigmodel_tf.families import transformer
from bigmodel_tf.families.transformer.checks import check_heads
from bigmodel_tf.families.transformer.data import (
    SubwordSpec,
    subword_examples,
    subword_spec,
    token_batcher,
)
from bigmodel_tf.families.transformer.masking import mask_tokens
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.task import TrainingTask

# The texts masked-language pretraining learns from: the training texts and the unlabelled ones
# (Rotten Tomatoes' plot summaries, IMDB's unsupervised reviews), never held-out text.
PRETRAINING_SPLIT = "train+unsupervised"


def pretraining_split(config: RunConfig) -> str:
    """`PRETRAINING_SPLIT` where the dataset has unlabelled texts, else `train` (your text)."""
    splits = builder(config.dataset, config.data).info.splits
    return PRETRAINING_SPLIT if "unsupervised" in splits else "train"


class TransformerMlmTask(TrainingTask):
    """Masked-language-model pretraining (BERT) of the classifier's backbone on unlabelled text.

    Trains on `pretraining_split` (validation and test: the held-out splits' texts, labels
    unused), with a WordPiece vocabulary computed from it; the loss and accuracy count the
    masked positions only. A `transformer` classifier starts from the finished run with
    `model.encoder_from=RUN_DIR`. These runs are not exported: the fine-tuned classifier is.
    """

    family = "transformer-mlm"
    config_class = transformer.TransformerMlmConfig
    presets = transformer.masked_lm.PRESETS
    default_dataset = "rotten_tomatoes"
    # 20 epochs (3,560 steps) took 47 minutes on a busy 2-core machine and reached a masked-token
    # accuracy of 0.19; longer pretraining is likely to help and was not measured.
    train_defaults = {
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "adamw",
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "warmup_epochs": 1.0,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> SubwordSpec:
        check_heads(config)
        model = config.model
        return subword_spec(
            config.dataset,
            run_dir,
            model.vocabulary_size,
            model.sequence_length,
            labelled=False,
            vocabulary_split=pretraining_split(config),
            options=config.data,
        )

    def examples(self, config: RunConfig, split: str, spec: SubwordSpec) -> tf.data.Dataset:
        split = pretraining_split(config) if split == "train" else split
        return subword_examples(config.dataset, split, spec, labelled=False, options=config.data)

    def batcher(self, config: RunConfig, spec: SubwordSpec, batch_size: int) -> Batcher:
        def mask(ids):
            return mask_tokens(ids, config.model.mask_rate, spec.vocabulary_size, config.train.seed)

        return lambda examples: token_batcher(batch_size)(examples).map(mask)

    def build_model(self, config: RunConfig, spec: SubwordSpec) -> keras.Model:
        return transformer.build_masked_lm(config.model, spec.vocabulary_size)

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {
            # The mean over the masked positions (weight 1), not over every position.
            "loss": keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            ),
            "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }


registry.register(
    TransformerMlmTask(),
    f"{TransformerMlmTask.family} runs are pretraining and are not exported; fine-tune a "
    "classifier from one (bigmodel-tf train transformer --set model.encoder_from=RUN_DIR) and "
    "export that",
)
