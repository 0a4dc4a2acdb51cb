"""Masked-language-model pretraining (BERT, Devlin et al. 2019) of a bidirectional backbone.

    >>> model = build_masked_lm(TransformerMlmConfig(), vocabulary_size=8000)
    >>> model({"token_ids": masked_ids, "mask_positions": positions}).shape  # (64, 30), (64, 9)
    (64, 9, 8000)

The backbone learns from unlabelled text to predict masked-out subwords from their context; a
`TransformerClassifier` then starts from its weights (`model.encoder_from` of the classifier).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from bigmodel_tf.config import option
from bigmodel_tf.families.transformer.backbone import TransformerBackbone, build_backbone
from bigmodel_tf.families.transformer.classifier import EncoderConfig


@dataclass
class TransformerMlmConfig(EncoderConfig):
    """The backbone's hyper-parameters (a classifier fine-tuned from the run must repeat them)
    and the masking rate."""

    # BERT's 15% of the subwords, of which 80% become [MASK], 10% a random subword, 10% stay.
    mask_rate: float = option(0.15, min=0.01, max=0.9)


PRESETS: dict[str, dict] = {
    "default": {},
}


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class TransformerMaskedLM(keras.Model):
    """Predicts the original tokens at masked positions: inputs `{"token_ids": (batch, time),
    "mask_positions": (batch, predictions)}` (`pad_id` for padding) -> logits
    `(batch, predictions, vocab)`, through BERT's head (Dense + GELU, LayerNorm, Dense). The
    logits are computed at the given positions alone, not at every position.

    Args:
        backbone: TransformerBackbone. A non-causal backbone.
        pad_id: int. The padding token id. Defaults to 0.
    """

    def __init__(self, backbone: TransformerBackbone, pad_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        if backbone.causal:
            raise ValueError(
                "a masked language model reads both ways: give it a non-causal backbone"
            )
        self.backbone = backbone
        self.pad_id = pad_id
        self.transform = keras.layers.Dense(
            backbone.hidden_dim, activation="gelu", dtype=self.dtype_policy, name="transform"
        )
        self.transform_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="transform_norm"
        )
        # float32 logits keep the softmax and the loss accurate under mixed precision.
        self.head = keras.layers.Dense(backbone.vocabulary_size, dtype="float32", name="logits")

    def build(self, input_shape):
        ids_shape = input_shape["token_ids"]
        if not self.backbone.built:  # a deserialized backbone comes built
            self.backbone.build(ids_shape)
        features = (*input_shape["mask_positions"], self.backbone.hidden_dim)
        self.transform.build(features)
        self.transform_norm.build(features)
        self.head.build(features)

    def call(self, inputs, training=None):
        token_ids, positions = inputs["token_ids"], inputs["mask_positions"]
        mask = ops.not_equal(token_ids, self.pad_id)
        x = self.backbone(token_ids, padding_mask=mask, training=training)  # (batch, time, dim)
        index = ops.broadcast_to(
            ops.expand_dims(positions, -1), (*ops.shape(positions), self.backbone.hidden_dim)
        )
        x = ops.take_along_axis(x, index, axis=1)  # (batch, predictions, dim)
        return self.head(self.transform_norm(self.transform(x)))

    def get_config(self):
        config = super().get_config()
        config.update({"backbone": keras.layers.serialize(self.backbone), "pad_id": self.pad_id})
        return config

    @classmethod
    def from_config(cls, config):
        config = {**config, "backbone": keras.layers.deserialize(config["backbone"])}
        return cls(**config)


def build_masked_lm(config: TransformerMlmConfig, vocabulary_size: int) -> TransformerMaskedLM:
    """The masked language model `config` describes, built (weights created)."""
    model = TransformerMaskedLM(build_backbone(config, vocabulary_size, causal=False))
    model.build({"token_ids": (None, None), "mask_positions": (None, None)})
    return model
