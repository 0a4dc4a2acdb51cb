"""Subword text-classification data: a WordPiece vocabulary and `(token ids, label)` examples.

Texts are lower-cased, stripped of accents and split into WordPiece subwords by keras-hub's
`WordPieceTokenizer` over a vocabulary computed from the training split and kept in the run
directory, so that a resumed run, `evaluate`, `export` and `classify` use the ids training used.
Each text becomes `[CLS]` followed by its first `sequence_length - 1` subwords (longer texts are
truncated); batches are padded with `[PAD]` (id 0) to their longest text.

>>> spec = classification_spec("rotten_tomatoes", run_dir, vocabulary_size=8000,
...                            sequence_length=128)
>>> examples = classification_examples("rotten_tomatoes", "train", spec)
>>> batches = token_batcher(64)(examples)   # ((batch, time) int32 ids, (batch,) labels)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from bigmodel_tf.data import builder, load
from bigmodel_tf.data.pipeline import AUTOTUNE
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

if TYPE_CHECKING:
    from keras_hub.tokenizers import WordPieceTokenizer

# BERT's reserved tokens, in BERT's order; padding must be id 0 (the models mask id 0).
RESERVED_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")
PAD_ID, CLS_ID = 0, 1
OOV_TOKEN = "[UNK]"
VOCABULARY_FILE = "wordpiece.json"
# Short texts (review snippets average ~25 subwords) are batched with texts of similar length,
# so that little of each batch is padding; see `token_batcher`.
BUCKET_BOUNDARIES = (16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class TextClassSpec:
    """What a subword text classifier needs to know about its data.

    Args:
        vocabulary: tuple[str, ...]. The WordPiece token of each id (`RESERVED_TOKENS` first).
        labels: tuple[str, ...]. The class names, in label order.
        sequence_length: int. Longest input in tokens, `[CLS]` included.
    """

    vocabulary: tuple[str, ...]
    labels: tuple[str, ...]
    sequence_length: int

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def wordpiece_tokenizer(vocabulary: Sequence[str]) -> WordPieceTokenizer:
    """The tokenizer for `vocabulary`: lower-cases and strips accents, as the vocabulary was
    computed. Special tokens typed in a text (`"[CLS]"`) are read as plain text."""
    import keras_hub  # 1.5 s to import: only text runs pay for it

    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=list(vocabulary), lowercase=True, strip_accents=True, oov_token=OOV_TOKEN
    )


def compute_vocabulary(texts: tf.data.Dataset, size: int) -> list[str]:
    """A WordPiece vocabulary of at most `size` tokens learnt from `texts` (scalar strings),
    `RESERVED_TOKENS` first."""
    import keras_hub

    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        texts.batch(1024),
        size,
        lowercase=True,
        strip_accents=True,
        reserved_tokens=list(RESERVED_TOKENS),
    )


def encode(
    texts: tf.Tensor, tokenizer: WordPieceTokenizer, sequence_length: int
) -> tf.RaggedTensor:
    """`(batch,)` strings -> `(batch, None)` int32 ids: `[CLS]`, then at most
    `sequence_length - 1` subwords. Bytes that are not UTF-8 become U+FFFD (then `[UNK]`)
    rather than failing the batch; an empty text is `[CLS]` alone."""
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    subwords = tokenizer.tokenize(texts)[:, : sequence_length - 1]
    cls = tf.fill([tf.shape(texts)[0], 1], tf.constant(CLS_ID, subwords.dtype))
    return tf.concat([tf.RaggedTensor.from_tensor(cls), subwords], axis=1)


def _labelled_texts(dataset: str, split: str) -> tf.data.Dataset:
    examples, _ = load(dataset, split, as_supervised=False)
    return examples.map(lambda example: (example["text"], example["label"]))


def classification_spec(
    dataset: str, directory: Path, vocabulary_size: int, sequence_length: int
) -> TextClassSpec:
    """The spec of a labelled text dataset, with the vocabulary of its `train` split kept in
    `directory`.

    The first call computes the vocabulary (a few seconds for Rotten Tomatoes) and writes it to
    `directory/VOCABULARY_FILE`; later calls read it back, so the ids never change within a run.

    Args:
        dataset: str. A dataset with `text` and `label` features (`rotten_tomatoes`,
            `tfds:imdb_reviews`).
        directory: Path. Where the vocabulary file lives (the run directory).
        vocabulary_size: int. The most tokens the vocabulary may have.
        sequence_length: int. Longest input in tokens, `[CLS]` included.
    """
    features = builder(dataset).info.features
    if not {"text", "label"} <= set(features):
        raise UserError(f"{dataset} has no text and label features; a text classifier needs both")
    labels = tuple(features["label"].names)
    path = Path(directory) / VOCABULARY_FILE
    if path.exists():
        vocabulary = read_json(path)["vocabulary"]
    else:
        texts = _labelled_texts(dataset, "train").map(lambda text, label: text)
        vocabulary = compute_vocabulary(texts, vocabulary_size)
        write_json(path, {"vocabulary": vocabulary})
    return TextClassSpec(tuple(vocabulary), labels, sequence_length)


def classification_examples(dataset: str, split: str, spec: TextClassSpec) -> tf.data.Dataset:
    """Unbatched `(ids, label)` examples of `split`: int32 ids of shape `(time,)` (see
    `encode`) and the int64 label; cached."""
    tokenizer = wordpiece_tokenizer(spec.vocabulary)
    return (
        _labelled_texts(dataset, split)
        .batch(1024)  # tokenise many texts per call
        .map(
            lambda texts, labels: (encode(texts, tokenizer, spec.sequence_length), labels),
            num_parallel_calls=AUTOTUNE,
        )
        .unbatch()
        .cache()
    )


def token_batcher(batch_size: int):
    """Batches `(ids, label)` examples of similar length, each batch padded with `PAD_ID` to
    its longest text."""

    def batcher(examples: tf.data.Dataset) -> tf.data.Dataset:
        return examples.bucket_by_sequence_length(
            lambda ids, label: tf.shape(ids)[0],
            bucket_boundaries=list(BUCKET_BOUNDARIES),
            bucket_batch_sizes=[batch_size] * (len(BUCKET_BOUNDARIES) + 1),
            padding_values=(PAD_ID, tf.constant(0, tf.int64)),
        )

    return batcher
