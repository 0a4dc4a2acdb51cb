"""The decoder-only Transformer language model's training task."""

from __future__ import annotations

from pathlib import Path

import keras

from bigmodel_tf import registry
from bigmodel_tf.families import transformer
from bigmodel_tf.families.language_model.data import CharSpec
from bigmodel_tf.families.language_model.task import LanguageModelTask
from bigmodel_tf.families.transformer.checks import check_heads
from bigmodel_tf.families.transformer.serving import CausalLmServing
from bigmodel_tf.training.config import RunConfig


class TransformerLmTask(LanguageModelTask):
    """Character-level language modelling with the decoder-only `TransformerLanguageModel`."""

    family = "transformer-lm"
    config_class = transformer.TransformerLmConfig
    presets = transformer.causal_lm.PRESETS
    # Many small steps beat few large ones on a time budget: 16 x 128 characters per step
    # gives ~11,000 optimizer steps in 5 epochs (~25 min) where 64 x 256 gave 552 in 2.
    train_defaults = {
        "epochs": 5,
        "batch_size": 16,
        "optimizer": "adamw",
        "learning_rate": 2e-3,
        "weight_decay": 0.01,
        "warmup_epochs": 0.05,
        # nanoGPT's small-model settings, each better at equal steps in our measurements.
        "final_lr_fraction": 0.1,
        "adam_beta_2": 0.99,
        "global_clipnorm": 1.0,
    }
    # bf16 without XLA: oneDNN's bf16 matmuls, with GELU and the layer norms compiled on their
    # own (`layers/transformer.py`). XLA compiling the whole step would run the bf16 dots
    # through Eigen, not oneDNN, and lose; in float32 it fuses the many small ops and wins.
    mixed_precision_pays = True
    jit_pays = {"float32": True}

    def prepare(self, config: RunConfig, run_dir: Path) -> CharSpec:
        check_heads(config)
        return super().prepare(config, run_dir)

    def build_model(self, config: RunConfig, spec: CharSpec) -> keras.Model:
        return transformer.build_language_model(config.model, spec.vocabulary_size)


registry.register(TransformerLmTask(), CausalLmServing())
