"""The GRU language model's training task."""

from __future__ import annotations

import keras

from bigmodel_tf import registry
from bigmodel_tf.families.gru_lm import model as gru_lm
from bigmodel_tf.families.gru_lm.serving import GruLmServing
from bigmodel_tf.families.language_model.data import CharSpec
from bigmodel_tf.families.language_model.task import LanguageModelTask
from bigmodel_tf.training.config import RunConfig


class GruLmTask(LanguageModelTask):
    """Character-level language modelling with `GruLanguageModel`, by truncated backpropagation
    through time over the training windows.
    """

    family = "gru-lm"
    config_class = gru_lm.GruLmConfig
    presets = gru_lm.PRESETS
    train_defaults = {
        # The trainer runs the default preset at ~5,300 characters/s (1.2 s per batch of 64 x 100),
        # so the 4.5 M training characters take ~14 min per epoch: 2 epochs make the ~30 min run.
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "adam",
        "learning_rate": 2e-3,
        "global_clipnorm": 5.0,
    }
    # Our GRU loop runs its input projections and kernel gradients as large matmuls, which bf16
    # speeds up most. XLA emulates bf16 matmuls, and in float32 it no longer pays either: once
    # the loop slices its gates without copies, little is left for XLA's fusion to save.
    mixed_precision_pays = True
    jit_pays = {}

    def build_model(self, config: RunConfig, spec: CharSpec) -> keras.Model:
        model = gru_lm.GruLanguageModel(
            spec.vocabulary_size,
            config.model.embedding_dim,
            config.model.rnn_units,
            config.model.num_layers,
            config.model.dropout,
        )
        model.build((None, None))
        return model


registry.register(GruLmTask(), GruLmServing())
