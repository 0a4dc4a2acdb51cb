"""Character-level language-model data: a character vocabulary and `(inputs, targets)` windows.

Text is split into Unicode characters (`tf.strings.unicode_split`) and mapped to ids by a Keras
`StringLookup` whose vocabulary is built from the training split and kept in the run directory,
so that a resumed run, `evaluate` and `export` all use the ids training used.

>>> spec = char_spec("shakespeare", run_dir, sequence_length=128)
>>> batches = char_examples("shakespeare", "train", spec).batch(64, drop_remainder=True)
>>> inputs, targets = char_streams("shakespeare", "test", spec, streams=32, steps=200)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.data import VOCABULARY_FILE, DataOptions, load
from bigmodel_tf.data.pipeline import batch_uniform
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

OOV_TOKEN = "[UNK]"
# StringLookup with one OOV index and no mask token puts the OOV token first.
OOV_ID = 0


@dataclass(frozen=True)
class CharSpec:
    """What a character-level language model needs to know about its data.

    Args:
        vocabulary: tuple[str, ...]. The token of each id (`vocabulary[i]` has id `i`): the OOV
            token, then the training split's characters, most frequent first.
        oov_id: int. The id of characters not in the vocabulary.
        sequence_length: int. Characters per input (and per target) sequence.
    """

    vocabulary: tuple[str, ...]
    oov_id: int
    sequence_length: int

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)


def _characters(texts: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_split(texts, "UTF-8")


def build_vocabulary(texts: tf.data.Dataset) -> list[str]:
    """The characters of `texts`, most frequent first (ties in reverse codepoint order), after
    the OOV token.

    Args:
        texts: tf.data.Dataset. Scalar strings (UTF-8), e.g. one per work.
    """
    lookup = keras.layers.StringLookup(mask_token=None, oov_token=OOV_TOKEN)
    lookup.adapt(texts.map(_characters))
    return [str(token) for token in lookup.get_vocabulary()]


def save_vocabulary(path: Path, vocabulary: Sequence[str]) -> None:
    """Writes `vocabulary` (id order) and the OOV id to the JSON file `path`, atomically."""
    write_json(path, {"oov_id": OOV_ID, "vocabulary": list(vocabulary)})


def load_vocabulary(path: Path) -> list[str]:
    """The vocabulary (id order) saved by `save_vocabulary`."""
    return read_json(path)["vocabulary"]


def char_lookup(vocabulary: Sequence[str], *, invert: bool = False) -> keras.layers.StringLookup:
    """A `StringLookup` from characters to int64 ids (or, with `invert`, back) for `vocabulary`.

    Args:
        vocabulary: sequence of str. Tokens in id order, the OOV token first (as made by
            `build_vocabulary`).
        invert: bool. Map ids to characters instead; unknown ids give the OOV token.
            Defaults to `False`.
    """
    if not vocabulary or vocabulary[OOV_ID] != OOV_TOKEN:
        raise ValueError(f"a character vocabulary starts with {OOV_TOKEN!r}")
    return keras.layers.StringLookup(
        vocabulary=list(vocabulary), mask_token=None, oov_token=OOV_TOKEN, invert=invert
    )


def lm_examples(
    texts: tf.data.Dataset,
    lookup: keras.layers.StringLookup,
    sequence_length: int,
    spare: int = 0,
) -> tf.data.Dataset:
    """Next-character examples: each text's ids cut into non-overlapping windows.

    Each text (a whole work) is cut on its own into windows of `sequence_length + 1` ids, dropping
    its last incomplete window, so no example mixes two works. A window `w` gives the example
    `(w[:-1], w[1:])`. The order is deterministic: texts in order, windows in text order.

    Args:
        texts: tf.data.Dataset. Scalar strings (UTF-8).
        lookup: keras.layers.StringLookup. Characters to ids (`char_lookup`).
        sequence_length: int. Length of each input and target sequence.
        spare: int. Ids each window carries on past its end (the start of the next window),
            for `random_windows` to cut a window of `sequence_length` from anywhere in it; a
            window without them is dropped. Defaults to 0.

    Returns:
        A dataset of unbatched `(inputs, targets)` int32 pairs of shape
        `(sequence_length + spare,)`.
    """
    if sequence_length < 1:
        raise ValueError(f"sequence_length must be at least 1, not {sequence_length}")
    if not 0 <= spare <= sequence_length + 1:
        raise ValueError(f"spare must be in [0, sequence_length + 1], not {spare}")
    window = sequence_length + 1

    def windows(text: tf.Tensor) -> tf.data.Dataset:
        ids = tf.cast(lookup(_characters(text)), tf.int32)
        # Row i: window i, then the next window's first `spare` ids.
        count = tf.maximum((tf.size(ids) - spare) // window, 0)
        starts = tf.range(count)[:, None] * window
        rows = tf.gather(ids, starts + tf.range(window + spare)[None, :])
        return tf.data.Dataset.from_tensor_slices((rows[:, :-1], rows[:, 1:]))

    return texts.flat_map(windows)


def text_to_ids(text: str, lookup: keras.layers.StringLookup) -> tuple[np.ndarray, list[str]]:
    """The int32 ids of the characters of `text` (e.g. a prompt), and those not in the vocabulary.

    Args:
        text: str. Any text.
        lookup: keras.layers.StringLookup. Characters to ids (`char_lookup`).

    Returns:
        `(ids, unknown)`: one id per character (`OOV_ID` for unknown ones), and the distinct
        unknown characters in order of first appearance, for the caller to warn about.
    """
    characters = _characters(tf.constant(text))
    ids = lookup(characters).numpy().astype(np.int32)
    unknown = [c.decode("utf-8") for c in characters.numpy()[ids == OOV_ID]]
    return ids, list(dict.fromkeys(unknown))


def ids_to_text(
    ids: Sequence[int] | np.ndarray | tf.Tensor, inverse_lookup: keras.layers.StringLookup
) -> str:
    """The text of a sequence of ids (e.g. generated ones); OOV ids become the OOV token.

    Args:
        ids: sequence of int, 1-D array or tensor. Character ids.
        inverse_lookup: keras.layers.StringLookup. Ids to characters
            (`char_lookup(vocabulary, invert=True)`).
    """
    characters = inverse_lookup(tf.cast(ids, tf.int64))
    return tf.strings.reduce_join(characters).numpy().decode("utf-8")


def _texts(dataset: str, split: str, options: DataOptions | None) -> tf.data.Dataset:
    texts, info = load(dataset, split, options, as_supervised=False)
    if "text" not in info.features:
        raise UserError(f"{dataset} has no text feature; a language model needs a text dataset")
    return texts.map(lambda example: example["text"])


def char_spec(
    dataset: str, directory: Path, sequence_length: int, options: DataOptions | None = None
) -> CharSpec:
    """The spec of a text dataset, with the vocabulary of its `train` split kept in `directory`.

    The first call builds the vocabulary and writes it to `directory/VOCABULARY_FILE`; later
    calls read it back, so the ids never change within a run.

    Args:
        dataset: str. A dataset whose examples have a `text` feature (`shakespeare`,
            `tfds:tiny_shakespeare`).
        directory: Path. Where the vocabulary file lives (the run directory).
        sequence_length: int. Characters per input sequence.
        options: DataOptions. How own data (`text:PATH`) is read and split.
    """
    path = Path(directory) / VOCABULARY_FILE
    if path.exists():
        vocabulary = load_vocabulary(path)
    else:
        vocabulary = build_vocabulary(_texts(dataset, "train", options))
        save_vocabulary(path, vocabulary)
    return CharSpec(tuple(vocabulary), OOV_ID, sequence_length)


def char_examples(
    dataset: str,
    split: str,
    spec: CharSpec,
    options: DataOptions | None = None,
    spare: int = 0,
) -> tf.data.Dataset:
    """Unbatched `(inputs, targets)` int32 examples of `split` (see `lm_examples`), cached.

    Args:
        dataset: str. A dataset whose examples have a `text` feature.
        split: str. A TFDS split expression (`train`, `validation[:50%]`).
        spec: CharSpec. From `char_spec`.
        options: DataOptions. How own data (`text:PATH`) is read and split.
        spare: int. Ids past each window's end (`lm_examples`). Defaults to 0.
    """
    lookup = char_lookup(spec.vocabulary)
    texts = _texts(dataset, split, options)
    return lm_examples(texts, lookup, spec.sequence_length, spare).cache()


def random_windows(
    inputs: tf.Tensor, targets: tf.Tensor, sequence_length: int, seed: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of `(batch, sequence_length)` examples cut from a batch of longer ones (`spare`
    ids past each window, `lm_examples`), each row from its own random start.

    Fixed windows show a model every character at the same place in the same window every
    epoch; a random start shows it with a different past each time. Random as
    `data.pipeline.batch_uniform` is: a resumed run cuts what an uninterrupted one would.
    """
    spare = inputs.shape[1] - sequence_length
    uniform = batch_uniform(inputs, seed)
    starts = uniform(0, minval=0, maxval=spare + 1, dtype=tf.int32)[:, :1]  # (batch, 1)
    positions = starts + tf.range(sequence_length)[None, :]
    return (
        tf.gather(inputs, positions, batch_dims=1),
        tf.gather(targets, positions, batch_dims=1),
    )


def char_streams(
    dataset: str,
    split: str,
    spec: CharSpec,
    streams: int,
    steps: int,
    options: DataOptions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Parallel runs of consecutive characters of `split`, for a model that carries its state.

    The split's texts are joined in order and `streams` stretches of `steps + 1` characters are
    taken at evenly spaced offsets, so a bounded sample still covers the whole split (a stretch
    may cross from one work into the next). A split too short for them (your own small text)
    gives as many whole streams as fit, or one as long as the split. Time-major: row `t` holds
    every stream's `t`-th character, ready to feed one step at a time.

    Args:
        dataset: str. A dataset whose examples have a `text` feature.
        split: str. A TFDS split expression.
        spec: CharSpec. From `char_spec`.
        streams: int. Number of parallel stretches (the batch of each step), at least 1.
        steps: int. Characters each stream predicts, at least 1.
        options: DataOptions. How own data (`text:PATH`) is read and split.

    Returns:
        `(inputs, targets)`, int32 of shape `(steps, streams)` (or fewer, as above);
        `targets[t] = inputs[t + 1]`.
    """
    text = "".join(t.decode("utf-8") for t in _texts(dataset, split, options).as_numpy_iterator())
    ids, _ = text_to_ids(text, char_lookup(spec.vocabulary))
    if len(ids) < 2:
        raise UserError(f"{dataset} {split} has {len(ids)} characters: nothing to predict")
    steps = min(steps, len(ids) - 1)
    streams = max(1, min(streams, len(ids) // (steps + 1)))
    stride = len(ids) // streams
    offsets = np.arange(streams)[:, None] * stride + np.arange(steps + 1)  # (streams, steps + 1)
    stretches = ids[offsets].T  # (steps + 1, streams)
    return stretches[:-1], stretches[1:]
