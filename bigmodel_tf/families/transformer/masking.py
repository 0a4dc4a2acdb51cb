"""Random changes to a training batch of subword ids: BERT's masking for masked-language
modelling (`mask_tokens`) and word dropout for classifiers (`drop_tokens`).

Both draw from stateless generators seeded by the run's seed and the batch's own ids, so that a
resumed run changes each batch as an uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.transformer.data import CLS_ID, MASK_ID, RESERVED_TOKENS


def _batch_uniform(ids: tf.Tensor, seed: int) -> Callable[..., tf.Tensor]:
    """`uniform(offset, **kwargs)`: stateless uniform draws of `ids`' shape, a function of
    `seed`, the batch's ids and `offset` (one stream per offset)."""
    content = tf.strings.reduce_join(tf.strings.as_string(tf.reshape(ids, [-1])), separator=",")
    batch_seed = tf.strings.to_hash_bucket_fast(content, 2**31 - 1)

    def uniform(offset: int, **kwargs) -> tf.Tensor:
        stream = tf.stack([tf.constant(seed, tf.int64), batch_seed + offset])
        return tf.random.stateless_uniform(tf.shape(ids), stream, **kwargs)

    return uniform


def drop_tokens(ids: tf.Tensor, rate: float, seed: int) -> tf.Tensor:
    """Word dropout (Iyyer et al. 2015) on a `(batch, time)` batch: each subword (not `[PAD]`
    and not the first and last token of a text, `[CLS]` and `[SEP]` or a last subword) becomes
    `[PAD]` with probability `rate`, which the models read as absent. Random as `mask_tokens`
    is: a function of `seed` and the batch's ids, so that a resumed run drops what an
    uninterrupted one would."""
    uniform = _batch_uniform(ids, seed)
    lengths = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1, keepdims=True)
    positions = tf.range(tf.shape(ids)[1])[None, :]
    inner = (positions > 0) & (positions < lengths - 1)
    dropped = inner & (uniform(0) < rate)
    return tf.where(dropped, tf.constant(PAD_ID, ids.dtype), ids)


def mask_tokens(
    ids: tf.Tensor, rate: float, vocabulary_size: int, seed: int
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """BERT's masking of a `(batch, time)` batch of ids for masked-language modelling.

    Selects each real token (not `[PAD]` or `[CLS]`) with probability `rate`; of the selected,
    80% become `[MASK]`, 10% a random token, 10% stay. Only the selected positions are scored,
    so they are passed as `(batch, predictions)` positions, `predictions = ceil(2 rate time)`
    per text (a text with more selected tokens, ~2% of them at 15%, keeps the first ones and
    leaves the rest unmasked): the model computes logits over the vocabulary there alone.

    The randomness is a function of `seed` and the batch's ids, not a stateful generator
    (keras-hub's `MaskedLMMaskGenerator` has no seed): each epoch's shuffle makes other batches
    and so other masks, and a resumed run draws the masks an uninterrupted one would have.

    Returns:
        `({"token_ids", "mask_positions"}, targets, weights)`: the model's inputs, the original
        ids at `mask_positions`, and float32 weights, 1 where a position was selected and 0
        where it only fills the row.
    """
    uniform = _batch_uniform(ids, seed)
    time = tf.shape(ids)[1]
    selected = (uniform(0) < rate) & (ids != PAD_ID) & (ids != CLS_ID)
    predictions = tf.cast(tf.math.ceil(2 * rate * tf.cast(time, tf.float32)), tf.int32)
    priority = tf.cast(selected, tf.float32) + uniform(1)  # the selected first, in random order
    positions = tf.sort(tf.math.top_k(priority, predictions).indices, axis=-1)
    weights = tf.gather(selected, positions, batch_dims=1)  # (batch, predictions)
    scored = tf.reduce_any(  # (batch, time): selected and kept among the predictions
        tf.logical_and(tf.one_hot(positions, time) > 0, weights[:, :, None]), axis=1
    )
    action = uniform(2)
    random_ids = uniform(3, minval=len(RESERVED_TOKENS), maxval=vocabulary_size, dtype=tf.int32)
    masked = tf.where(scored & (action < 0.8), MASK_ID, ids)
    masked = tf.where(scored & (action >= 0.8) & (action < 0.9), random_ids, masked)
    targets = tf.gather(ids, positions, batch_dims=1)
    inputs = {"token_ids": masked, "mask_positions": positions}
    return inputs, targets, tf.cast(weights, tf.float32)
