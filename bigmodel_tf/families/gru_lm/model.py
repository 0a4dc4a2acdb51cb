"""Character-level GRU language model (a subclassed `keras.Model`).

`GruLanguageModel` maps token ids to next-token logits; `step()` advances one token from carried
GRU states, which is what `families.language_model.generation.generate()` samples from.

    >>> model = GruLanguageModel(vocabulary_size=70, embedding_dim=32, rnn_units=64)
    >>> model(np.zeros((2, 10), "int32")).shape  # next-token logits
    (2, 10, 70)
    >>> generate(model, [0, 5, 9], length=20, temperature=0.8, top_k=10, seed=3).shape
    TensorShape([20])
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from bigmodel_tf.config import option
from bigmodel_tf.layers.gru import GRU


@dataclass
class GruLmConfig:
    """Hyper-parameters of the GRU language model; the vocabulary size comes from the data."""

    # ~65 distinct characters need few dimensions; the embedding only feeds the first GRU.
    embedding_dim: int = option(128, min=1, max=4096)
    # 512 units x 2 layers (~2.6M weights): a guess at what 30 min on 2 CPU cores trains best.
    rnn_units: int = option(512, min=1, max=8192)
    # A second layer adds depth for the same cost as widening one layer by ~1.4x; to be tuned.
    num_layers: int = option(2, min=1, max=8)
    # Light: ~3 epochs over ~1M characters barely overfit a 2.6M-weight model.
    dropout: float = option(0.1, min=0.0, max=0.95)
    # Training window (truncated backpropagation through time): the documents' 100 characters.
    sequence_length: int = option(100, min=2, max=10_000)
    # Training windows from random starts instead of fixed tiles (`language_model.data.
    # random_windows`); off: the GRU's recipe was measured on fixed windows.
    random_windows: bool = option(False)


PRESETS: dict[str, dict] = {
    # Our guess at the best held-out loss (target <= 1.60 nats/char) in ~30 min on 2 CPU cores;
    # still to be tuned by measurement.
    "default": {},
    # The documents' model: Embedding(256) -> GRU(1024) -> Dense(vocab), 100-character windows.
    "seed": {
        "embedding_dim": 256,
        "rnn_units": 1024,
        "num_layers": 1,
        "dropout": 0.0,
        "sequence_length": 100,
    },
}


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class GruLanguageModel(keras.Model):
    """Next-token language model: Embedding -> stacked GRUs -> Dense logits.

    `call()` runs whole sequences (training, prompts); `step()` advances one token from carried
    states (generation, on-device loops). There is no `unroll` option: the single-step path has
    no loop and converts to TFLite as it is, so the sequence path can stay a dynamic-length loop.

    Args:
        vocabulary_size: int. Number of token ids; the logits have one entry per id.
        embedding_dim: int. Size of the token embeddings.
        rnn_units: int. Units (state size) of each GRU layer.
        num_layers: int. Number of stacked GRU layers. Defaults to 1.
        dropout: float. Dropout rate on each GRU layer's outputs while training. Defaults to 0.0.

    Example:
    ```python
    model = GruLanguageModel(vocabulary_size=70, embedding_dim=32, rnn_units=64, num_layers=2)
    tokens = np.zeros((2, 10), "int32")
    logits, states = model(tokens, return_state=True)  # (2, 10, 70), 2 x (2, 64)
    logits, states = model.step(tokens[:, 0], states)  # (2, 70): logits after 11 tokens
    ```
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int,
        rnn_units: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.rnn_units = rnn_units
        self.num_layers = num_layers
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, dtype=self.dtype_policy, name="embedding"
        )
        # Keras' GRU with a faster training loop (same weights); reset_after=True (the default)
        # keeps the weights in cuDNN's layout.
        self.grus = [
            GRU(
                rnn_units,
                return_sequences=True,
                return_state=True,
                dtype=self.dtype_policy,
                name=f"gru_{layer + 1}",
            )
            for layer in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")
        # float32 logits keep the softmax and the loss accurate under mixed precision.
        self.head = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def build(self, input_shape):
        self.embedding.build(input_shape)
        features = self.embedding_dim
        for gru in self.grus:
            gru.build((*input_shape, features))
            features = self.rnn_units
        self.head.build((*input_shape, features))

    def call(self, tokens, states=None, return_state=False, training=None):
        x = self.embedding(tokens)  # (batch, time, embedding_dim)
        states = [None] * self.num_layers if states is None else states
        new_states = []
        for gru, state in zip(self.grus, states, strict=True):
            x, state = gru(x, initial_state=state, training=training)  # (batch, time, units)
            x = self.dropout_layer(x, training=training)
            new_states.append(state)  # (batch, units)
        logits = self.head(x)  # (batch, time, vocab)
        return (logits, new_states) if return_state else logits

    def step(self, token, states: list) -> tuple:
        """Advances one token: `(batch,)` or `(batch, 1)` ids and per-layer `(batch, units)`
        states -> `(batch, vocab)` logits and the new states. Inference only (no dropout); it
        calls the GRU cells directly, so it has no loop and the prefix is never re-run.
        """
        x = self.embedding(ops.reshape(token, (-1,)))  # (batch, embedding_dim)
        new_states = []
        for gru, state in zip(self.grus, states, strict=True):
            x, state = gru.cell(x, state)  # (batch, units): a GRU's output is its state
            new_states.append(state)
        return self.head(x), new_states  # (batch, vocab)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "rnn_units": self.rnn_units,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
            }
        )
        return config
