"""The Transformer classifier's training task: from scratch, from a pretrained checkpoint
(`model.pretrained`), from pretrained word vectors (`model.embeddings_from`) or from a
`transformer-mlm` run (`model.encoder_from`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf import registry
from bigmodel_tf.data.pipeline import Batcher
from bigmodel_tf.errors import UserError
from bigmodel_tf.families import transformer
from bigmodel_tf.families.transformer.checks import check_heads
from bigmodel_tf.families.transformer.data import (
    WORDPIECE_FILE,
    Retokenizer,
    SubwordSpec,
    subword_examples,
    subword_spec,
    token_batcher,
)
from bigmodel_tf.families.transformer.masked_lm_task import TransformerMlmTask
from bigmodel_tf.families.transformer.masking import drop_tokens, replace_words, sample_spans
from bigmodel_tf.families.transformer.pretrained import (
    Checkpoint,
    load_checkpoint,
    load_weights,
    principal_projection,
    word_vectors,
)
from bigmodel_tf.families.transformer.report import text_sections
from bigmodel_tf.families.transformer.serving import ClassifierServing
from bigmodel_tf.io import read_json, write_json
from bigmodel_tf.report.sections import Section
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.faults import load_keras
from bigmodel_tf.training.task import TrainingTask

# Tang et al. 2019 sample n-grams of 1 to 5 words.
SPAN_WORDS = 5


class TransformerClassifierTask(TrainingTask):
    """Text classification with `TransformerClassifier` over WordPiece subwords."""

    family = "transformer"
    config_class = transformer.TransformerClassifierConfig
    presets = transformer.classifier.PRESETS
    default_dataset = "rotten_tomatoes"
    distillable = True
    # Measured on rotten_tomatoes: the default preset overfits after 2-3 epochs (training
    # accuracy 0.89, validation loss rising), so 4 epochs at 5e-4 with cosine decay; 10 epochs
    # at 1e-3 picked an epoch-2 checkpoint at a still high learning rate.
    train_defaults = {
        "epochs": 4,
        "batch_size": 64,
        "optimizer": "adamw",
        "learning_rate": 5e-4,
        "weight_decay": 0.01,
        "warmup_epochs": 1.0,
    }
    # XLA fuses the small ops around the attention's matmuls; bf16 gains nothing at this width.
    mixed_precision_pays = False
    jit_pays = {"float32": True}

    def measured_settings(self, config: RunConfig) -> tuple[str, bool, dict[str, bool]]:
        # A pretrained encoder is ~30x the default's weights, wide enough for bf16 matmuls to
        # pay; XLA, whose CPU dots run bf16 through Eigen, then does not (bench entry
        # `transformer-pretrained`).
        if config.model.pretrained:
            return "a pretrained transformer", True, {"float32": True}
        return super().measured_settings(config)

    def prepare(self, config: RunConfig, run_dir: Path) -> SubwordSpec:
        check_heads(config)
        model = config.model
        if model.encoder_from and model.pretrained:
            raise UserError("model.encoder_from and model.pretrained: choose one to start from")
        # The pretrained backbone's ids, before anything else is written.
        if model.encoder_from:
            encoder = _pretrained_encoder(config)
            vocabulary = read_json(encoder / WORDPIECE_FILE)
            if not (run_dir / WORDPIECE_FILE).exists():
                write_json(run_dir / WORDPIECE_FILE, vocabulary)
        if model.pretrained and not (run_dir / WORDPIECE_FILE).exists():
            checkpoint = _checked_checkpoint(config)
            vocabulary = {"vocabulary": list(checkpoint.vocabulary), "end_token": True}
            write_json(run_dir / WORDPIECE_FILE, vocabulary)
        return subword_spec(
            config.dataset,
            run_dir,
            model.vocabulary_size,
            model.sequence_length,
            options=config.data,
        )

    def examples(self, config: RunConfig, split: str, spec: SubwordSpec) -> tf.data.Dataset:
        return subword_examples(config.dataset, split, spec, options=config.data)

    def batcher(self, config: RunConfig, spec: SubwordSpec, batch_size: int) -> Batcher:
        return token_batcher(batch_size)

    def build_model(self, config: RunConfig, spec: SubwordSpec) -> keras.Model:
        model = transformer.build_classifier(config.model, spec.vocabulary_size, spec.num_classes)
        if config.model.pretrained:
            load_weights(model.backbone, _checked_checkpoint(config))
        if config.model.embeddings_from:
            rows = word_vectors(load_checkpoint(config.model.embeddings_from), spec.vocabulary)
            # At the scale of Keras' default uniform(-0.05, 0.05) initialisation.
            rows = principal_projection(rows, config.model.hidden_dim, std=0.05 / np.sqrt(3))
            model.backbone.token_embedding.embeddings.assign(rows)
        if config.model.encoder_from:
            checkpoint = Path(config.model.encoder_from) / "checkpoints" / "best.keras"
            pretrained = load_keras(checkpoint, "train the masked-LM run again")
            model.backbone.set_weights(pretrained.backbone.get_weights())
        return model

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def augment(self, config: RunConfig, spec: SubwordSpec) -> Callable | None:
        model = config.model
        drop, spans, replace = model.token_dropout, model.span_sampling, model.word_replacement
        if not (drop or spans or replace):
            return None
        seed = config.train.seed
        word_starts = tf.constant([not token.startswith("##") for token in spec.vocabulary])

        def augment(ids, labels):
            # Dropping last: spans close up their rows, and dropping leaves holes.
            if replace:
                ids = replace_words(ids, replace, word_starts, seed)
            if spans:
                ids = sample_spans(ids, spans, word_starts, SPAN_WORDS, seed)
            if drop:
                ids = drop_tokens(ids, drop, seed)
            return ids, labels

        return augment

    def teacher_inputs(
        self, spec: SubwordSpec, teacher_spec: SubwordSpec
    ) -> keras.layers.Layer | None:
        if (spec.vocabulary, spec.end_token) == (teacher_spec.vocabulary, teacher_spec.end_token):
            return None
        return Retokenizer(
            spec.vocabulary,
            teacher_spec.vocabulary,
            teacher_spec.sequence_length,
            teacher_spec.end_token,
        )

    def report_sections(
        self, config: RunConfig, spec: SubwordSpec, model: keras.Model, run_dir: Path
    ) -> list[Section]:
        return text_sections(config, spec, model)


# The architecture a classifier must share with the transformer-mlm run it starts from (dropout
# is not in the weights; the vocabulary comes from the run).
ENCODER_FIELDS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "positions",
    "norm_first",
    "activation",
    "sequence_length",
    "max_positions",
    "layer_norm_epsilon",
    "scale_embeddings",
    "embedding_norm",
    "token_types",
)


def _checked_checkpoint(config: RunConfig) -> Checkpoint:
    """`model.pretrained`, read, after checking that the model.* architecture is its own."""
    model = config.model
    checkpoint = load_checkpoint(model.pretrained)
    differences = [
        f"model.{name}={getattr(model, name)} (the checkpoint has {value})"
        for name, value in checkpoint.architecture().items()
        if getattr(model, name) != value
    ]
    if differences:
        raise UserError(
            f"model.pretrained={model.pretrained} needs its own architecture "
            f"(--preset minilm sets it): {'; '.join(differences)}"
        )
    if model.sequence_length > model.max_positions:
        raise UserError(
            f"model.sequence_length={model.sequence_length} is longer than the "
            f"{model.max_positions} positions {model.pretrained} has"
        )
    return checkpoint


def _pretrained_encoder(config: RunConfig) -> Path:
    """`model.encoder_from`, checked: a finished transformer-mlm run of the same architecture."""
    run = Path(config.model.encoder_from)
    if not (run / "config.json").is_file():
        raise UserError(f"model.encoder_from={run} is not a run directory")
    pretrained = read_json(run / "config.json")
    if pretrained["family"] != TransformerMlmTask.family:
        raise UserError(
            f"model.encoder_from={run} is a {pretrained['family']!r} run, not a "
            f"{TransformerMlmTask.family!r} run"
        )
    if not (run / "metrics.json").is_file():
        raise UserError(f"model.encoder_from={run} has not finished training")
    differences = [
        f"model.{name}={pretrained['model'][name]} there, {getattr(config.model, name)} here"
        for name in ENCODER_FIELDS
        if pretrained["model"][name] != getattr(config.model, name)
    ]
    if differences:
        raise UserError(
            f"model.encoder_from={run} has another architecture: {'; '.join(differences)}"
        )
    return run


registry.register(TransformerClassifierTask(), ClassifierServing())
