"""Transformer text classifier: a bidirectional backbone, pooled, then class probabilities.

>>> backbone = TransformerBackbone(8000, 128, num_layers=2, num_heads=4, hidden_dim=128,
...                                intermediate_dim=256)
>>> model = TransformerClassifier(backbone, num_classes=2)
>>> model(np.array([[1, 57, 902, 0, 0]], "int32")).shape  # id 0 is padding
(1, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from bigmodel_tf.config import option
from bigmodel_tf.families.transformer.backbone import (
    BackboneConfig,
    TransformerBackbone,
    build_backbone,
)
from bigmodel_tf.families.transformer.pretrained import SOURCES

POOLINGS = ("mean", "cls")


@dataclass
class EncoderConfig(BackboneConfig):
    """A bidirectional backbone over WordPiece subwords (the classifier's, and what
    masked-language pretraining makes for it)."""

    # WordPiece vocabulary computed from the training text (it may come out smaller); the
    # minimum leaves room for the 5 reserved tokens and the characters.
    vocabulary_size: int = option(8000, min=100, max=1_000_000)
    # Tokens per text, [CLS] included; longer texts are truncated. Review snippets average ~25.
    sequence_length: int = option(128, min=2, max=4096)


@dataclass
class TransformerClassifierConfig(EncoderConfig):
    """Hyper-parameters of the text classifier; the labels come from the data."""

    # The mean over real tokens uses every token's features; "cls" the first token's alone.
    pooling: str = option("mean", choices=POOLINGS)
    # A finished transformer-mlm run to start from: its vocabulary and backbone weights (its
    # model.* architecture must be this one's); "" starts from random weights.
    encoder_from: str = option("")
    # A pretrained encoder to start from (see pretrained.py): its vocabulary,
    # tokenisation and weights; the model.* architecture must be its own (the `minilm` preset).
    pretrained: str = option("", choices=("", *SOURCES))
    # A pretrained encoder whose input embeddings start this model's token embeddings
    # (pretrained.word_vectors, projected to this width); "" starts from random ones.
    embeddings_from: str = option("", choices=("", *SOURCES))
    # Word dropout on training texts (see masking.drop_tokens): a regulariser, and under
    # distillation a transfer set larger than the training split, as the teacher labels each
    # shortened text anew.
    token_dropout: float = option(0.0, min=0.0, max=0.9)
    # N-gram sampling (see masking.sample_spans): the share of training texts cut to a run of
    # 1 to 5 words. Meant for distillation, where the teacher labels each phrase.
    span_sampling: float = option(0.0, min=0.0, max=1.0)
    # Word replacement (see masking.replace_words): the share of one-subword words replaced by
    # random ones. Meant for distillation, where the teacher labels each changed text.
    word_replacement: float = option(0.0, min=0.0, max=1.0)


# all-MiniLM-L6-v2's architecture, with the fine-tuning recipe of BERT (Devlin et al. 2019,
# appendix A.3: a small learning rate, a few epochs, warm-up) scaled to 2 cores.
MINILM = {
    "pretrained": "all-minilm-l6-v2",
    "vocabulary_size": 30522,
    "num_layers": 6,
    "num_heads": 12,
    "hidden_dim": 384,
    "intermediate_dim": 1536,
    "activation": "gelu",
    "positions": "learned",
    "max_positions": 512,
    "norm_first": False,
    "layer_norm_epsilon": 1e-12,
    "scale_embeddings": False,
    "embedding_norm": True,
    "token_types": 2,
    # Review snippets average ~25 subwords; 64 keeps all but the longest whole, and attention
    # cost grows with the square of the length.
    "sequence_length": 64,
    "dropout": 0.1,
    "pooling": "mean",  # as the checkpoint was trained (sentence-transformers' mean pooling)
    # BERT-base fine-tunes at 2e-5 to 5e-5; this smaller model does better at 1e-4 (chosen on
    # validation accuracy, as the checkpoint is). Two epochs suffice: a third overfits the
    # ~10k training snippets.
    "train.learning_rate": 1e-4,
    "train.epochs": 2,
    "train.batch_size": 32,
    "train.warmup_epochs": 0.2,
    "train.weight_decay": 0.01,
    "train.monitor": "val_accuracy",
}

PRESETS: dict[str, dict] = {
    "default": {},
    "minilm": MINILM,
    # The default classifier (its int8 file is under 1 MB) as a student of a teacher's soft
    # targets (train.distill_from=RUN of the minilm preset).
    "student": {
        "sequence_length": 64,
        "embeddings_from": "all-minilm-l6-v2",
    },
}


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class TransformerClassifier(keras.Model):
    """Token ids `(batch, time)` (`pad_id` for padding) -> class probabilities `(batch, classes)`.

    Padded positions are hidden from attention and left out of the mean pooling, so a text's
    probabilities do not depend on how much padding its batch has.

    Args:
        backbone: TransformerBackbone. A non-causal backbone.
        num_classes: int. Number of classes.
        dropout: float. Dropout on the pooled features while training. Defaults to 0.0.
        pooling: str. `"mean"` over the real tokens, or `"cls"` (the first token's features).
            Defaults to `"mean"`.
        pad_id: int. The padding token id. Defaults to 0.
    """

    def __init__(
        self,
        backbone: TransformerBackbone,
        num_classes: int,
        dropout: float = 0.0,
        pooling: str = "mean",
        pad_id: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if backbone.causal:
            raise ValueError("a classifier reads the whole text: give it a non-causal backbone")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: choose one of {', '.join(POOLINGS)}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout
        self.pooling = pooling
        self.pad_id = pad_id
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        # float32 probabilities keep the loss accurate under mixed precision.
        self.head = keras.layers.Dense(
            num_classes, activation="softmax", dtype="float32", name="probabilities"
        )

    def build(self, input_shape):
        if not self.backbone.built:  # a deserialized backbone comes built
            self.backbone.build(input_shape)
        self.head.build((input_shape[0], self.backbone.hidden_dim))

    def call(self, token_ids, training=None):
        x = self.pooled(token_ids, training=training)
        return self.head(self.dropout_layer(x, training=training))

    def pooled(self, token_ids, training=None):
        """The features the head reads: `(batch, time)` ids -> `(batch, hidden_dim)`."""
        mask = ops.not_equal(token_ids, self.pad_id)  # (batch, time)
        x = self.backbone(token_ids, padding_mask=mask, training=training)  # (batch, time, dim)
        if self.pooling == "cls":
            return x[:, 0]
        weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)  # (batch, time, 1)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)  # an all-padding row gives zeros
        return ops.sum(x * weights, axis=1) / count  # (batch, dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "num_classes": self.num_classes,
                "dropout": self.dropout,
                "pooling": self.pooling,
                "pad_id": self.pad_id,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = {**config, "backbone": keras.layers.deserialize(config["backbone"])}
        return cls(**config)


def build_classifier(
    config: TransformerClassifierConfig, vocabulary_size: int, num_classes: int
) -> TransformerClassifier:
    """The classifier `config` describes, built (weights created) for `vocabulary_size` ids."""
    model = TransformerClassifier(
        build_backbone(config, vocabulary_size, causal=False),
        num_classes,
        dropout=config.dropout,
        pooling=config.pooling,
    )
    model.build((None, None))
    return model
