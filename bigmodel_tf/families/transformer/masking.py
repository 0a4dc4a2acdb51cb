"""Random changes to a training batch of subword ids: BERT's masking for masked-language
modelling (`mask_tokens`), and word dropout (`drop_tokens`), word replacement
(`replace_words`) and n-gram sampling (`sample_spans`) for classifiers.

Both draw from stateless generators seeded by the run's seed and the batch's own ids, so that a
resumed run changes each batch as an uninterrupted run would have.
"""

from __future__ import annotations

import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.data.pipeline import batch_uniform
from bigmodel_tf.families.transformer.data import CLS_ID, MASK_ID, RESERVED_TOKENS


def _inner(ids: tf.Tensor) -> tf.Tensor:
    """True at each text's tokens but its first and last (`[CLS]`, and `[SEP]` or a last
    subword) in a `(batch, time)` batch whose texts start at position 0."""
    lengths = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1, keepdims=True)
    positions = tf.range(tf.shape(ids)[1])[None, :]
    return (positions > 0) & (positions < lengths - 1)


def drop_tokens(ids: tf.Tensor, rate: float, seed: int) -> tf.Tensor:
    """Word dropout (Iyyer et al. 2015) on a `(batch, time)` batch: each subword (not `[PAD]`
    and not the first and last token of a text, `[CLS]` and `[SEP]` or a last subword) becomes
    `[PAD]` with probability `rate`, which the models read as absent. Random as `mask_tokens`
    is: a function of `seed` and the batch's ids, so that a resumed run drops what an
    uninterrupted one would."""
    uniform = batch_uniform(ids, seed)
    inner = _inner(ids)
    dropped = inner & (uniform(0) < rate)
    return tf.where(dropped, tf.constant(PAD_ID, ids.dtype), ids)


def replace_words(ids: tf.Tensor, rate: float, word_starts: tf.Tensor, seed: int) -> tf.Tensor:
    """Word replacement (after Tang et al. 2019, section 3.2, who keep the part of speech) on a
    `(batch, time)` batch: each one-subword word (not the first or last token of a text) becomes
    a random one-subword word of the vocabulary with probability `rate`. Under distillation the
    teacher says what each replacement does to the label, which teaches the student about words
    its training texts use rarely or never. Random as `drop_tokens` is.

    Args:
        ids: int tensor `(batch, time)`, padded with `[PAD]`.
        rate: float. Probability that a word is replaced.
        word_starts: bool tensor `(vocabulary,)`: True for the tokens that begin a word (not
            `##` pieces); the special tokens are never drawn.
        seed: int. The run's seed.
    """
    uniform = batch_uniform(ids, seed)
    inner = _inner(ids)
    starts = tf.gather(word_starts, ids)
    # A word of one subword: a word start followed by another word start (or the end).
    next_starts = tf.concat([starts[:, 1:], tf.ones_like(starts[:, :1])], axis=1)
    replaceable = inner & starts & next_starts
    special = tf.range(tf.size(word_starts)) < len(RESERVED_TOKENS)
    choices = tf.cast(tf.where(word_starts & ~special)[:, 0], ids.dtype)
    drawn = tf.cast(uniform(20) * tf.cast(tf.size(choices), tf.float32), tf.int32)
    replaced = replaceable & (uniform(21) < rate)
    return tf.where(replaced, tf.gather(choices, drawn), ids)


def sample_spans(
    ids: tf.Tensor, rate: float, word_starts: tf.Tensor, max_words: int, seed: int
) -> tf.Tensor:
    """N-gram sampling (Tang et al. 2019, "Distilling task-specific knowledge from BERT into
    simple neural networks", section 3.2) on a `(batch, time)` batch: with probability `rate` a
    text keeps only a random run of 1 to `max_words` whole words (its first and last token,
    `[CLS]` and `[SEP]` or a last subword, stay), moved to the front of its row.

    Under distillation the teacher labels each phrase anew, so the student learns what short
    phrases say as well as whole snippets: a far larger transfer set than the training split.
    Random as `drop_tokens` is.

    Args:
        ids: int tensor `(batch, time)`, padded with `[PAD]`.
        rate: float. Probability that a text is cut to a span.
        word_starts: bool tensor `(vocabulary,)`: True for the tokens that begin a word (not
            `##` pieces), so that spans cut between words.
        max_words: int. Longest span, in words.
        seed: int. The run's seed.
    """
    uniform = batch_uniform(ids, seed)
    inner = _inner(ids)
    starts = inner & tf.gather(word_starts, ids)
    words = tf.cumsum(tf.cast(starts, tf.int32), axis=1)  # 1-based word of each inner token
    count = tf.reduce_max(tf.where(inner, words, 0), axis=1, keepdims=True)  # (batch, 1)
    span = 1 + tf.cast(uniform(10)[:, :1] * max_words, tf.int32)  # 1..max_words
    span = tf.minimum(span, tf.maximum(count, 1))
    first = 1 + tf.cast(uniform(11)[:, :1] * tf.cast(count - span + 1, tf.float32), tf.int32)
    in_span = inner & (words >= first) & (words < first + span)
    cut = (uniform(12)[:, :1] < rate) & (count > 0)
    keep = (ids != PAD_ID) & (~inner | in_span | ~cut)
    kept = tf.ragged.boolean_mask(ids, keep)
    return kept.to_tensor(PAD_ID, shape=tf.shape(ids))


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
    uniform = batch_uniform(ids, seed)
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
