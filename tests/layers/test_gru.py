"""Our GRU against Keras' own: same outputs and gradients, same weights, its fallbacks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.layers import GRU
from bigmodel_tf.training.precision import dtype_policy

BATCH, STEPS, FEATURES, UNITS = 3, 7, 5, 6


def twins(**kwargs) -> tuple[keras.layers.GRU, GRU]:
    """Keras' GRU and ours with the same random (not initial: biases non-zero) weights."""
    rng = np.random.default_rng(0)
    layers = keras.layers.GRU(UNITS, **kwargs), GRU(UNITS, **kwargs)
    for layer in layers:
        layer.build((None, None, FEATURES))
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in layers[0].weights]
    for layer in layers:
        layer.set_weights(weights)
    return layers


def outputs_and_gradients(layer, inputs, state, **kwargs):
    with tf.GradientTape() as tape:
        tape.watch([inputs, state])
        sequence, last = layer(inputs, initial_state=state, **kwargs)
        # Weighs every output differently, so that a gradient routed to the wrong step shows.
        loss = tf.reduce_sum(sequence * np.arange(1, UNITS + 1)) + tf.reduce_sum(last**2)
    gradients = tape.gradient(loss, [inputs, state, *layer.trainable_weights])
    return [sequence, last, *gradients]


@pytest.mark.parametrize("compiled", [False, True])
def test_outputs_and_every_gradient_equal_keras_gru(compiled):
    ours, theirs = twins(return_sequences=True, return_state=True)[::-1]
    assert ours._fast_loop_applies(mask=None, training=True)  # not Keras' loop, compared to it
    rng = np.random.default_rng(1)
    inputs = tf.constant(rng.normal(size=(BATCH, STEPS, FEATURES)), tf.float32)
    state = tf.constant(rng.normal(size=(BATCH, UNITS)), tf.float32)
    run = outputs_and_gradients
    if compiled:  # in a graph and under XLA, as training runs it
        run = tf.function(outputs_and_gradients, jit_compile=True, autograph=False)
    names = ["sequence", "last state", "inputs", "state", "kernel", "recurrent", "bias"]
    expected = outputs_and_gradients(theirs, inputs, state)
    for name, a, b in zip(names, run(ours, inputs, state), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_mixed_bfloat16_keeps_the_state_float32_and_stays_close():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(BATCH, 50, FEATURES)).astype("float32")
    _, reference = twins(return_sequences=True)
    with dtype_policy("mixed_bfloat16"):
        layers = twins(return_sequences=True)
    outputs = [np.asarray(layer(inputs), np.float32) for layer in layers]
    expected = np.asarray(reference(inputs))
    errors = [np.abs(output - expected).max() for output in outputs]
    assert errors[1] < 0.05  # bf16 matmuls over 50 steps: within bf16's rounding
    assert errors[1] <= errors[0] * 1.5  # no worse than Keras' own bf16 GRU


def test_masks_and_backward_loops_fall_back_to_keras_loop():
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    mask = np.arange(STEPS)[None, :] < np.array([[7], [4], [2]])
    for kwargs, call in (({}, {"mask": mask}), ({"go_backwards": True}, {})):
        theirs, ours = twins(return_sequences=True, **kwargs)
        assert not ours._fast_loop_applies(mask=call.get("mask"), training=False)
        np.testing.assert_allclose(ours(inputs, **call), theirs(inputs, **call), atol=1e-6)


def test_saves_and_loads_in_safe_mode(tmp_path):
    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, GRU(UNITS, name="gru")(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.get_layer("gru")) is GRU
    x = np.random.default_rng(4).normal(size=(2, STEPS, FEATURES)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))
