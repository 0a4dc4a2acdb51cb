"""Position information for a Transformer: the fixed sinusoids or learned embeddings.

Both layers return the positions of their input's time steps, `(batch, time, dim)` like the
input, for the caller to add to the token embeddings; `start_index` shifts them for incremental
decoding (a token decoded at position 7 gets position 7's encoding).

    >>> tokens = keras.layers.Embedding(100, 32)(ids)  # (batch, time, 32)
    >>> x = tokens + SinusoidalPositionEncoding()(tokens)
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """The fixed encoding of Vaswani et al. (2017): no weights, any length.

    `PE(pos, 2i) = sin(pos / 10000^(2i/dim))`, `PE(pos, 2i+1) = cos(pos / 10000^(2i/dim))`.

    Args:
        max_wavelength: float. The longest wavelength, `2π` times the base. Defaults to 10000.

    Call arguments:
        inputs: tensor `(batch, time, dim)`; only its shape is used.
        start_index: int or int tensor. Position of the first time step. Defaults to 0.
    """

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        time, dim = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(time) + start_index, self.compute_dtype)  # (time,)
        features = ops.arange(dim)
        # Features 2i and 2i + 1 share the frequency 1 / max_wavelength^(2i / dim).
        exponents = ops.cast(features - features % 2, self.compute_dtype) / ops.cast(
            dim, self.compute_dtype
        )
        frequencies = ops.power(ops.cast(self.max_wavelength, self.compute_dtype), -exponents)
        angles = ops.expand_dims(positions, 1) * ops.expand_dims(frequencies, 0)  # (time, dim)
        encoding = ops.where(features % 2 == 0, ops.sin(angles), ops.cos(angles))
        return ops.broadcast_to(encoding, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class PositionEmbedding(keras.layers.Layer):
    """A learned vector per position, up to `max_length` positions.

    Args:
        max_length: int. Number of positions with a vector (the longest input).
        initializer: str or initializer. Defaults to `"glorot_uniform"`.

    Call arguments:
        inputs: tensor `(batch, time, dim)`; only its shape is used.
        start_index: int or int tensor. Position of the first time step. Defaults to 0.
    """

    def __init__(self, max_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_length, input_shape[-1]),
            initializer=self.initializer,
            name="embeddings",
        )

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        # A gather, not a slice: XLA compiles a slice's start as a constant, so a slice at a
        # tensor `start_index` would be recompiled for every position of a cached decode.
        positions = ops.take(self.embeddings, ops.arange(shape[-2]) + start_index, axis=0)
        return ops.broadcast_to(ops.cast(positions, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_length": self.max_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
