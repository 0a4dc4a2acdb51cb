"""Normalization layers that train through fused kernels: batch norm through TensorFlow's
`FusedBatchNormV3`, layer norm through one XLA-compiled function."""

from __future__ import annotations

import keras
import tensorflow as tf

# The input dtypes the fused kernel takes; its statistics and parameters are float32 for each.
_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` over `(batch, height, width, channels)` images, trained
    by one fused op: the same weights, arguments and inference path.

    Keras 3 computes batch norm in training from separate ops: a cast of the whole activation to
    float32, two reductions for the moments, the normalisation, a cast back, and as many again
    for the gradient, each a pass over memory. In a small convolutional network that costs more
    than the convolutions, most of all under `mixed_bfloat16`, where the casts are extra and the
    convolutions cheap. TensorFlow's `FusedBatchNormV3` (oneDNN on x86) normalises a bf16 or
    float32 batch and updates the moving averages in one op, with a fused gradient.

    Everything else (inference, other ranks or axes, masks, renorm, no `center` or `scale`,
    synchronized statistics) is Keras' own code. One difference in training: the kernel updates
    the moving variance with the unbiased batch variance (n / (n - 1) larger, n = batch x
    height x width), Keras with the biased one.

        >>> layer = FusedBatchNormalization()
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 3)).astype("float32")
        >>> y = layer(x, training=True)
        >>> bool(abs(float(np.mean(y))) < 1e-3), bool(abs(float(np.std(y)) - 1.0) < 1e-2)
        (True, True)
    """

    def _fused(self, inputs, mask) -> bool:
        return (
            len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and mask is None
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=self.gamma.value,
            offset=self.beta.value,
            mean=self.moving_mean.value,
            variance=self.moving_variance.value,
            epsilon=self.epsilon,
            # With the moving averages passed in and this factor, the kernel returns them
            # updated: moving * momentum + batch * (1 - momentum), as Keras updates them.
            exponential_avg_factor=1.0 - self.momentum,
            data_format="NHWC",
            is_training=True,
        )
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return keras.ops.cast(outputs, self.compute_dtype)


@tf.function(jit_compile=True)
def _layer_norm(x, gamma, beta, epsilon):
    """Layer norm over the last axis, computed in float32 and returned in `x`'s dtype; XLA makes
    one loop of it, and one of its gradient."""
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
    y = (x32 - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta
    return tf.cast(y, x.dtype)


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class FusedLayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` whose training pass is one XLA-compiled function: the
    same weights, arguments and inference path.

    Keras computes layer norm from separate ops (a cast to float32, the moments, the
    normalisation, a cast back) and their gradient from as many again, each a pass over memory,
    in bf16 under `mixed_bfloat16`; compiled, they are one pass each way. The matmuls around it
    stay TensorFlow's (oneDNN: AMX in bf16), which a model compiled whole by XLA on a CPU loses.

    Inference, other axes, RMS scaling and no `center` or `scale` are Keras' own code: exported
    graphs hold no compiled function.

        >>> layer = FusedLayerNormalization()
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 8)).astype("float32")
        >>> np.allclose(layer(x, training=True), layer(x), atol=1e-5)
        True
    """

    def build(self, input_shape):
        super().build(input_shape)
        rank = len(input_shape)
        self._fused = (
            [axis % rank for axis in self.axis] == [rank - 1]
            and self.center
            and self.scale
            and not self.rms_scaling
        )

    def call(self, inputs, training=None):
        if not (training and self._fused):
            return super().call(inputs)
        return _layer_norm(inputs, self.gamma.value, self.beta.value, self.epsilon)
