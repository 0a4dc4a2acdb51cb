"""Sampling text from a next-token language model, in one compiled loop.

`generate()` runs the prompt once, then samples one id at a time from the model's `step()`,
carrying its state (a GRU's hidden states, a Transformer's key/value cache).
`generate_by_rerunning_prefix()` is the naive baseline that re-runs the model over the whole
sequence for every new id (tests and benchmarks compare against it).

A language model here is a `keras.Model` with a `vocabulary_size` attribute and

    model(ids, return_state=True) -> (logits (batch, time, vocab), state)
    model.step(token, state) -> (logits (batch, vocab), state)

where `token` is `(batch,)` ids and `state` any nest of tensors of fixed shapes.

    >>> generate(model, [0, 5, 9], length=20, temperature=0.8, top_k=10, seed=3).shape
    TensorShape([20])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bigmodel_tf.compiled import compiled_loop
from bigmodel_tf.errors import UserError

# Bounds `length` in `generate()`: the id buffer is `(batch, length)`; larger values are typos.
MAX_GENERATE_LENGTH = 100_000


def generate(
    model: keras.Model,
    prompt_ids: Sequence[int] | np.ndarray | tf.Tensor,
    length: int | tf.Tensor,
    *,
    temperature: float | tf.Tensor = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | tf.Tensor = 0,
) -> tf.Tensor:
    """Samples `length` ids that follow `prompt_ids`; the prompt runs once, then one step per id.

    The loop is compiled once per `(model, top_k, top_p)`: other prompts, lengths, temperatures
    and seeds reuse it. `length`, `temperature` and `seed` may be scalar tensors (as in an
    exported `generate(prompt, length, temperature, seed)` signature); Python values are checked
    and raise `UserError`, tensors are used as they are. Id `i` is drawn with the stateless seed
    `(seed, i)`, so the same arguments give the same ids.

    Args:
        model: keras.Model. The language model to sample from (see the module docstring).
        prompt_ids: int array. At least one id (e.g. a newline), shape `(time,)` or
            `(batch, time)`.
        length: int. Number of ids to generate, 1 to `MAX_GENERATE_LENGTH`.
        temperature: float. Divides the logits; lower is more conservative. Defaults to 1.0.
        top_k: int. Sample among the `top_k` most likely ids; 1 is greedy (argmax).
            Defaults to None (all ids).
        top_p: float in (0, 1]. Sample among the most likely ids whose probabilities sum to
            `top_p` (nucleus sampling). Defaults to None (all ids).
        seed: int. Seed of the sampling, 0 to 2**31 - 1. Defaults to 0.

    Returns:
        int32 tensor of the new ids, `(length,)` or `(batch, length)` like `prompt_ids`.
    """
    _check_arguments(model, prompt_ids, length, temperature, top_k, top_p, seed)
    return _run_loop(model, prompt_ids, length, temperature, seed, top_k, top_p, rerun_prefix=False)


def generate_by_rerunning_prefix(
    model: keras.Model,
    prompt_ids: Sequence[int] | np.ndarray | tf.Tensor,
    length: int | tf.Tensor,
    *,
    temperature: float | tf.Tensor = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | tf.Tensor = 0,
) -> tf.Tensor:
    """`generate()` without carried states: every new id re-runs the model over the prompt and
    all ids so far, O(length²) token steps instead of O(length). The baseline for benchmarks; with
    the same arguments it returns the same ids as `generate()` (the same compiled loop and
    sampling, only the next-logits function differs).
    """
    _check_arguments(model, prompt_ids, length, temperature, top_k, top_p, seed)
    return _run_loop(model, prompt_ids, length, temperature, seed, top_k, top_p, rerun_prefix=True)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))


def _check_arguments(model, prompt_ids, length, temperature, top_k, top_p, seed) -> None:
    vocabulary_size = model.vocabulary_size
    if top_k is not None and top_p is not None:
        raise UserError(f"top_k={top_k} and top_p={top_p}: give one of them, not both")
    if top_k is not None and not 1 <= top_k <= vocabulary_size:
        raise UserError(
            f"top_k={top_k}: must be between 1 and the vocabulary size {vocabulary_size}"
        )
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"top_p={top_p}: must be in (0, 1]")
    if _is_number(length) and not 1 <= length <= MAX_GENERATE_LENGTH:
        raise UserError(f"length={length}: must be between 1 and {MAX_GENERATE_LENGTH:,}")
    if _is_number(temperature) and not temperature > 0:
        raise UserError(f"temperature={temperature}: must be > 0 (use top_k=1 for greedy)")
    if _is_number(seed) and not 0 <= seed < 2**31:
        raise UserError(f"seed={seed}: must be between 0 and 2**31 - 1")
    if not ops.is_tensor(prompt_ids):
        prompt = np.asarray(prompt_ids)
        if prompt.ndim not in (1, 2) or prompt.shape[-1] == 0:
            raise UserError("prompt_ids: need at least one id, shape (time,) or (batch, time)")
        if not np.issubdtype(prompt.dtype, np.integer) or not (
            prompt.min() >= 0 and prompt.max() < vocabulary_size
        ):
            raise UserError(f"prompt_ids: must be integers in [0, {vocabulary_size})")


def _run_loop(model, prompt_ids, length, temperature, seed, top_k, top_p, *, rerun_prefix):
    prompt = ops.convert_to_tensor(prompt_ids, "int32")
    single = len(prompt.shape) == 1
    ids = _compiled_loop(model, rerun_prefix, top_k, top_p)(
        prompt[None] if single else prompt,
        ops.convert_to_tensor(length, "int32"),
        ops.convert_to_tensor(temperature, "float32"),
        ops.convert_to_tensor(seed, "int32"),
    )
    return ids[0] if single else ids


# One trace serves every prompt shape, length, temperature and seed; top_k and top_p fix shapes,
# so they are part of the key.
_SIGNATURE = [
    tf.TensorSpec((None, None), tf.int32, name="prompt"),
    tf.TensorSpec((), tf.int32, name="length"),
    tf.TensorSpec((), tf.float32, name="temperature"),
    tf.TensorSpec((), tf.int32, name="seed"),
]


def _compiled_loop(model, rerun_prefix: bool, top_k, top_p) -> Callable:
    def loop(model, prompt, length, temperature, seed):
        return _sample_loop(model, prompt, length, temperature, seed, rerun_prefix, top_k, top_p)

    return compiled_loop(model, ("sample", rerun_prefix, top_k, top_p), loop, _SIGNATURE)


def _sample_loop(model, prompt, length, temperature, seed, rerun_prefix, top_k, top_p):
    """(batch, time) prompt -> (batch, length) new ids, in one `while_loop`."""
    if rerun_prefix:
        logits, cache = model(prompt)[:, -1], ()

        def advance(token, cache, ids, index):
            sequence = ops.concatenate([prompt, ids[:, :index]], axis=1)  # (batch, time + index)
            return model(sequence)[:, -1], cache
    else:
        logits, cache = model(prompt, return_state=True)  # the only pass over the prompt
        logits = logits[:, -1]  # (batch, vocab)
        # XLA fuses a step's many small ops, each of which costs more in TF's executor than its
        # arithmetic. The sampler stays outside: XLA's categorical sampling draws other ids
        # than TF's from the same seed, and generate_by_rerunning_prefix must draw the same.
        step = tf.function(model.step, jit_compile=True)

        def advance(token, cache, ids, index):
            return step(token, cache)

    def sample(logits, index):  # (batch, vocab) -> (batch,)
        return _sample(logits, temperature, ops.stack([seed, index]), top_k, top_p)

    def body(index, token, cache, ids):
        logits, cache = advance(token, cache, ids, index)
        token = sample(logits, index)
        return index + 1, token, cache, ops.slice_update(ids, [0, index], token[:, None])

    token = sample(logits, 0)
    ids = ops.zeros((ops.shape(prompt)[0], length), "int32")  # (batch, length)
    ids = ops.slice_update(ids, [0, 0], token[:, None])
    *_, ids = ops.while_loop(
        lambda index, *_: index < length, body, (ops.convert_to_tensor(1), token, cache, ids)
    )
    return ids


def _sample(logits, temperature, seed, top_k, top_p):
    """Draws one id per row: `(batch, vocab)` logits, a `(2,)` int32 seed -> `(batch,)` int32."""
    logits = ops.cast(logits, "float32") / temperature
    indices = None
    if top_k is not None or top_p is not None:
        logits, indices = ops.top_k(logits, k=top_k or logits.shape[-1])  # sorted, descending
        if top_p is not None:
            probabilities = ops.softmax(logits)
            mass_before = ops.cumsum(probabilities, axis=-1) - probabilities
            # The nucleus: the most likely ids until their mass reaches top_p (never empty).
            logits = ops.where(mass_before < top_p, logits, -np.inf)
    # tf.random, not keras.random: keras.random takes a Python int or a stateful SeedGenerator,
    # and here the seed is a tensor (an exported input) that must give the same ids every call.
    choice = tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)  # (batch, 1)
    if indices is not None:
        choice = ops.take_along_axis(indices, choice, axis=-1)
    return choice[:, 0]
