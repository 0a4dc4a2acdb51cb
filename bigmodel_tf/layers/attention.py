"""Multi-head scaled dot-product attention, written out: `softmax(QKᵀ/√d_k)V` per head.

    >>> attention = MultiHeadAttention(num_heads=4, key_dim=16)
    >>> x = np.random.rand(2, 10, 64).astype("float32")
    >>> attention(x, padding_mask=np.ones((2, 10), bool), use_causal_mask=True).shape
    (2, 10, 64)

With the same weights, its outputs equal `keras.layers.MultiHeadAttention`'s (tested); it adds a
key/value cache for one-token-at-a-time decoding, and keeps masked scores in a bounded range so
that full-int8 TFLite conversion can represent them.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from bigmodel_tf.layers.dense import dense_over_last_axis

# Before the softmax, a masked score becomes its row's smallest score minus this margin, so its
# weight is at most e^-30 (~1e-13) of the largest one before it is set to 0, while the scores'
# range (which full-int8 quantisation must represent) stays near that of the real scores. The
# usual -1e9 stretches that range so far that int8 rounds every real score to the same value.
MASK_MARGIN = 30.0


def masked_softmax(scores, mask=None):
    """Softmax over the last axis where `mask` (bool, broadcastable to `scores`) is true; masked
    positions get a weight of exactly 0, and a row with every position masked attends to
    nothing. Safe for full-int8 export (see MASK_MARGIN)."""
    if mask is None:
        return ops.softmax(scores, axis=-1)
    floor = ops.min(scores, axis=-1, keepdims=True) - MASK_MARGIN
    weights = ops.softmax(ops.where(mask, scores, floor), axis=-1)
    return ops.where(mask, weights, ops.zeros_like(weights))


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention (Vaswani et al. 2017) with padding, causal and explicit masks.

    Each head projects the queries, keys and values to `key_dim` features, weighs the values by
    `softmax(q kᵀ / √key_dim)` over the keys, and the heads' results are concatenated and
    projected to `output_dim`. The masks are merged (a key is attended only if every mask allows
    it); masked keys get a weight of exactly 0, and a query whose keys are all masked attends
    to nothing (its heads output zeros), as Keras 3.15's layer does when it returns the scores
    (its fused path attends uniformly instead).

    With `cache`, the layer decodes incrementally: the new keys and values are written into the
    cache at `cache_index` and the queries attend to every cached position up to their own
    (positions after them hold no data yet and must be hidden by `use_causal_mask=True`). A
    stack of layers can share one cache, each layer reading and writing its own `cache_slot`.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Features of each head's queries, keys and values (d_k).
        output_dim: int. Features of the output. Defaults to None (the query's).
        dropout: float. Dropout rate on the attention weights while training. Defaults to 0.0.
        use_bias: bool. Whether the projections have biases. Defaults to `True`.
        kernel_initializer: str or initializer. For the projection kernels. Defaults to
            `"glorot_uniform"`.

    Call arguments:
        query: float tensor `(batch, time, dim)`.
        value: float tensor `(batch, source, dim)`. Defaults to `query` (self-attention).
        key: float tensor `(batch, source, dim)`. Defaults to `value`.
        padding_mask: bool tensor `(batch, source)`, `True` for real keys. Defaults to None.
        attention_mask: bool tensor `(batch, time, source)`, `True` where a query may attend a
            key. Defaults to None.
        use_causal_mask: bool. Hide the keys after each query's position. Defaults to `False`.
        cache: float tensor `(batch, slots, num_heads, cache_length, key_dim)`: this layer's keys
            (slot `cache_slot`) then values (slot `cache_slot + 1`) of the positions decoded so
            far; the other slots are returned unchanged. Defaults to None (no cache).
        cache_index: int or int tensor. Where this call's keys and values go in `cache`, i.e. the
            position of the first query.
        cache_slot: int. The slot of this layer's keys in `cache`. Defaults to 0.
        return_attention_scores: bool. Also return the attention weights
            `(batch, num_heads, time, source)` (before dropout). Defaults to `False`.

    Returns:
        `output (batch, time, output_dim)`, then the attention weights if asked for, then the
        updated cache if one was given.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        output_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.output_dim = output_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        width = self.num_heads * self.key_dim

        def projection(name: str, units: int) -> keras.layers.Dense:
            return keras.layers.Dense(
                units,
                use_bias=self.use_bias,
                kernel_initializer=keras.initializers.get(
                    keras.initializers.serialize(self.kernel_initializer)
                ),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query_dense = projection("query", width)
        self.query_dense.build(query_shape)
        self.key_dense = projection("key", width)
        self.key_dense.build(key_shape)
        self.value_dense = projection("value", width)
        self.value_dense.build(value_shape)
        self.output_dense = projection("output", self.output_dim or query_shape[-1])
        self.output_dense.build((*query_shape[:-1], width))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(
        self,
        query,
        value=None,
        key=None,
        padding_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        cache=None,
        cache_index=None,
        cache_slot: int = 0,
        return_attention_scores=False,
        training=None,
    ):
        value = query if value is None else value
        key = value if key is None else key
        if (cache is None) != (cache_index is None):
            raise ValueError("`cache` and `cache_index` go together")
        query = self._split_heads(self.query_dense, query)  # (batch, heads, time, key_dim)
        key = self._split_heads(self.key_dense, key)  # (batch, heads, source, key_dim)
        value = self._split_heads(self.value_dense, value)  # (batch, heads, source, key_dim)
        if cache is not None:
            # One write into the whole cache rather than slicing out this layer's part and
            # joining it back: XLA then updates the shared buffer in place instead of copying it.
            new = ops.stack([key, value], axis=1)  # (batch, 2, heads, time, key_dim)
            cache = ops.slice_update(cache, [0, cache_slot, 0, cache_index, 0], new)
            key = cache[:, cache_slot]  # (batch, heads, cache_length, key_dim)
            value = cache[:, cache_slot + 1]
        mask = self._compute_attention_mask(
            ops.shape(query)[2],
            ops.shape(key)[2],
            padding_mask,
            attention_mask,
            use_causal_mask,
            0 if cache_index is None else cache_index,
        )
        output, weights = self._compute_attention(query, key, value, mask, training)
        outputs = (dense_over_last_axis(self.output_dense, output),)
        if return_attention_scores:
            outputs += (weights,)
        if cache is not None:
            outputs += (cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _split_heads(self, projection, x):
        """`projection` of `(batch, time, features)` split into `(batch, heads, time, key_dim)`.

        `-1` for the batch, so that a graph whose batch is unknown needs no shape arithmetic."""
        x = dense_over_last_axis(projection, x)
        x = ops.reshape(x, (-1, ops.shape(x)[1], self.num_heads, self.key_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def _compute_attention_mask(
        self, time, source, padding_mask, attention_mask, use_causal_mask, offset
    ):
        """The merged mask, broadcastable to `(batch, heads, time, source)`, or None.

        `expand_dims` rather than `[:, None]`: TFLite has no builtin for a strided slice that
        adds axes."""
        mask = None
        if padding_mask is not None:
            padding = ops.cast(padding_mask, "bool")
            mask = ops.expand_dims(ops.expand_dims(padding, 1), 1)  # (batch, 1, 1, source)
        if attention_mask is not None:
            explicit = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)  # (batch, 1, t, s)
            mask = explicit if mask is None else ops.logical_and(mask, explicit)
        if use_causal_mask:
            # Query i sits at position offset + i and may see keys 0 .. offset + i.
            rows = ops.expand_dims(ops.arange(time) + offset, 1)  # (time, 1)
            causal = ops.expand_dims(ops.arange(source), 0) <= rows  # (time, source)
            mask = causal if mask is None else ops.logical_and(mask, causal)
        return mask

    def _compute_attention(self, query, key, value, mask, training=None):
        """`softmax(q kᵀ / √d_k) v` for every head -> `(batch, time, heads * key_dim)` and the
        weights `(batch, heads, time, source)`. Subclasses may override it."""
        query = query * ops.cast(1.0 / math.sqrt(self.key_dim), query.dtype)
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))  # (batch, heads, time, src)
        weights = masked_softmax(scores, mask)
        output = ops.matmul(self.dropout_layer(weights, training=training), value)
        output = ops.transpose(output, (0, 2, 1, 3))  # (batch, time, heads, key_dim)
        width = self.num_heads * self.key_dim
        return ops.reshape(output, (-1, ops.shape(output)[1], width)), weights

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return (*query_shape[:-1], self.output_dim or query_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
