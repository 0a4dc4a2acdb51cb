"""Dense layers over `(..., features)` inputs, written so that exported graphs stay small."""

from __future__ import annotations

import keras
from keras import ops


def dense_over_last_axis(layer: keras.layers.Dense, x):
    """`layer(x)` with every axis but the last folded into one first: the same numbers.

    Keras' TensorFlow backend runs a Dense layer on a rank-3 input as `tf.tensordot`, which
    computes its reshapes from the input's shape at run time. Where the batch is unknown, as in
    an exported signature, TFLite keeps those computations: eight shape ops around every
    matmul, more ops than the model's own in a one-token generation step. Folding the axes with
    `-1` for the batch and the static sizes for the rest leaves two constant-shape reshapes.
    """
    if len(x.shape) <= 2:
        return layer(x)
    inner = tuple(ops.shape(x)[1:-1])  # static sizes where known
    y = layer(ops.reshape(x, (-1, x.shape[-1])))
    return ops.reshape(y, (-1, *inner, y.shape[-1]))
