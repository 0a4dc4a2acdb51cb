"""One cache of compiled decoding loops (`tf.function`s around a `while_loop`), per model.

A loop is traced once per model and key, and one trace serves every input its signature allows
(batch, lengths, seeds). Weak keys, so that the cache does not keep models alive; the loops reach
their model through a weak reference as well.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

import keras
import tensorflow as tf

# model -> {key: compiled loop}
_LOOPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_loop(
    model: keras.Model,
    key: Hashable,
    loop: Callable,
    input_signature: list[tf.TensorSpec],
) -> Callable:
    """`tf.function(lambda *args: loop(model, *args))` with `input_signature`, made once per
    `(model, key)`: the key names what shapes the trace (the loop and its Python arguments).

    A `tf.function` because Keras 3 has no backend-neutral way to compile a free function
    (keras-hub's `CausalLM` does the same).
    """
    loops = _LOOPS.setdefault(model, {})
    if key not in loops:
        model_ref = weakref.ref(model)

        def call(*args):
            return loop(model_ref(), *args)

        loops[key] = tf.function(call, input_signature=input_signature)
    return loops[key]
