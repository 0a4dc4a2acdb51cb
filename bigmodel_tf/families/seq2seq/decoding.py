"""Decoding a `Seq2Seq` model: greedy and beam search over a whole batch, each one compiled
`tf.function` around one `while_loop` over steps that stops once every example has ended.

    >>> ids = greedy_decode(model, source_ids, max_length=33)           # (batch, 33) int32
    >>> ids = beam_decode(model, source_ids, 33, beam_width=5)          # the same layout

Outputs hold each example's tokens, its end id, then padding (id 0). Padding, OOV and start ids
are never predicted (`rule_out_special`). `greedy_steps` is the same greedy rule as a Python loop
over any step function: `decode_step_by_step` runs it over the eager model (the baseline tests
and benchmarks compare the compiled loops with), the export report over exported endpoints.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from keras import ops

from bigmodel_tf.compiled import compiled_loop
from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.seq2seq.data import END_ID, START_ID
from bigmodel_tf.families.seq2seq.model import Seq2Seq

# Finite, not -inf: -inf - -inf would be NaN where a score is compared with another.
NEG_INF = -1e9


def rule_out_special(logits):
    """`(rows, vocab)` logits with padding, OOV and start (ids below `END_ID`) ruled out: the
    one rule for which ids a decoder may predict."""
    return ops.where(ops.arange(ops.shape(logits)[-1]) >= END_ID, logits, NEG_INF)


def greedy_steps(
    step: Callable[[np.ndarray], np.ndarray], batch: int, max_steps: int
) -> np.ndarray:
    """Greedy decoding as a Python loop: `step(token)` takes the `(batch,)` int32 tokens of the
    last step (`START_ID` first) and returns the next `(batch, vocab)` logits, carrying its own
    state. Stops after `max_steps` steps or once every row has ended.

    Returns:
        float32 `(batch, steps, vocab)`: each step's logits with the special ids ruled out
        (`rule_out_special`) and all zeros once a row has ended, so that `argmax` gives the
        decoded ids, padding after the end.
    """
    token, done, steps = np.full(batch, START_ID, np.int32), np.zeros(batch, bool), []
    while len(steps) < max_steps and not done.all():
        logits = np.array(rule_out_special(step(token)), np.float32)
        logits[done] = 0.0
        token = logits.argmax(-1).astype(np.int32)  # padding (0) where a row has ended
        done |= token == END_ID
        steps.append(logits)
    return np.stack(steps, axis=1)


def greedy_decode(model: Seq2Seq, source, max_length: int) -> tf.Tensor:
    """The most likely token at each step, for a batch of `(batch, source_time)` source ids.

    Args:
        model: Seq2Seq. The model.
        source: int array `(batch, source_time)`, padded with 0.
        max_length: int. Steps at most (tokens plus the end id).

    Returns:
        int32 `(batch, max_length)` ids: tokens, the end id, then padding.
    """
    return _compiled(model, "greedy")(ops.convert_to_tensor(source, "int32"), max_length)


def beam_decode(
    model: Seq2Seq, source, max_length: int, beam_width: int = 5, length_penalty: float = 1.0
) -> tf.Tensor:
    """Beam search: the `beam_width` best partial outputs of each example are extended by one
    token per step; among its finished outputs, the example returns the one with the best
    length-normalised log-probability, `score / ((5 + length) / 6) ** length_penalty` (Wu et
    al., 2016). Width 1 is greedy decoding.

    Args:
        model: Seq2Seq. The model.
        source: int array `(batch, source_time)`, padded with 0.
        max_length: int. Steps at most (tokens plus the end id).
        beam_width: int. Outputs kept per example, at least 1 (a scalar tensor in a serving
            signature: one trace serves every width). Defaults to 5.
        length_penalty: float. 0 ranks by total log-probability (favouring short outputs);
            higher favours longer ones. Defaults to 1.0.

    Returns:
        int32 `(batch, max_length)` ids, as `greedy_decode`.
    """
    return _compiled(model, "beam")(
        ops.convert_to_tensor(source, "int32"),
        max_length,
        beam_width,
        ops.convert_to_tensor(length_penalty, "float32"),
    )


def decode_step_by_step(model: Seq2Seq, source, max_length: int) -> np.ndarray:
    """Greedy decoding as a Python loop that calls the model eagerly once per step: the
    baseline for `greedy_decode` (same ids, measured speed-up in docs/results.md)."""
    value, states, keys, mask = model.encode(ops.convert_to_tensor(source, "int32"))

    def step(token):
        nonlocal states
        logits, states, _ = model.step(token, states, value, keys, mask)
        return logits

    steps = greedy_steps(step, len(source), max_length).argmax(-1)  # (batch, steps)
    ids = np.zeros((len(source), max_length), np.int32)
    ids[:, : steps.shape[1]] = steps
    return ids


_GREEDY_SIGNATURE = [
    tf.TensorSpec((None, None), tf.int32, name="source"),
    tf.TensorSpec((), tf.int32, name="max_length"),
]
_SIGNATURES = {
    "greedy": _GREEDY_SIGNATURE,
    "beam": [
        *_GREEDY_SIGNATURE,
        tf.TensorSpec((), tf.int32, name="beam_width"),
        tf.TensorSpec((), tf.float32, name="length_penalty"),
    ],
}


def _compiled(model: Seq2Seq, search: str) -> Callable:
    # One trace serves every batch, source length and beam width (the shapes are dynamic).
    loop = _greedy if search == "greedy" else _beam
    return compiled_loop(model, search, loop, _SIGNATURES[search])


def _greedy(model, source, max_length):
    value, states, keys, mask = model.encode(source)
    batch = ops.shape(source)[0]

    def body(index, token, states, done, ids):
        logits, states, _ = model.step(token, states, value, keys, mask)
        token = ops.where(
            done, PAD_ID, ops.cast(ops.argmax(rule_out_special(logits), axis=-1), "int32")
        )
        ids = ops.slice_update(ids, [0, index], token[:, None])
        return index + 1, token, states, done | ops.equal(token, END_ID), ids

    def cond(index, token, states, done, ids):
        return ops.logical_and(index < max_length, ops.logical_not(ops.all(done)))

    start = ops.full((batch,), START_ID, "int32")
    ids = ops.zeros((batch, max_length), "int32")
    done = ops.zeros((batch,), "bool")
    *_, ids = ops.while_loop(cond, body, (ops.convert_to_tensor(0), start, states, done, ids))
    return ids


def _beam(model, source, max_length, width, length_penalty):
    """Beams are rows `example * width + beam` of every per-beam tensor; `width` and
    `length_penalty` are scalar tensors."""
    value, states, keys, mask = model.encode(source)
    batch = ops.shape(source)[0]
    rows = batch * width

    def tile(x):  # (batch, ...) -> (batch * width, ...), each example's beams adjacent
        return ops.repeat(x, width, axis=0)

    value, keys, mask = tile(value), tile(keys), tile(mask)
    states = [tile(state) for state in states]
    # Only the first beam is live at first, so the first step's best come from distinct tokens.
    first = ops.where(ops.arange(width) == 0, 0.0, NEG_INF)  # (width,)
    scores = ops.reshape(ops.tile(first[None], [batch, 1]), (rows,))
    example_offsets = ops.repeat(ops.arange(batch) * width, width)  # (rows,)

    def body(index, token, states, scores, done, ids):
        logits, states, _ = model.step(token, states, value, keys, mask)
        vocab = ops.shape(logits)[-1]
        log_probs = ops.log_softmax(rule_out_special(logits), axis=-1)  # (rows, vocab)
        # A finished beam continues with padding alone, at no cost: its score stays.
        padding_only = ops.where(ops.arange(vocab) == PAD_ID, 0.0, NEG_INF)
        log_probs = ops.where(done[:, None], padding_only[None], log_probs)
        candidates = ops.reshape(scores[:, None] + log_probs, (batch, width * vocab))
        best, choice = ops.top_k(candidates, k=width)  # (batch, width)
        parent = ops.reshape(choice // vocab, (rows,)) + example_offsets  # rows to continue
        token = ops.cast(ops.reshape(choice % vocab, (rows,)), "int32")
        states = [ops.take(state, parent, axis=0) for state in states]
        ids = ops.slice_update(ops.take(ids, parent, axis=0), [0, index], token[:, None])
        done = ops.take(done, parent, axis=0) | ops.equal(token, END_ID)
        return index + 1, token, states, ops.reshape(best, (rows,)), done, ids

    def cond(index, token, states, scores, done, ids):
        return ops.logical_and(index < max_length, ops.logical_not(ops.all(done)))

    start = ops.full((rows,), START_ID, "int32")
    ids = ops.zeros((rows, max_length), "int32")
    done = ops.zeros((rows,), "bool")
    loop_vars = (ops.convert_to_tensor(0), start, states, scores, done, ids)
    *_, scores, _, ids = ops.while_loop(cond, body, loop_vars)
    lengths = ops.sum(ops.cast(ops.not_equal(ids, PAD_ID), "float32"), axis=-1)  # with the end
    normalised = scores / ((5.0 + lengths) / 6.0) ** length_penalty
    best = ops.argmax(ops.reshape(normalised, (batch, width)), axis=-1)  # (batch,)
    return ops.take(ids, ops.arange(batch) * width + ops.cast(best, "int32"), axis=0)
