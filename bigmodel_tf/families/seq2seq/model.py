"""Encoder-decoder with attention (a subclassed `keras.Model`), e.g. letters to phonemes.

`Seq2SeqEncoder` reads the source with bidirectional GRUs or LSTMs; `Seq2SeqDecoder` runs a
GRU/LSTM over the (teacher-forced) target, attends from each of its states over the encoder
states (Bahdanau or Luong scores, `seq2seq.attention`) and predicts the next token from
the state and its context (Luong et al.'s attentional hidden state). The decoder starts from the
encoder's final forward and backward states, so it has twice the encoder's units.

Attending after the recurrent step, not before it, keeps training one RNN pass over the whole
target plus one batched attention, instead of a Python-level loop of steps; `Seq2Seq.step`
advances one token for decoding (`seq2seq.decoding`).

    >>> model = Seq2Seq(source_vocabulary_size=30, target_vocabulary_size=73, units=64)
    >>> model((np.ones((2, 7), "int32"), np.ones((2, 5), "int32"))).shape  # next-token logits
    (2, 5, 73)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import keras
from keras import ops

from bigmodel_tf.config import option
from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.seq2seq.attention import BahdanauAttention, LuongAttention


@dataclass
class Seq2SeqConfig:
    """Hyper-parameters of the encoder-decoder, its data limits and its decoding defaults."""

    # 27 letters and ~70 phonemes need few dimensions.
    embedding_dim: int = option(64, min=1, max=4096)
    # Per encoder direction; the decoder has 2x (it starts from both directions' final states).
    units: int = option(256, min=1, max=8192)
    # Stacked bidirectional layers; the last one's final states start the decoder. Three
    # decode best within the 60-minute budget (docs/results.md: 1 layer 6.46%/27.0%, 2 6.19%/26.2%).
    encoder_layers: int = option(3, min=1, max=8)
    rnn: str = option("gru", choices=("gru", "lstm"))
    attention: str = option("bahdanau", choices=("bahdanau", "luong"))
    # Bahdanau's score space; Luong's compares in the decoder's state space.
    attention_units: int = option(128, min=1, max=8192)
    # On the encoder's outputs and the decoder's attentional state.
    dropout: float = option(0.2, min=0.0, max=0.95)
    # Share of each target's probability the loss spreads over the vocabulary while training:
    # 0.1 (with a half-epoch warm-up) took the 3-layer run from 6.00%/25.6% to 5.88%/25.1%.
    label_smoothing: float = option(0.1, min=0.0, max=0.95)
    # Targets keep ARPAbet stress digits (AH0, EY1); false strips them (the published PER/WER
    # figures are on stress-free phonemes, which the metrics also report for stress models).
    stress: bool = option(True)
    # CMUdict's longest word has 28 letters and its longest pronunciation 28 phonemes.
    max_source_length: int = option(32, min=1, max=1000)
    max_target_length: int = option(32, min=1, max=1000)
    # Decoding: beam width of the reported beam metrics and `transduce --beam` by default.
    beam_width: int = option(5, min=1, max=64)
    # Length normalisation of the beam's final choice, ((5 + length) / 6) ** alpha (GNMT).
    length_penalty: float = option(1.0, min=0.0, max=10.0)


PRESETS: dict[str, dict] = {
    # docs/results.md's run: 12 epochs, PER 5.76% / WER 24.5% without stress, beam 5.
    "default": {},
    # Luong's multiplicative score: cheaper attention, otherwise the same network.
    "luong": {"attention": "luong"},
}


def _recurrent(kind: str, units: int, dtype, name: str, **kwargs) -> keras.layers.Layer:
    layer = keras.layers.GRU if kind == "gru" else keras.layers.LSTM
    return layer(units, dtype=dtype, name=name, **kwargs)


class _ArgumentsConfig:
    """Keras' `get_config` for a layer that keeps each named constructor argument as an
    attribute of the same name: the config is those arguments, what `from_config` passes back."""

    def get_config(self):
        parameters = inspect.signature(type(self).__init__).parameters.values()
        named = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD][1:]  # no self
        return {**super().get_config(), **{name: getattr(self, name) for name in named}}


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class Seq2SeqEncoder(_ArgumentsConfig, keras.layers.Layer):
    """Embedding → stacked bidirectional GRUs/LSTMs over `(batch, time)` source ids, padding
    (id 0) masked.

    Returns `(outputs, states)`: outputs `(batch, time, 2 * units)` and the last layer's final
    states (one for a GRU, `[h, c]` for an LSTM), each `(batch, 2 * units)`: forward then
    backward.

    Args:
        vocabulary_size: int. Number of source ids.
        embedding_dim: int. Size of the source embeddings.
        units: int. Units of each direction of each layer.
        num_layers: int. Stacked bidirectional layers. Defaults to 1.
        rnn: str. `"gru"` or `"lstm"`. Defaults to `"gru"`.
        dropout: float. Dropout on each layer's outputs while training. Defaults to 0.0.
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int,
        units: int,
        num_layers: int = 1,
        rnn: str = "gru",
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.rnn = rnn
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, dtype=self.dtype_policy, name="embedding"
        )
        self.recurrences = [
            keras.layers.Bidirectional(
                _recurrent(
                    rnn,
                    units,
                    self.dtype_policy,
                    f"{rnn}_{layer + 1}",
                    return_sequences=True,
                    return_state=layer == num_layers - 1,
                ),
                dtype=self.dtype_policy,
                name=f"bidirectional_{layer + 1}",
            )
            for layer in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, source_shape):
        self.embedding.build(source_shape)
        features = self.embedding_dim
        for recurrence in self.recurrences:
            recurrence.build((*source_shape, features))
            features = 2 * self.units

    def call(self, source, training=None):
        mask = ops.not_equal(source, PAD_ID)  # (batch, time)
        x = self.embedding(source)  # (batch, time, embedding_dim)
        for recurrence in self.recurrences[:-1]:
            x = self.dropout_layer(recurrence(x, mask=mask, training=training), training=training)
        x, *states = self.recurrences[-1](x, mask=mask, training=training)
        half = len(states) // 2  # forward states, then backward ones
        states = [
            ops.concatenate([forward, backward], axis=-1)
            for forward, backward in zip(states[:half], states[half:], strict=True)
        ]
        return self.dropout_layer(x, training=training), states  # (batch, time, 2 * units)


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class Seq2SeqDecoder(_ArgumentsConfig, keras.layers.Layer):
    """Embedding → GRU/LSTM → attention over the encoder → tanh(W [state; context]) → logits.

    `call(tokens, value, states, source_mask=None)` runs teacher-forced target ids
    `(batch, time)` from the encoder's final `states` and returns `(logits, weights)`:
    `(batch, time, vocab)` float32 logits and `(batch, time, source_time)` attention weights.
    `step()` advances one token.

    Args:
        vocabulary_size: int. Number of target ids.
        embedding_dim: int. Size of the target embeddings.
        units: int. Units of the recurrence (the encoder's `2 * units`).
        rnn: str. `"gru"` or `"lstm"`. Defaults to `"gru"`.
        attention: str. `"bahdanau"` (additive) or `"luong"` (multiplicative). Defaults to
            `"bahdanau"`.
        attention_units: int. Bahdanau's score space (unused by Luong). Defaults to 128.
        dropout: float. Dropout on the attentional state while training. Defaults to 0.0.
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int,
        units: int,
        rnn: str = "gru",
        attention: str = "bahdanau",
        attention_units: int = 128,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.rnn = rnn
        self.attention = attention
        self.attention_units = attention_units
        self.dropout = dropout
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, dtype=policy, name="embedding"
        )
        self.recurrence = _recurrent(
            rnn, units, policy, rnn, return_sequences=True, return_state=True
        )
        self.attention_layer = (
            BahdanauAttention(attention_units, dtype=policy, name="attention")
            if attention == "bahdanau"
            else LuongAttention(dtype=policy, name="attention")
        )
        self.combine = keras.layers.Dense(units, activation="tanh", dtype=policy, name="combine")
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy, name="dropout")
        # float32 logits keep the softmax and the loss accurate under mixed precision.
        self.head = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def build(self, tokens_shape, value_shape, states_shape=None, source_mask_shape=None):
        self.embedding.build(tokens_shape)
        self.recurrence.build((*tokens_shape, self.embedding_dim))
        self.attention_layer.build((*tokens_shape, self.units), value_shape)
        self.combine.build((*tokens_shape, self.units + value_shape[-1]))
        self.head.build((*tokens_shape, self.units))

    def call(self, tokens, value, states, source_mask=None, training=None):
        x = self.embedding(tokens)  # (batch, time, embedding_dim)
        x, *_ = self.recurrence(x, initial_state=states, training=training)  # (b, time, units)
        return self._predict(x, value, source_mask, None, training)

    def step(self, token, states: list, value, keys, source_mask) -> tuple:
        """Advances one token (inference): `(batch,)` ids, the recurrence's states and the
        encoder's `value`, `keys` (`project_keys(value)`) and `source_mask` → `(batch, vocab)`
        logits, the new states and `(batch, source_time)` attention weights."""
        x = self.embedding(token)  # (batch, embedding_dim)
        x, states = self.recurrence.cell(x, list(states))  # (batch, units)
        logits, weights = self._predict(x[:, None], value, source_mask, keys, None)
        return logits[:, 0], states, weights[:, 0]

    def _predict(self, x, value, source_mask, keys, training):
        context, weights = self.attention_layer(x, value, source_mask, keys=keys)
        hidden = self.combine(ops.concatenate([x, context], axis=-1))  # (batch, time, units)
        return self.head(self.dropout_layer(hidden, training=training)), weights


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class Seq2Seq(_ArgumentsConfig, keras.Model):
    """Encoder-decoder with attention, trained by teacher forcing.

    `call((source, decoder_inputs))` maps `(batch, source_time)` source ids and
    `(batch, target_time)` decoder inputs (the start id, then the target) to
    `(batch, target_time, target_vocab)` next-token logits. Id 0 is padding on both sides.

    Args:
        source_vocabulary_size: int. Number of source ids.
        target_vocabulary_size: int. Number of target ids.
        embedding_dim: int. Size of the source and target embeddings. Defaults to 64.
        units: int. Units of each encoder direction; the decoder has twice as many.
            Defaults to 256.
        encoder_layers: int. Stacked bidirectional encoder layers. Defaults to 1.
        rnn: str. `"gru"` or `"lstm"`, both sides. Defaults to `"gru"`.
        attention: str. `"bahdanau"` or `"luong"`. Defaults to `"bahdanau"`.
        attention_units: int. Bahdanau's score space. Defaults to 128.
        dropout: float. Dropout while training. Defaults to 0.0.

    Example:
    ```python
    model = Seq2Seq(30, 73, units=64)
    value, states, keys, mask = model.encode(source)  # once per source
    logits, states, weights = model.step(token, states, value, keys, mask)  # once per token
    ```
    """

    def __init__(
        self,
        source_vocabulary_size: int,
        target_vocabulary_size: int,
        embedding_dim: int = 64,
        units: int = 256,
        encoder_layers: int = 1,
        rnn: str = "gru",
        attention: str = "bahdanau",
        attention_units: int = 128,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.encoder_layers = encoder_layers
        self.rnn = rnn
        self.attention = attention
        self.attention_units = attention_units
        self.dropout = dropout
        self.encoder = Seq2SeqEncoder(
            source_vocabulary_size,
            embedding_dim,
            units,
            encoder_layers,
            rnn,
            dropout,
            dtype=self.dtype_policy,
            name="encoder",
        )
        self.decoder = Seq2SeqDecoder(
            target_vocabulary_size,
            embedding_dim,
            2 * units,
            rnn,
            attention,
            attention_units,
            dropout,
            dtype=self.dtype_policy,
            name="decoder",
        )

    def build(self, input_shape):
        source_shape, target_shape = input_shape
        self.encoder.build(tuple(source_shape))
        self.decoder.build(tuple(target_shape), (*source_shape, 2 * self.units))

    def call(self, inputs, training=None):
        logits, _ = self.teacher_forced(*inputs, training=training)
        return logits

    def teacher_forced(self, source, decoder_inputs, training=None) -> tuple:
        """`(logits, attention weights)` of a teacher-forced pass; weights are
        `(batch, target_time, source_time)`, zero on source padding."""
        value, states = self.encoder(source, training=training)
        mask = ops.not_equal(source, PAD_ID)
        return self.decoder(decoder_inputs, value, states, mask, training=training)

    def encode(self, source) -> tuple:
        """What decoding needs of a source, computed once: `(value, states, keys, mask)` —
        encoder outputs, the decoder's initial states, the attention keys and the padding
        mask."""
        value, states = self.encoder(source)
        keys = self.decoder.attention_layer.project_keys(value)
        return value, states, keys, ops.not_equal(source, PAD_ID)

    def step(self, token, states, value, keys, mask) -> tuple:
        """`Seq2SeqDecoder.step`: one token → `(logits, states, weights)`."""
        return self.decoder.step(token, states, value, keys, mask)
