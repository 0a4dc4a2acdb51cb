"""`GRU`: Keras' GRU layer (same weights, config and results) with a faster sequence loop.

Keras' loop runs the GRU cell once per step, input projection included, and leaves the
backward pass to automatic differentiation of the loop. On a CPU both cost more than the
arithmetic needs. Here:

- the input projection `x @ W` of every step is one matmul before the loop;
- the loop's backward pass is written out: one matmul per step (`dG @ U^T`, which the next
  step needs) and the weight gradient `dU = H^T @ dG` as one matmul over all steps after it;
- under mixed precision the matmuls run in the compute dtype (bf16: AMX where the CPU has
  it) while the state and the gates stay float32, where Keras' cell rounds the state to bf16;
- the loop runs feature-major: a step's projections are `(3 units, batch)` and its state
  `(units, batch)`, so the gates are row blocks, which TensorFlow slices without copying
  (a `[:, :units]` column slice is a copy, several per step in each direction).

The cell (`layer.cell`) is Keras' own: `GruLanguageModel.step` and the exported single-step
graphs call it directly. Configurations this loop does not cover (masks, dropout inside the
cell, `go_backwards`, other activations, `reset_after=False`) run Keras' loop.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _forward(xs: tf.Tensor, h0: tf.Tensor, kernel_t: tf.Tensor, bias: tf.Tensor):
    """The recurrence over float32 input projections `xs` (time, 3 units, batch) from the state
    `h0` (units, batch), the recurrent kernel transposed (3 units, units) and the candidate's
    recurrent bias (units, 1): all states (time, units, batch), the last one and what the
    backward pass needs, per step."""
    units = h0.shape[0]
    steps = tf.shape(xs)[0]

    def arrays() -> tf.TensorArray:
        return tf.TensorArray(tf.float32, size=steps, element_shape=h0.shape)

    def body(t, h, states, updates, resets, news, candidates):
        inner = tf.cast(tf.matmul(kernel_t, tf.cast(h, kernel_t.dtype)), tf.float32)
        x = xs[t]
        update_reset = tf.sigmoid(x[: 2 * units] + inner[: 2 * units])
        z, r = update_reset[:units], update_reset[units:]
        n = inner[2 * units :] + bias  # what the reset gate scales
        candidate = tf.tanh(x[2 * units :] + r * n)
        h = candidate + z * (h - candidate)  # z * h + (1 - z) * candidate
        return (
            t + 1,
            h,
            states.write(t, h),
            updates.write(t, z),
            resets.write(t, r),
            news.write(t, n),
            candidates.write(t, candidate),
        )

    loop = (tf.constant(0), h0, arrays(), arrays(), arrays(), arrays(), arrays())
    _, last, *saved = tf.while_loop(lambda t, *_: t < steps, body, loop)
    return last, [array.stack() for array in saved]


@tf.custom_gradient
def _recurrence(xs: tf.Tensor, h0: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor):
    """`(states, last state)` of the GRU recurrence (see `_forward`; `kernel` in Keras' layout,
    (units, 3 units)), with its gradient computed step by step backwards and the recurrent
    kernel's in one matmul."""
    last, (states, updates, resets, news, candidates) = _forward(xs, h0, tf.transpose(kernel), bias)
    units, batch = h0.shape

    def gradient(d_states, d_last):
        steps = tf.shape(xs)[0]
        previous = tf.concat([h0[None], states[:-1]], 0)  # (time, units, batch)
        d_states = tf.zeros_like(states) if d_states is None else d_states
        d_last = tf.zeros_like(h0) if d_last is None else d_last
        d_inner = tf.TensorArray(tf.float32, size=steps, element_shape=(3 * units, batch))
        d_candidate_in = tf.TensorArray(tf.float32, size=steps, element_shape=h0.shape)

        def body(t, dh, d_inner, d_candidate_in):
            dh = dh + d_states[t]
            z, r, n, candidate = updates[t], resets[t], news[t], candidates[t]
            dz = dh * (previous[t] - candidate)
            da = dh * (1.0 - z) * (1.0 - candidate * candidate)  # through tanh
            dn = da * r
            dr = da * n
            dg = tf.concat([dz * z * (1.0 - z), dr * r * (1.0 - r), dn], 0)  # through sigmoids
            through_kernel = tf.matmul(kernel, tf.cast(dg, kernel.dtype))
            dh = dh * z + tf.cast(through_kernel, tf.float32)
            return t - 1, dh, d_inner.write(t, dg), d_candidate_in.write(t, da)

        loop = (steps - 1, d_last, d_inner, d_candidate_in)
        _, dh0, d_inner, d_candidate_in = tf.while_loop(lambda t, *_: t >= 0, body, loop)
        d_inner, d_candidate_in = d_inner.stack(), d_candidate_in.stack()
        # The input projection enters the gates as the recurrent one does, but for the candidate.
        d_xs = tf.concat([d_inner[:, : 2 * units], d_candidate_in], 1)

        def feature_rows(values: tf.Tensor) -> tf.Tensor:  # (time, f, batch) -> (f, time*batch)
            return tf.reshape(
                tf.transpose(tf.cast(values, kernel.dtype), (1, 0, 2)), (values.shape[1], -1)
            )

        d_kernel = tf.matmul(feature_rows(previous), feature_rows(d_inner), transpose_b=True)
        d_bias = tf.reduce_sum(d_inner[:, 2 * units :], [0, 2])[:, None]
        return d_xs, dh0, d_kernel, d_bias

    return (states, last), gradient


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class GRU(keras.layers.GRU):
    """`keras.layers.GRU` whose sequence loop projects the inputs before the loop and writes
    out its backward pass (see the module docstring); takes the same arguments."""

    def _fast_loop_applies(self, mask, training) -> bool:
        cell = self.cell
        return (
            mask is None
            and cell.reset_after
            and cell.use_bias
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not (training and (cell.dropout or cell.recurrent_dropout))
            and not self.go_backwards
            and not self.unroll
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fast_loop_applies(mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        cell, units = self.cell, self.units
        # bias row 0 is the input projection's, row 1 the recurrent one's: the update and reset
        # gates add both before their sigmoid, the candidate scales row 1's by the reset gate.
        bias = ops.cast(cell.bias, "float32")
        input_bias = bias[0] + ops.concatenate([bias[1, : 2 * units], ops.zeros((units,))])
        projected = ops.cast(ops.matmul(sequences, cell.kernel), "float32") + input_bias
        states, last = _recurrence(
            ops.transpose(projected, (1, 2, 0)),  # (time, 3 units, batch)
            ops.transpose(ops.cast(h0, "float32")),
            tf.identity(cell.recurrent_kernel),  # a tensor: the gradient is written out
            bias[1, 2 * units :, None],
        )
        last = ops.transpose(last)
        return last, ops.transpose(states, (2, 0, 1)), [last]
