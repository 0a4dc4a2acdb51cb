"""The Transformer backbone shared by the classifier and the language model: token ids in,
features out.

    >>> backbone = TransformerBackbone(vocabulary_size=100, max_length=32, num_layers=2,
    ...                                num_heads=4, hidden_dim=64, intermediate_dim=128)
    >>> backbone(np.ones((2, 10), "int32")).shape
    (2, 10, 64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import ops

from bigmodel_tf.config import option
from bigmodel_tf.layers import (
    FusedLayerNormalization,
    PositionEmbedding,
    SinusoidalPositionEncoding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)

POSITIONS = ("sinusoidal", "learned")


@dataclass
class BackboneConfig:
    """The backbone's hyper-parameters; each family's config adds its own and sets defaults."""

    num_layers: int = option(2, min=1, max=48)
    num_heads: int = option(4, min=1, max=64)
    # Must be a multiple of num_heads: each head gets hidden_dim / num_heads features.
    hidden_dim: int = option(128, min=1, max=8192)
    # Vaswani et al. use 4x hidden_dim; 2x is a common cheaper choice for small models.
    intermediate_dim: int = option(256, min=1, max=32768)
    dropout: float = option(0.1, min=0.0, max=0.95)
    # Whether `dropout` also falls on the attention weights, as BERT's does. Off costs less:
    # a mask over every (query, key) pair of every head is the largest random draw of a step.
    attention_dropout: bool = option(True)
    positions: str = option("sinusoidal", choices=POSITIONS)
    # Pre-norm trains stably without a long warm-up (Xiong et al. 2020).
    norm_first: bool = option(True)
    activation: str = option("gelu", choices=("gelu", "relu"))
    # The longest input in tokens (learned positions have one vector per position).
    sequence_length: int = option(128, min=2, max=8192)
    # Learned position vectors (0: sequence_length). A pretrained checkpoint brings its whole
    # table (BERT's 512) while fine-tuning reads shorter texts.
    max_positions: int = option(0, min=0, max=8192)
    # 1e-5 is Keras' and PyTorch's default; BERT checkpoints were trained with 1e-12.
    layer_norm_epsilon: float = option(1e-5, min=0.0, max=1.0)
    # Vaswani et al. scale token embeddings by √hidden_dim to match sinusoids; BERT does not.
    scale_embeddings: bool = option(True)
    # BERT normalises the summed embeddings before the first (post-norm) block.
    embedding_norm: bool = option(False)
    # Segment (token type) embeddings, BERT's sentence A/B; 0 for none. Inputs use type 0.
    token_types: int = option(0, min=0, max=16)
    # 0 keeps Keras' initialisers (Glorot-uniform kernels). GPT-2 draws every kernel and
    # embedding from N(0, init_std²) and shrinks the residual branches' output projections by
    # 1/√(2·num_layers), so the residual stream's variance does not grow with depth.
    init_std: float = option(0.0, min=0.0, max=1.0)


def build_backbone(
    config: BackboneConfig, vocabulary_size: int, *, causal: bool
) -> TransformerBackbone:
    """The backbone `config` describes, for `vocabulary_size` ids (not yet built)."""
    return TransformerBackbone(
        vocabulary_size,
        config.sequence_length,
        config.num_layers,
        config.num_heads,
        config.hidden_dim,
        config.intermediate_dim,
        dropout=config.dropout,
        attention_dropout=None if config.attention_dropout else 0.0,
        positions=config.positions,
        causal=causal,
        norm_first=config.norm_first,
        activation=config.activation,
        max_positions=config.max_positions,
        layer_norm_epsilon=config.layer_norm_epsilon,
        scale_embeddings=config.scale_embeddings,
        embedding_norm=config.embedding_norm,
        token_types=config.token_types,
        init_std=config.init_std,
        name="backbone",
    )


def cache_shape(
    num_layers: int, num_heads: int, hidden_dim: int, length: int
) -> tuple[int, int, int, int]:
    """A causal backbone's key/value cache shape after `(batch,)`: for each layer its keys then
    its values (axis 1, `2 * num_layers` entries), per head, `length` positions of
    `hidden_dim // num_heads` features. Five axes with the batch, not six: TFLite slices at
    most five."""
    return (2 * num_layers, num_heads, length, hidden_dim // num_heads)


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class TransformerBackbone(keras.layers.Layer):
    """Token embeddings (× √hidden_dim unless told not to) plus positions (plus token type 0's
    embedding, and a LayerNorm of the sum, when asked: BERT's arrangement), then `num_layers`
    Transformer blocks (bidirectional encoder blocks, or causal decoder blocks), then a final
    LayerNorm if the blocks are pre-norm: `(batch, time)` ids -> `(batch, time, hidden_dim)`.

    Args:
        vocabulary_size: int. Number of token ids.
        max_length: int. Longest input (learned positions have this many vectors).
        num_layers: int. Number of blocks.
        num_heads: int. Attention heads per block.
        hidden_dim: int. Width of the embeddings and of every block's output.
        intermediate_dim: int. Width of each feed-forward network's hidden layer.
        dropout: float. Dropout on the embeddings and inside the blocks. Defaults to 0.0.
        attention_dropout: float. The blocks' dropout on their attention weights; None for
            `dropout`. Defaults to None.
        positions: str. `"sinusoidal"` (fixed) or `"learned"`. Defaults to `"sinusoidal"`.
        causal: bool. Causal decoder blocks instead of encoder blocks. Defaults to `False`.
        norm_first: bool. Pre-norm blocks. Defaults to `True`.
        activation: str. Feed-forward activation. Defaults to `"gelu"` (exact, with erf).
        max_positions: int. Learned position vectors; 0 for `max_length`. Defaults to 0.
        layer_norm_epsilon: float. Of every LayerNorm. Defaults to 1e-5.
        scale_embeddings: bool. Multiply token embeddings by √hidden_dim. Defaults to `True`.
        embedding_norm: bool. LayerNorm over the summed embeddings. Defaults to `False`.
        token_types: int. Token type embeddings (every input is type 0); 0 for none.
            Defaults to 0.
        init_std: float. GPT-2's initialisation with this standard deviation (see
            `BackboneConfig.init_std`); 0 for Keras' initialisers. Defaults to 0.

    Call arguments:
        token_ids: int tensor `(batch, time)`.
        padding_mask: bool tensor `(batch, time)`, `True` for real tokens. Defaults to None.
        cache: causal only: float tensor `(batch, *cache_shape(...))` of any length, the keys
            and values of the positions before `cache_index`. Defaults to None.
        cache_index: int or int tensor. Position of `token_ids`' first step.

    Returns:
        The features, and the updated cache if one was given.
    """

    def __init__(
        self,
        vocabulary_size: int,
        max_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        intermediate_dim: int,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        positions: str = "sinusoidal",
        causal: bool = False,
        norm_first: bool = True,
        activation: str = "gelu",
        max_positions: int = 0,
        layer_norm_epsilon: float = 1e-5,
        scale_embeddings: bool = True,
        embedding_norm: bool = False,
        token_types: int = 0,
        init_std: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if positions not in POSITIONS:
            raise ValueError(f"positions={positions!r}: choose one of {', '.join(POSITIONS)}")
        self.vocabulary_size = vocabulary_size
        self.max_length = max_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.positions = positions
        self.causal = causal
        self.norm_first = norm_first
        self.activation = activation
        self.max_positions = max_positions
        self.layer_norm_epsilon = layer_norm_epsilon
        self.scale_embeddings = scale_embeddings
        self.embedding_norm = embedding_norm
        self.token_types = token_types
        self.init_std = init_std

    @property
    def cache_shape(self) -> tuple[int, ...]:
        """The cache's shape after `(batch,)`, for a cache of `max_length` positions."""
        return cache_shape(self.num_layers, self.num_heads, self.hidden_dim, self.max_length)

    def build(self, input_shape):
        common = {"dtype": self.dtype_policy}
        features = (*input_shape, self.hidden_dim)
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.hidden_dim, name="token_embedding", **common
        )
        self.token_embedding.build(input_shape)
        if self.positions == "learned":
            self.position = PositionEmbedding(
                self.max_positions or self.max_length, name="position", **common
            )
        else:
            self.position = SinusoidalPositionEncoding(name="position", **common)
        self.position.build(features)
        self.token_type_embedding = None
        if self.token_types:
            self.token_type_embedding = keras.layers.Embedding(
                self.token_types, self.hidden_dim, name="token_type_embedding", **common
            )
            self.token_type_embedding.build(input_shape)
        self.embedding_layer_norm = None
        if self.embedding_norm:
            self.embedding_layer_norm = FusedLayerNormalization(
                epsilon=self.layer_norm_epsilon, name="embedding_norm", **common
            )
            self.embedding_layer_norm.build(features)
        self.embedding_dropout = keras.layers.Dropout(self.dropout, **common)
        block = TransformerDecoderBlock if self.causal else TransformerEncoderBlock
        self.blocks = [
            block(
                self.num_heads,
                self.intermediate_dim,
                dropout=self.dropout,
                attention_dropout=self.attention_dropout,
                activation=self.activation,
                norm_first=self.norm_first,
                layer_norm_epsilon=self.layer_norm_epsilon,
                name=f"block_{index + 1}",
                **common,
            )
            for index in range(self.num_layers)
        ]
        for layer in self.blocks:
            layer.build(features)
        self.final_norm = None
        if self.norm_first:  # pre-norm blocks leave the residual stream unnormalised
            self.final_norm = FusedLayerNormalization(
                epsilon=self.layer_norm_epsilon, name="final_norm", **common
            )
            self.final_norm.build(features)
        if self.init_std:
            self._initialise_as_gpt2()

    def _initialise_as_gpt2(self):
        """Redraws the kernels and embeddings from N(0, init_std²), the residual branches' output
        projections from N(0, init_std² / (2·num_layers)); biases and LayerNorms keep theirs."""
        residual_std = self.init_std / math.sqrt(2 * self.num_layers)
        variables = [(self.token_embedding.embeddings, self.init_std)]
        if self.positions == "learned":
            variables.append((self.position.embeddings, self.init_std))
        if self.token_type_embedding is not None:
            variables.append((self.token_type_embedding.embeddings, self.init_std))
        for block in self.blocks:
            attention = block.attention
            variables += [
                (attention.query_dense.kernel, self.init_std),
                (attention.key_dense.kernel, self.init_std),
                (attention.value_dense.kernel, self.init_std),
                (attention.output_dense.kernel, residual_std),
                (block.intermediate.kernel, self.init_std),
                (block.output_dense.kernel, residual_std),
            ]
        for variable, std in variables:
            variable.assign(keras.random.normal(variable.shape, stddev=std, dtype=variable.dtype))

    def call(self, token_ids, padding_mask=None, cache=None, cache_index=None, training=None):
        x = self.token_embedding(token_ids)  # (batch, time, hidden)
        if self.scale_embeddings:
            # Vaswani et al. 3.4: embeddings scaled by √d, on the scale of the positions.
            x = x * ops.cast(math.sqrt(self.hidden_dim), x.dtype)
        x = x + self.position(x, start_index=0 if cache_index is None else cache_index)
        if self.token_type_embedding is not None:
            # Every input is one segment (type 0): one vector added to every position.
            x = x + ops.cast(self.token_type_embedding.embeddings[0], x.dtype)
        if self.embedding_layer_norm is not None:
            x = self.embedding_layer_norm(x, training=training)
        x = self.embedding_dropout(x, training=training)
        for index, layer in enumerate(self.blocks):
            if cache is None:
                x = layer(x, padding_mask=padding_mask, training=training)
            else:  # every block updates its own two slots of the one cache
                x, cache = layer(
                    x,
                    padding_mask=padding_mask,
                    cache=cache,
                    cache_index=cache_index,
                    cache_slot=2 * index,
                )
        if self.final_norm is not None:
            x = self.final_norm(x, training=training)
        return x if cache is None else (x, cache)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "max_length": self.max_length,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "positions": self.positions,
                "causal": self.causal,
                "norm_first": self.norm_first,
                "activation": self.activation,
                "max_positions": self.max_positions,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "scale_embeddings": self.scale_embeddings,
                "embedding_norm": self.embedding_norm,
                "token_types": self.token_types,
                "init_std": self.init_std,
            }
        )
        return config
