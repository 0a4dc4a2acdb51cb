"""Decoder-only Transformer language model with a key/value cache.

    >>> model = build_language_model(TransformerLmConfig(), vocabulary_size=70)
    >>> model(np.zeros((2, 10), "int32")).shape  # next-token logits
    (2, 10, 70)
    >>> generate(model, [0, 5, 9], length=20, temperature=0.8, seed=3).shape  # cached
    TensorShape([20])

The model reads at most `max_length` tokens (its training window). Generation keeps the keys
and values of the tokens in that window in a cache, so each new token costs one position's
work instead of a pass over the whole window. When the window is full, it slides: the last half
of it is re-read in one pass as positions 0.. of a fresh cache (absolute positions cannot simply
be shifted), so a token sees between half a window and a whole one of context, and the re-read
costs one pass per half window of tokens.
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


@dataclass
class TransformerLmConfig(BackboneConfig):
    """Hyper-parameters of the language model; the vocabulary comes from the data.

    Sized for ~30 minutes of training on 2 CPU cores: at equal steps 4 layers of 192 beat 4 of
    128 and 6 of 128 for ~1.25x the time of the first, and more width costs more time than it
    gains in that budget (docs/results.md).
    """

    num_layers: int = option(4, min=1, max=48)
    hidden_dim: int = option(192, min=1, max=8192)
    intermediate_dim: int = option(768, min=1, max=32768)
    # Off. The unseen plays' loss stays ~0.13 above the training plays' other passages with or
    # without it: that gap is the plays' difference, not overfitting a regulariser can close.
    # Dropout only costs steps in a fixed time (~1.15x a step on the branches alone, ~1.4x with
    # `attention_dropout`) and ends worse (docs/results.md).
    dropout: float = option(0.0, min=0.0, max=0.95)
    attention_dropout: bool = option(False)
    positions: str = option("learned", choices=("sinusoidal", "learned"))
    # Training window and context: the most characters a prediction can see. 128 rather than
    # 256 halves the attention's cost per character, buying more optimizer steps.
    sequence_length: int = option(128, min=2, max=8192)
    # Each training window cut from a random start (`language_model.data.random_windows`)
    # rather than from fixed tiles of the text, so no epoch repeats another's windows. Off:
    # it fit the training plays' other passages better and the unseen plays worse.
    random_windows: bool = option(False)
    # GPT-2's initialisation learns faster here than Keras' Glorot defaults; with it the
    # embeddings are not scaled by √hidden_dim (that would make them 14x the positions').
    init_std: float = option(0.02, min=0.0, max=1.0)
    scale_embeddings: bool = option(False)
    # The output layer reuses the token embeddings (transposed) plus a bias, as GPT-2 does.
    # Off: with ~100 characters it saves few weights and learned slower at equal steps.
    tie_embeddings: bool = option(False)


PRESETS: dict[str, dict] = {
    "default": {},
}


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class TransformerLanguageModel(keras.Model):
    """Next-token language model: a causal `TransformerBackbone`, then Dense logits.

    `call()` runs whole sequences (training, prompts), reading the last `max_length` tokens of
    longer ones; `step()` advances one token from a carried state, the cache, sliding it when
    it is full (see the module docstring). Together they are what
    `families.language_model.generation` samples from.

    Args:
        backbone: TransformerBackbone. A causal backbone.
        tie_embeddings: bool. Logits from the token embeddings (transposed) plus a bias
            instead of a Dense layer of their own. Defaults to `False`.

    Example:
    ```python
    model = TransformerLanguageModel(TransformerBackbone(70, 64, 2, 2, 32, 64, causal=True))
    tokens = np.zeros((2, 10), "int32")
    logits, state = model(tokens, return_state=True)  # (2, 10, 70), the cache of 10 tokens
    logits, state = model.step(tokens[:, 0], state)  # (2, 70): logits after 11 tokens
    ```
    """

    def __init__(self, backbone: TransformerBackbone, tie_embeddings: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not backbone.causal:
            raise ValueError(
                "a language model predicts from the past alone: give it a causal backbone"
            )
        self.backbone = backbone
        self.vocabulary_size = backbone.vocabulary_size
        self.max_length = backbone.max_length
        self.tie_embeddings = tie_embeddings
        # float32 logits keep the softmax and the loss accurate under mixed precision.
        self.head = None
        if not tie_embeddings:
            self.head = keras.layers.Dense(self.vocabulary_size, dtype="float32", name="logits")

    def build(self, input_shape):
        if not self.backbone.built:  # a deserialized backbone comes built
            self.backbone.build(input_shape)
        if self.head is None:
            self.logit_bias = self.add_weight(
                shape=(self.vocabulary_size,), initializer="zeros", name="logit_bias"
            )
        else:
            self.head.build((*input_shape, self.backbone.hidden_dim))

    def logits(self, features):
        """float32 next-token logits `(..., vocab)` of `(..., hidden_dim)` backbone features."""
        if self.head is not None:
            return self.head(features)
        embeddings = self.backbone.token_embedding.embeddings  # (vocab, hidden)
        features = ops.cast(features, "float32")
        return ops.matmul(features, ops.transpose(ops.cast(embeddings, "float32"))) + ops.cast(
            self.logit_bias, "float32"
        )

    def call(self, token_ids, return_state=False, training=None):
        token_ids = token_ids[:, -self.max_length :]  # (batch, time <= max_length)
        if not return_state:
            return self.logits(self.backbone(token_ids, training=training))
        logits, cache = self._read(token_ids)
        length = ops.convert_to_tensor(ops.shape(token_ids)[1], "int32")
        return logits, (cache, self._window(token_ids), length)

    def step(self, token, state: tuple) -> tuple:
        """Advances one token: `(batch,)` ids and the state `(cache, window, length)` ->
        `(batch, vocab)` logits and the new state. Inference only (no dropout).

        The state holds the cache of the window's tokens (see `TransformerBackbone`), the
        window's ids `(batch, max_length)` and how many of them there are (an int32 scalar).
        """
        cache, window, length = state
        token = ops.reshape(token, (-1, 1))  # (batch, 1)

        def next_position():
            logits, new_cache = self.cached_step(token, cache, length)
            return logits, new_cache, ops.slice_update(window, [0, length], token), length + 1

        def slide():
            # The last half window, the new token included, as the first positions of a fresh
            # cache; `window` is full here.
            kept = ops.concatenate([window[:, self.max_length // 2 + 1 :], token], axis=1)
            logits, new_cache = self._read(kept)
            length = ops.convert_to_tensor(ops.shape(kept)[1], "int32")
            return logits[:, -1], new_cache, self._window(kept), length

        logits, cache, window, length = ops.cond(length < self.max_length, next_position, slide)
        return logits, (cache, window, length)

    def cached_step(self, token, cache, position) -> tuple:
        """One token at `position` (< `max_length`), given the cache of the positions before it:
        `(batch,)` ids -> `(batch, vocab)` logits and the cache with the token's keys and values
        written at `position`. It never slides the window: what the exported `step` endpoint
        runs, where `step()` is what generation runs."""
        features, cache = self.backbone(
            ops.reshape(token, (-1, 1)), cache=cache, cache_index=position
        )
        return self.logits(features[:, 0]), cache

    def _read(self, token_ids):
        """Logits of `(batch, time)` ids and a fresh cache holding their keys and values."""
        cache = ops.zeros((ops.shape(token_ids)[0], *self.backbone.cache_shape), self.compute_dtype)
        features, cache = self.backbone(token_ids, cache=cache, cache_index=0)
        return self.logits(features), cache

    def _window(self, token_ids):
        """`(batch, time)` ids at the start of a `(batch, max_length)` window of zeros."""
        window = ops.zeros((ops.shape(token_ids)[0], self.max_length), "int32")
        return ops.slice_update(window, [0, 0], ops.cast(token_ids, "int32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "tie_embeddings": self.tie_embeddings,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = {**config, "backbone": keras.layers.deserialize(config["backbone"])}
        return cls(**config)


def build_language_model(
    config: TransformerLmConfig, vocabulary_size: int
) -> TransformerLanguageModel:
    """The language model `config` describes, built (weights created) for `vocabulary_size` ids."""
    model = TransformerLanguageModel(
        build_backbone(config, vocabulary_size, causal=True),
        tie_embeddings=config.tie_embeddings,
    )
    model.build((None, None))
    return model
