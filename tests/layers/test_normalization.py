import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.layers.normalization import FusedBatchNormalization, FusedLayerNormalization


def pair(momentum=0.9, shape=(4, 5, 6, 3)):
    """Keras' layer and ours with the same non-trivial weights."""
    rng = np.random.default_rng(0)
    keras_bn = keras.layers.BatchNormalization(momentum=momentum)
    fused = FusedBatchNormalization(momentum=momentum)
    keras_bn.build(shape)
    fused.build(shape)
    channels = shape[-1]
    weights = [
        rng.normal(1.0, 0.2, channels),  # gamma
        rng.normal(0.0, 0.2, channels),  # beta
        rng.normal(0.5, 0.2, channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ]
    keras_bn.set_weights(weights)
    fused.set_weights(weights)
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    return keras_bn, fused, x


def training_pass(layer, x):
    """The layer's training output and the gradients of a loss whose gradient is not constant,
    with respect to `x`, gamma and beta."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.cos(y))
    return y, tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])


def test_training_step_matches_keras():
    keras_bn, fused, x = pair()
    initial_variance = keras_bn.moving_variance.numpy()
    x = tf.constant(x)
    results = []
    for layer in (keras_bn, fused):
        y, grads = training_pass(layer, x)
        results.append((y, grads, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y_k, grads_k, mean_k, var_k), (y_f, grads_f, mean_f, var_f) = results
    np.testing.assert_allclose(y_f, y_k, rtol=1e-4, atol=1e-4)
    for g_f, g_k in zip(grads_f, grads_k, strict=True):
        np.testing.assert_allclose(g_f, g_k, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(mean_f, mean_k, rtol=1e-5)
    # The kernel's moving variance takes the unbiased batch variance: n / (n - 1) of Keras'.
    n = x.shape[0] * x.shape[1] * x.shape[2]
    batch_variance = tf.math.reduce_variance(x, axis=(0, 1, 2)).numpy()
    np.testing.assert_allclose(var_k, 0.9 * initial_variance + 0.1 * batch_variance, rtol=1e-5)
    unbiased = batch_variance * n / (n - 1)
    np.testing.assert_allclose(var_f, 0.9 * initial_variance + 0.1 * unbiased, rtol=1e-5)


def test_inference_is_keras_own():
    keras_bn, fused, x = pair()
    np.testing.assert_array_equal(fused(x, training=False), keras_bn(x, training=False))


def test_bfloat16_batches_stay_bfloat16():
    _, fused, x = pair()
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    layer.build(x.shape)
    layer.set_weights(fused.get_weights())
    y = layer(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16
    assert layer.moving_mean.dtype == "float32"
    np.testing.assert_allclose(
        tf.cast(y, tf.float32), fused(x, training=True), rtol=0.05, atol=0.05
    )


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5, 3)])
def test_other_ranks_take_keras_path(shape):
    keras_bn, fused, x = pair(shape=shape)
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, keras_bn.moving_variance, rtol=1e-6)


def test_saves_and_loads_safely(tmp_path):
    inputs = keras.Input((5, 6, 3))
    model = keras.Model(inputs, FusedBatchNormalization(momentum=0.8)(inputs))
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.layers[-1]
    assert isinstance(layer, FusedBatchNormalization) and layer.momentum == 0.8
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


def layer_norm_pair(shape=(3, 7, 16)):
    rng = np.random.default_rng(2)
    keras_ln, fused = keras.layers.LayerNormalization(), FusedLayerNormalization()
    for layer in (keras_ln, fused):
        layer.build(shape)
    weights = [rng.normal(1.0, 0.2, shape[-1]), rng.normal(0.0, 0.2, shape[-1])]
    keras_ln.set_weights(weights)
    fused.set_weights(weights)
    return keras_ln, fused, rng.normal(1.0, 2.0, shape).astype("float32")


def test_layer_norm_training_pass_matches_keras():
    keras_ln, fused, x = layer_norm_pair()
    x = tf.constant(x)
    (y_k, grads_k), (y_f, grads_f) = (training_pass(layer, x) for layer in (keras_ln, fused))
    np.testing.assert_allclose(y_f, y_k, rtol=1e-5, atol=1e-5)
    for g_f, g_k in zip(grads_f, grads_k, strict=True):
        np.testing.assert_allclose(g_f, g_k, rtol=1e-4, atol=1e-4)


def test_layer_norm_keeps_bfloat16_and_infers_as_keras():
    keras_ln, fused, x = layer_norm_pair()
    np.testing.assert_array_equal(fused(x), keras_ln(x))  # inference: Keras' own code
    layer = FusedLayerNormalization(dtype="mixed_bfloat16")
    layer.build(x.shape)
    layer.set_weights(fused.get_weights())
    y = layer(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y, tf.float32), keras_ln(x), rtol=0.05, atol=0.05)


def test_layer_norm_over_other_axes_takes_keras_path():
    x = np.random.default_rng(3).normal(size=(2, 3, 4)).astype("float32")
    fused, plain = (
        FusedLayerNormalization(axis=[1, 2]),
        keras.layers.LayerNormalization(axis=[1, 2]),
    )
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), rtol=1e-6)
    assert not fused._fused


def test_layer_norm_saves_and_loads_safely(tmp_path):
    _, layer, x = layer_norm_pair()
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "ln.keras")
    loaded = keras.saving.load_model(tmp_path / "ln.keras", safe_mode=True)
    assert isinstance(loaded.layers[-1], FusedLayerNormalization)
    np.testing.assert_array_equal(loaded(x), model(x))
