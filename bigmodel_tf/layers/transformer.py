"""Transformer blocks: self-attention and a feed-forward network, each in a residual branch.

    >>> x = np.random.rand(2, 10, 64).astype("float32")
    >>> TransformerEncoderBlock(num_heads=4, intermediate_dim=128)(x).shape
    (2, 10, 64)
    >>> TransformerDecoderBlock(num_heads=4, intermediate_dim=128)(x).shape  # causal
    (2, 10, 64)

Post-norm is the original arrangement, `x = LayerNorm(x + f(x))`; pre-norm,
`x = x + f(LayerNorm(x))`, trains more stably without warm-up (Xiong et al. 2020) and needs a
final LayerNorm after the last block, which the model adds.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bigmodel_tf.layers.attention import MultiHeadAttention
from bigmodel_tf.layers.dense import dense_over_last_axis
from bigmodel_tf.layers.normalization import FusedLayerNormalization


@tf.function(jit_compile=True)
def _gelu(x):
    """Keras' `"gelu"` (exact, through erf) computed in float32 and returned in `x`'s dtype, as
    one XLA loop forward and one backward. Uncompiled, under `mixed_bfloat16` its erf, products
    and their gradient are a dozen bf16 passes over the feed-forward's widest activation."""
    return tf.cast(tf.nn.gelu(tf.cast(x, tf.float32), approximate=False), x.dtype)


class _TransformerBlock(keras.layers.Layer):
    """What the encoder and decoder blocks share; `causal` is the difference."""

    causal: bool

    def __init__(
        self,
        num_heads: int,
        intermediate_dim: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        attention_dropout: float | None = None,
        norm_first: bool = True,
        layer_norm_epsilon: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"the width {dim} must be a multiple of num_heads={self.num_heads}")
        common = {"dtype": self.dtype_policy}
        self.attention = MultiHeadAttention(
            self.num_heads,
            dim // self.num_heads,
            dropout=self.dropout if self.attention_dropout is None else self.attention_dropout,
            name="attention",
            **common,
        )
        self.attention.build(input_shape)
        self.attention_norm = FusedLayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm", **common
        )
        self.attention_norm.build(input_shape)
        # The activation is applied in `_forward`: while training, GELU runs compiled.
        self.intermediate = keras.layers.Dense(self.intermediate_dim, name="intermediate", **common)
        self.intermediate.build(input_shape)
        self.output_dense = keras.layers.Dense(dim, name="output", **common)
        self.output_dense.build((*input_shape[:-1], self.intermediate_dim))
        self.output_norm = FusedLayerNormalization(
            epsilon=self.layer_norm_epsilon, name="output_norm", **common
        )
        self.output_norm.build(input_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, **common)

    def _forward(self, x, padding_mask, cache, cache_index, cache_slot, training):
        residual = x
        if self.norm_first:
            x = self.attention_norm(x, training=training)
        x = self.attention(
            x,
            padding_mask=padding_mask,
            use_causal_mask=self.causal,
            cache=cache,
            cache_index=cache_index,
            cache_slot=cache_slot,
            training=training,
        )
        if cache is not None:
            x, cache = x
        x = residual + self.dropout_layer(x, training=training)
        if not self.norm_first:
            x = self.attention_norm(x, training=training)

        residual = x
        if self.norm_first:
            x = self.output_norm(x, training=training)
        x = self._activate(dense_over_last_axis(self.intermediate, x), training)
        x = dense_over_last_axis(self.output_dense, x)
        x = residual + self.dropout_layer(x, training=training)
        if not self.norm_first:
            x = self.output_norm(x, training=training)
        return x, cache

    def _activate(self, x, training):
        if training and self.activation == "gelu":
            return _gelu(x)
        return keras.activations.get(self.activation)(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "attention_dropout": self.attention_dropout,
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class TransformerEncoderBlock(_TransformerBlock):
    """A bidirectional block: every position attends every (unpadded) position.

    Args:
        num_heads: int. Attention heads; the input width must be a multiple of it.
        intermediate_dim: int. Width of the feed-forward network's hidden layer.
        dropout: float. Dropout on the attention weights and on each residual branch while
            training. Defaults to 0.0.
        attention_dropout: float. Dropout on the attention weights instead; None for
            `dropout`. Defaults to None.
        activation: str. The feed-forward activation, e.g. `"gelu"` or `"relu"`. Defaults to
            `"gelu"`.
        norm_first: bool. Pre-norm (`True`) or the original post-norm. Defaults to `True`.
        layer_norm_epsilon: float. Defaults to 1e-5.

    Call arguments:
        x: float tensor `(batch, time, dim)`.
        padding_mask: bool tensor `(batch, time)`, `True` for real tokens; padded positions are
            never attended to. Defaults to None.
    """

    causal = False

    def call(self, x, padding_mask=None, training=None):
        return self._forward(x, padding_mask, None, None, 0, training)[0]


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class TransformerDecoderBlock(_TransformerBlock):
    """A causal block: each position attends itself and the positions before it.

    With `cache` it decodes incrementally (see `MultiHeadAttention`): the inputs are the
    positions from `cache_index` on and the cache holds the keys and values before them.

    Args: as `TransformerEncoderBlock`.

    Call arguments:
        x: float tensor `(batch, time, dim)`.
        padding_mask: bool tensor `(batch, time)` (or `(batch, cache_length)` with a cache),
            `True` for real tokens. Defaults to None.
        cache: float tensor `(batch, slots, num_heads, cache_length, dim // num_heads)`; the
            block's keys and values are slots `cache_slot` and `cache_slot + 1`, the others
            pass through. Defaults to None.
        cache_index: int or int tensor. Position of `x`'s first step.
        cache_slot: int. The slot of the block's keys in `cache`. Defaults to 0.

    Returns:
        `(batch, time, dim)`, and the updated cache if one was given.
    """

    causal = True

    def call(
        self, x, padding_mask=None, cache=None, cache_index=None, cache_slot: int = 0, training=None
    ):
        x, cache = self._forward(x, padding_mask, cache, cache_index, cache_slot, training)
        return x if cache is None else (x, cache)
