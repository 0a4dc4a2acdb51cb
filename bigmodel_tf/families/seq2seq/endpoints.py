"""The `tf.Module`s a seq2seq export saves besides the model's own step: `Transducer`, words to
phonemes in the graph (the SavedModel's `transduce`), and `UnrolledEncoder`, the encoder without
a loop (the `encode` signature of every `.tflite` file)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.seq2seq.data import END_ID, Seq2SeqSpec, split_source, token_lookup
from bigmodel_tf.families.seq2seq.decoding import beam_decode
from bigmodel_tf.families.seq2seq.model import Seq2Seq


class Transducer(tf.Module):
    """Strings in, strings out: the exported `transduce(words, beam_width, length_penalty)`.

    In the graph: lowercases the words (if the training words were), splits them into
    characters, maps characters outside the vocabulary to the OOV id and cuts words after
    `max_source_length` characters (`bigmodel-tf transduce` refuses both instead), beam-decodes
    (width 1 is greedy) and joins the output tokens with spaces; an empty word gives an empty
    output. A `tf.Module`, so that an export saves its lookup tables with it.

    Args:
        model: Seq2Seq. The model.
        spec: Seq2SeqSpec. Its data spec.
    """

    def __init__(self, model: Seq2Seq, spec: Seq2SeqSpec):
        super().__init__(name="transducer")
        self.model = model
        self.spec = spec
        self.sources = token_lookup(spec.source_vocabulary)
        self.targets = token_lookup(spec.target_vocabulary, invert=True)

    def __call__(
        self, words: tf.Tensor, beam_width: tf.Tensor, length_penalty: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        tf.debugging.assert_positive(beam_width, message="beam_width must be >= 1")
        if self.spec.lowercase:
            words = tf.strings.lower(words, encoding="utf-8")
        characters = split_source(words)[:, : self.spec.max_source_length]
        source = tf.cast(self.sources(characters), tf.int32).to_tensor(
            PAD_ID, shape=[None, self.spec.max_source_length]
        )
        ids = beam_decode(
            self.model, source, self.spec.max_target_length + 1, beam_width, length_penalty
        )
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1), 0)
        keep = tf.logical_and(before_end, tf.not_equal(ids, PAD_ID))
        tokens = tf.ragged.boolean_mask(self.targets(tf.cast(ids, tf.int64)), keep)
        phonemes = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        return {"phonemes": tf.where(tf.equal(words, ""), "", phonemes)}


class UnrolledEncoder(tf.Module):
    """The exported `encode(source) -> value, keys, state_1..`: the model's encoder, unrolled
    over the source's static length (what TFLite converts without a loop), with the attention
    keys the decoder steps need.

    Each direction is unrolled by `_unrolled_direction`, the backward one as a forward pass
    over every row's characters reversed in place (padding stays at the end), its outputs
    reversed back. Keras 3.15's own unrolled backward pass over a masked, right-padded sequence
    returns other outputs at the real positions than its loop does (measured: up to 0.99 apart
    on the test model, though the final states agree).

    Args:
        model: Seq2Seq. The model; the unrolled encoder uses its weights.
        state_names: sequence of str. Output names of the decoder's initial states.
    """

    def __init__(self, model: Seq2Seq, state_names: Sequence[str]):
        super().__init__(name="unrolled_encoder")
        self.model = model
        self.state_names = list(state_names)

    def __call__(self, source: tf.Tensor) -> dict[str, tf.Tensor]:
        if source.shape[1] is None:
            raise ValueError("UnrolledEncoder needs a source of static length")
        mask = tf.not_equal(source, PAD_ID)  # (batch, time)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1, keepdims=True)  # (batch, 1)
        positions = tf.range(tf.shape(source)[1])[None]  # (1, time)
        # Each row's characters in reverse order, padding in place: its own inverse.
        reverse = tf.where(positions < lengths, lengths - 1 - positions, positions)
        x = self.model.encoder.embedding(source)
        for layer in self.model.encoder.recurrences:
            forward, forward_states = _unrolled_direction(layer.forward_layer.cell, x, mask)
            backward, backward_states = _unrolled_direction(
                layer.backward_layer.cell, tf.gather(x, reverse, batch_dims=1), mask
            )
            x = tf.concat([forward, tf.gather(backward, reverse, batch_dims=1)], axis=-1)
        states = [
            tf.concat([f, b], axis=-1) for f, b in zip(forward_states, backward_states, strict=True)
        ]
        keys = self.model.decoder.attention_layer.project_keys(x)
        return {"value": x, "keys": keys, **dict(zip(self.state_names, states, strict=True))}


def _unrolled_direction(cell: keras.layers.Layer, x: tf.Tensor, mask: tf.Tensor) -> tuple:
    """A Keras `GRUCell` (`reset_after`, its default) or `LSTMCell` run forward over `x`
    `(batch, time, features)` from zero states, unrolled: `(outputs, final states)`.

    The input projection of every step is one matmul before the loop. TFLite's int8 stores a
    matmul's fused bias once per use, scaled by that use's input, and Keras' own unrolled cell
    projected each step's input with its own: for the three-layer encoder the int8 file went
    from 5.64 to 5.26 MB (0.305x to 0.287x the float32 file). The recurrent matmuls keep their
    bias: at the first step, from zero states, a bias-free one is all zeros, a range with which
    XNNPACK failed to prepare the int8 graph. Masked steps keep the previous state, as Keras
    does.
    """
    gru = isinstance(cell, keras.layers.GRUCell)
    if gru and not cell.reset_after:
        raise ValueError("only a GRU with reset_after=True is supported")
    units, features, batch = cell.units, x.shape[-1], tf.shape(x)[0]
    gate = cell.recurrent_activation
    # A GRU has an input and a recurrent bias, an LSTM one bias (here on the recurrent side).
    input_bias, recurrent_bias = (cell.bias[0], cell.bias[1]) if gru else (0.0, cell.bias)
    # A 2-D matmul plus bias: TFLite makes it one FULLY_CONNECTED with the bias fused.
    projected = tf.matmul(tf.reshape(x, [-1, features]), cell.kernel) + input_bias
    projected = tf.reshape(projected, [batch, x.shape[1], projected.shape[-1]])
    states = [tf.zeros([batch, units], x.dtype) for _ in range(1 if gru else 2)]
    outputs = []
    # Per-step tensors by unstacking and splitting, as Keras' own unrolled cell has them.
    for x_t, mask_t in zip(tf.unstack(projected, axis=1), tf.unstack(mask, axis=1), strict=True):
        inner = tf.matmul(states[0], cell.recurrent_kernel) + recurrent_bias
        if gru:
            x_z, x_r, x_h = tf.split(x_t, 3, axis=-1)
            inner_z, inner_r, inner_h = tf.split(inner, 3, axis=-1)
            z, r = gate(x_z + inner_z), gate(x_r + inner_r)
            new_states = [z * states[0] + (1 - z) * cell.activation(x_h + r * inner_h)]
        else:
            i, f, g, o = tf.split(x_t + inner, 4, axis=-1)
            carry = gate(f) * states[1] + gate(i) * cell.activation(g)
            new_states = [gate(o) * cell.activation(carry), carry]
        states = [
            tf.where(mask_t[:, None], new, old) for new, old in zip(new_states, states, strict=True)
        ]
        outputs.append(states[0])
    return tf.stack(outputs, axis=1), states
