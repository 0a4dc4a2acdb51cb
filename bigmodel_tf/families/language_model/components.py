"""What the language-model tasks (`gru-lm`, `transformer-lm`) add to a model: a bits-per-character
metric, the string-to-string `generate` serving endpoint, and a text sample in TensorBoard after
each epoch.

    >>> model.compile(loss=..., metrics=[BitsPerCharacter()])
    >>> TextGenerator(model, spec.vocabulary)(tf.constant("ROMEO:"), 100, 0.8, 1)["text"]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from bigmodel_tf.families.language_model.data import char_lookup, ids_to_text, text_to_ids
from bigmodel_tf.families.language_model.generation import MAX_GENERATE_LENGTH, generate

# What generation starts from when the prompt is empty: the start of a line.
EMPTY_PROMPT = "\n"


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class BitsPerCharacter(keras.metrics.Mean):
    """Mean cross-entropy of next-token logits in bits per token (nats / ln 2).

    Every target counts once: the mean over all `(batch, time)` positions, like the loss.

    Args:
        name: str. Metric name. Defaults to `"bits_per_char"`.
        dtype: str. Dtype of the metric's result. Defaults to None (float32).
    """

    def __init__(self, name: str = "bits_per_char", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        nats = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return super().update_state(nats / math.log(2.0), sample_weight=sample_weight)


class TextGenerator(tf.Module):
    """Strings in, string out: the exported `generate(prompt, length, temperature, seed)`.

    Tokenises `prompt` in the graph with the vocabulary's `StringLookup` (characters outside it
    become the OOV id; an empty prompt starts from a newline), samples `length` ids with
    `generation.generate` and joins their characters. A `tf.Module`, so that an export saves its
    lookup tables with it.

    Args:
        model: keras.Model. The language model to sample from (see
            `families.language_model.generation`).
        vocabulary: sequence of str. The model's characters in id order, OOV token first.
    """

    def __init__(self, model: keras.Model, vocabulary: Sequence[str]):
        super().__init__(name="text_generator")
        self.model = model
        self.lookup = char_lookup(vocabulary)
        self.characters = char_lookup(vocabulary, invert=True)

    def __call__(
        self, prompt: tf.Tensor, length: tf.Tensor, temperature: tf.Tensor, seed: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        # Tensor arguments skip generate()'s Python checks; a served model must still refuse
        # them with a message rather than fail inside the loop.
        checks = [
            tf.debugging.assert_greater(length, 0, message="length must be >= 1"),
            tf.debugging.assert_less_equal(length, MAX_GENERATE_LENGTH, message="length too large"),
            tf.debugging.assert_greater(temperature, 0.0, message="temperature must be > 0"),
            tf.debugging.assert_non_negative(seed, message="seed must be >= 0"),
        ]
        # In a graph nothing orders the checks before the loop, which a zero temperature breaks
        # first (it samples ids outside the vocabulary): make the loop's inputs wait for them.
        with tf.control_dependencies(checks):
            prompt, length, temperature, seed = (
                tf.identity(t) for t in (prompt, length, temperature, seed)
            )
        prompt = tf.where(tf.equal(prompt, ""), EMPTY_PROMPT, prompt)
        ids = tf.cast(self.lookup(tf.strings.unicode_split(prompt, "UTF-8")), tf.int32)
        new_ids = generate(self.model, ids, length, temperature=temperature, seed=seed)
        return {"text": tf.strings.reduce_join(self.characters(tf.cast(new_ids, tf.int64)))}


def sample_text(
    model: keras.Model,
    vocabulary: Sequence[str],
    length: int,
    temperature: float,
    seed: int,
) -> str:
    """`length` characters sampled from the start of a line (`EMPTY_PROMPT`), as TensorBoard and
    a run's report show them."""
    prompt_ids, _ = text_to_ids(EMPTY_PROMPT, char_lookup(vocabulary))
    ids = generate(model, prompt_ids, length, temperature=temperature, seed=seed)
    return ids_to_text(ids, char_lookup(vocabulary, invert=True))


class TextSample(keras.callbacks.Callback):
    """Writes a generated text sample to TensorBoard (the Text tab) after every epoch.

    The same prompt, temperature and seed every epoch, so the samples show what training
    changed.

    Args:
        log_dir: path. Where the event file goes (a run's `logs/samples`).
        vocabulary: sequence of str. The model's characters in id order, OOV token first.
        length: int. Characters per sample. Defaults to 400.
        temperature: float. Sampling temperature. Defaults to 0.8.
        seed: int. Sampling seed. Defaults to 0.
    """

    def __init__(
        self,
        log_dir: Path | str,
        vocabulary: Sequence[str],
        *,
        length: int = 400,
        temperature: float = 0.8,
        seed: int = 0,
    ):
        super().__init__()
        self.log_dir = str(log_dir)
        self.vocabulary = list(vocabulary)
        self.length = length
        self.temperature = temperature
        self.seed = seed
        self.writer = None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        text = sample_text(self.model, self.vocabulary, self.length, self.temperature, self.seed)
        # Markdown: an indented block keeps the line breaks and spacing of the verse.
        markdown = "\n".join("    " + line for line in text.split("\n"))
        with self.writer.as_default():
            tf.summary.text("sample", markdown, step=epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()
