"""Attention of a recurrent decoder over encoder states: additive (Bahdanau) and multiplicative
(Luong) scores, one shared masked softmax and weighted sum.

Each query (a decoder state) scores every encoder state, the scores of padded positions are
masked out, and the softmax weights average the encoder states into a context vector:

    >>> attention = BahdanauAttention(units=64)
    >>> context, weights = attention(decoder_states, encoder_states, source_ids != 0)
    >>> context.shape, weights.shape  # (batch, queries, value_dim), (batch, queries, values)

The score's key projection depends on the encoder states alone, so a decoder that attends once
per step computes it once per sequence (`project_keys`) and passes it as `keys`.
"""

from __future__ import annotations

import keras
from keras import ops

from bigmodel_tf.layers.attention import masked_softmax


class _ScoredAttention(keras.layers.Layer):
    """Base class: subclasses create their weights in `build` and define `project_keys` and
    `score`; the masking, softmax and context are shared."""

    def project_keys(self, value):
        """`(batch, values, value_dim)` encoder states → the keys `score` compares queries with."""
        raise NotImplementedError

    def score(self, query, keys):
        """`(batch, queries, query_dim)` and keys → `(batch, queries, values)` scores."""
        raise NotImplementedError

    def call(self, query, value, value_mask=None, keys=None):
        keys = self.project_keys(value) if keys is None else keys
        scores = self.score(query, keys)  # (batch, queries, values)
        mask = None
        if value_mask is not None:
            mask = ops.expand_dims(ops.cast(value_mask, "bool"), 1)  # (batch, 1, values)
        # Padded positions get exactly 0. Not keras.layers.Softmax: its -1e9 fill stretches the
        # scores' range until full-int8 export rounds every real score to the same value.
        weights = masked_softmax(scores, mask)
        context = ops.einsum("bqv,bvd->bqd", weights, value)  # (batch, queries, value_dim)
        return context, weights


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class BahdanauAttention(_ScoredAttention):
    """Additive attention (Bahdanau et al., 2015): `score(q, k) = v · tanh(W_q q + W_k k)`.

    Called as `layer(query, value, value_mask=None, keys=None)` → `(context, weights)`:
    query `(batch, queries, query_dim)`, value `(batch, values, value_dim)`, value_mask
    `(batch, values)` (true or nonzero where the value is real, not padding); context
    `(batch, queries, value_dim)`, weights `(batch, queries, values)`, zero where masked.

    Args:
        units: int. Size of the space queries and keys are projected to.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_dense = keras.layers.Dense(
            units, use_bias=False, dtype=self.dtype_policy, name="query"
        )
        self.key_dense = keras.layers.Dense(
            units, use_bias=False, dtype=self.dtype_policy, name="key"
        )
        self.energy = keras.layers.Dense(1, use_bias=False, dtype=self.dtype_policy, name="energy")

    def build(self, query_shape, value_shape, value_mask_shape=None, keys_shape=None):
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape)
        self.energy.build((*query_shape[:-1], self.units))

    def project_keys(self, value):
        return self.key_dense(value)  # (batch, values, units)

    def score(self, query, keys):
        query = self.query_dense(query)  # (batch, queries, units)
        hidden = ops.tanh(ops.expand_dims(query, 2) + ops.expand_dims(keys, 1))  # (b, q, v, u)
        return ops.squeeze(self.energy(hidden), -1)  # (batch, queries, values)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class LuongAttention(_ScoredAttention):
    """Multiplicative attention, Luong et al. (2015)'s "general" score: `score(q, k) = q · W k`.

    Called like `BahdanauAttention`. Cheaper: one matrix product per query and no
    `(queries, values, units)` intermediate.

    Args:
        scale: bool. Divide scores by `sqrt(query_dim)`, which keeps the softmax from
            saturating at the start of training with wide states. Defaults to `True`.
    """

    def __init__(self, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.key_dense = None

    def build(self, query_shape, value_shape, value_mask_shape=None, keys_shape=None):
        self.key_dense = keras.layers.Dense(
            query_shape[-1], use_bias=False, dtype=self.dtype_policy, name="key"
        )
        self.key_dense.build(value_shape)

    def project_keys(self, value):
        return self.key_dense(value)  # (batch, values, query_dim)

    def score(self, query, keys):
        scores = ops.einsum("bqd,bvd->bqv", query, keys)
        if self.scale:
            scores = scores / ops.sqrt(ops.cast(ops.shape(query)[-1], scores.dtype))
        return scores

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config
