"""Subword text data: a WordPiece vocabulary and `(token ids, label)` examples (the random
changes to a training batch, BERT's masking and word dropout, are in `masking`).

Texts are lower-cased, stripped of accents and split into WordPiece subwords by keras-hub's
`WordPieceTokenizer` over a vocabulary computed from the training split and kept in the run
directory, so that a resumed run, `evaluate`, `export` and `classify` use the ids training used.
Each text becomes `[CLS]` followed by its first `sequence_length - 1` subwords (longer texts are
truncated), or by `sequence_length - 2` and `[SEP]` for a vocabulary that asks for it (a
pretrained BERT's, `SubwordSpec.end_token`); batches are padded with `[PAD]` (id 0) to their
longest text.

>>> spec = subword_spec("rotten_tomatoes", run_dir, vocabulary_size=8000, sequence_length=128)
>>> examples = subword_examples("rotten_tomatoes", "train", spec)
>>> batches = token_batcher(64)(examples)   # ((batch, time) int32 ids, (batch,) labels)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from bigmodel_tf.data import PAD_ID, DataOptions, builder, cache_dir, load
from bigmodel_tf.data.own import parse
from bigmodel_tf.data.pipeline import AUTOTUNE
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

if TYPE_CHECKING:
    from keras_hub.tokenizers import WordPieceTokenizer

# BERT's reserved tokens, in BERT's order; padding must be id 0 (the models mask id 0). A
# pretrained vocabulary keeps its own ids for them (BERT's [CLS] is 101), read by name.
RESERVED_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")
CLS_ID, MASK_ID = 1, 4
OOV_TOKEN = "[UNK]"
WORDPIECE_FILE = "wordpiece.json"
# A classifier run's class names, kept so that `classify` and `export` need no data.
LABELS_FILE = "labels.json"
# Short texts (review snippets average ~25 subwords) are batched with texts of similar length,
# so that little of each batch is padding; see `token_batcher`.
BUCKET_BOUNDARIES = (16, 32, 64, 128, 256, 512)
# Batch lengths are rounded up to a multiple of this: XLA compiles a step for every batch shape
# it meets, and a 22 M-weight encoder takes ~25 s to compile, so a few lengths, not every one.
PAD_MULTIPLE = 16


@dataclass(frozen=True)
class SubwordSpec:
    """What a Transformer on subwords needs to know about its data.

    Args:
        vocabulary: tuple[str, ...]. The WordPiece token of each id (`RESERVED_TOKENS` first).
        labels: tuple[str, ...]. The class names, in label order (none for unlabelled text).
        sequence_length: int. Longest input in tokens, `[CLS]` (and `[SEP]`) included.
        end_token: bool. Whether texts end with `[SEP]`, as a pretrained BERT expects.
            Defaults to `False`.
    """

    vocabulary: tuple[str, ...]
    labels: tuple[str, ...]
    sequence_length: int
    end_token: bool = False

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def cls_id(self) -> int:
        return self.vocabulary.index("[CLS]")

    @property
    def sep_id(self) -> int | None:
        """The id that ends every text, or None."""
        return self.vocabulary.index("[SEP]") if self.end_token else None

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
    texts: tf.Tensor,
    tokenizer: WordPieceTokenizer,
    sequence_length: int,
    cls_id: int = CLS_ID,
    sep_id: int | None = None,
) -> tf.RaggedTensor:
    """`(batch,)` strings -> `(batch, None)` int32 ids: `cls_id`, then the subwords, then
    `sep_id` if given, at most `sequence_length` ids in all (the subwords are truncated).
    Bytes that are not UTF-8 become U+FFFD (then `[UNK]`) rather than failing the batch; an
    empty text is `[CLS]` (`[SEP]`) alone.

    Graph mode only (`tf.data`, `tf.function`): called eagerly, keras-hub's tokenizers return
    Python lists instead of ragged tensors."""
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    ends = [] if sep_id is None else [sep_id]
    subwords = tokenizer.tokenize(texts)[:, : sequence_length - 1 - len(ends)]

    def column(token_id: int) -> tf.RaggedTensor:
        ids = tf.fill([tf.shape(texts)[0], 1], tf.constant(token_id, subwords.dtype))
        return tf.RaggedTensor.from_tensor(ids)

    return tf.concat([column(cls_id), subwords, *map(column, ends)], axis=1)


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class Retokenizer(keras.layers.Layer):
    """Ids of one WordPiece vocabulary -> ids of another, through the text they spell.

    The source ids are joined back into text (`##` pieces glued to the piece before them,
    special tokens and padding dropped), then encoded as `target` texts are (`encode`). Both
    vocabularies lower-case and strip accents, and WordPiece splits at spaces and punctuation
    alike, so the target ids are those of the original text up to the source's `[UNK]`s and
    truncation. It lets a teacher with its own vocabulary (a pretrained BERT) read a student's
    batches during distillation. TensorFlow string ops: not for `jit_compile`.

    Args:
        source_vocabulary: list[str]. The token of each input id.
        target_vocabulary: list[str]. The token of each output id.
        sequence_length: int. Longest output, `[CLS]` (and `[SEP]`) included.
        end_token: bool. End every output with the target's `[SEP]`. Defaults to `False`.

    Call arguments:
        ids: int tensor `(batch, time)` of source ids, padded with 0.

    Returns:
        int32 tensor `(batch, new_time)` of target ids, padded with 0.
    """

    def __init__(
        self,
        source_vocabulary: Sequence[str],
        target_vocabulary: Sequence[str],
        sequence_length: int,
        end_token: bool = False,
        **kwargs,
    ):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.source_vocabulary = list(source_vocabulary)
        self.target = SubwordSpec(tuple(target_vocabulary), (), sequence_length, end_token)
        # Special tokens spell nothing.
        self.words = [
            "" if token.startswith("[") and token.endswith("]") else token
            for token in self.source_vocabulary
        ]
        self.tokenizer = wordpiece_tokenizer(self.target.vocabulary)
        # keras-hub's tokenizers return Python lists when called eagerly: always trace.
        self.retokenize = tf.function(self._retokenize, reduce_retracing=True)

    def build(self, input_shape):
        pass  # no weights: the tokenizer is made in __init__

    def call(self, ids):
        return self.retokenize(ids)

    def _retokenize(self, ids):
        words = tf.gather(tf.constant(self.words), ids)  # (batch, time) strings
        texts = tf.strings.reduce_join(words, axis=-1, separator=" ")
        texts = tf.strings.regex_replace(texts, " +##", "")
        target = self.target
        ids = encode(texts, self.tokenizer, target.sequence_length, target.cls_id, target.sep_id)
        return ids.to_tensor(PAD_ID)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocabulary": self.source_vocabulary,
                "target_vocabulary": list(self.target.vocabulary),
                "sequence_length": self.target.sequence_length,
                "end_token": self.target.end_token,
            }
        )
        return config


def _texts(
    dataset: str, split: str, options: DataOptions | None, *, labelled: bool
) -> tf.data.Dataset:
    examples, info = load(dataset, split, options, as_supervised=False)
    if labelled:
        return examples.map(lambda example: (example["text"], example["label"]))
    texts = examples.map(lambda example: example["text"])
    if "title" in info.features:
        # Whole documents (your text files, the plays): one text per non-empty line, where the
        # encoder would otherwise read each document's first `sequence_length` subwords alone.
        lines = texts.flat_map(
            lambda text: tf.data.Dataset.from_tensor_slices(tf.strings.split(text, "\n"))
        )
        texts = lines.filter(lambda line: tf.strings.length(tf.strings.strip(line)) > 0)
    return texts


def labelled_texts(dataset: str, split: str, options: DataOptions | None = None) -> tf.data.Dataset:
    """`(text, label)` string and int64 pairs of a split, in the order `subword_examples` encodes
    them (a report shows the texts behind its predictions)."""
    return _texts(dataset, split, options, labelled=True)


def subword_spec(
    dataset: str,
    directory: Path,
    vocabulary_size: int,
    sequence_length: int,
    *,
    labelled: bool = True,
    vocabulary_split: str = "train",
    options: DataOptions | None = None,
) -> SubwordSpec:
    """The spec of a text dataset, with a vocabulary computed from `vocabulary_split` and kept
    in `directory`.

    The first call computes the vocabulary (a few seconds for Rotten Tomatoes) and writes it to
    `directory/WORDPIECE_FILE`, and the class names to `directory/LABELS_FILE`; later calls
    read them back, so the ids never change within a run and the run needs no data to rebuild
    its model (a run can start from another run's vocabulary by copying its file first).

    Args:
        dataset: str. A dataset with a `text` feature and, to classify, a `label` feature
            (`rotten_tomatoes`, `csv:PATH`, `tfds:imdb_reviews`).
        directory: Path. Where the vocabulary file lives (the run directory).
        vocabulary_size: int. The most tokens the vocabulary may have.
        sequence_length: int. Longest input in tokens, `[CLS]` included.
        labelled: bool. Whether the dataset must have labels (to classify). Defaults to `True`.
        vocabulary_split: str. The split expression whose texts the vocabulary is learnt from.
            Defaults to `"train"`.
        options: DataOptions. How own data is read and split.
    """
    directory = Path(directory)
    vocabulary_path, labels_path = directory / WORDPIECE_FILE, directory / LABELS_FILE
    if not vocabulary_path.exists() or (labelled and not labels_path.exists()):
        features = builder(dataset, options).info.features
        if "text" not in features:
            raise UserError(f"{dataset} has no text feature; a Transformer on subwords needs one")
        if labelled and "label" not in features:
            raise UserError(f"{dataset} has no labels; a text classifier needs them")
        if not vocabulary_path.exists():
            vocabulary = _shared_vocabulary(dataset, vocabulary_split, vocabulary_size, options)
            write_json(vocabulary_path, {"vocabulary": vocabulary})
        if labelled:
            write_json(labels_path, {"labels": list(features["label"].names)})
    saved = read_json(vocabulary_path)
    labels = tuple(read_json(labels_path)["labels"]) if labelled else ()
    return SubwordSpec(
        tuple(saved["vocabulary"]), labels, sequence_length, saved.get("end_token", False)
    )


def _shared_vocabulary(
    dataset: str, split: str, size: int, options: DataOptions | None
) -> list[str]:
    """`compute_vocabulary` of a split's texts, kept in the cache for the next run that asks.

    The learner is pure Python and slow (a minute or more for Rotten Tomatoes' 10,201
    snippets on 2 cores) and its result is a function of the data and the size alone.
    """
    found = builder(dataset, options)
    # Own data is named by its prepared folder, `<kind>-<digest of its files>`.
    source = Path(found.data_dir).parent.parent.name if parse(dataset) else dataset
    name = f"{source}-{found.info.version}-{split}-{size}.json".replace(":", "_").replace("/", "_")
    path = cache_dir() / "vocabularies" / name
    if path.exists():
        return read_json(path)["vocabulary"]
    vocabulary = compute_vocabulary(_texts(dataset, split, options, labelled=False), size)
    write_json(path, {"vocabulary": vocabulary})
    return vocabulary


def subword_examples(
    dataset: str,
    split: str,
    spec: SubwordSpec,
    *,
    labelled: bool = True,
    options: DataOptions | None = None,
) -> tf.data.Dataset:
    """Unbatched examples of `split`, cached: `(ids, label)` pairs, or the ids alone when not
    `labelled`; int32 ids of shape `(time,)` (see `encode`), int64 labels."""
    tokenizer = wordpiece_tokenizer(spec.vocabulary)

    def encoded(texts, *labels):
        ids = encode(texts, tokenizer, spec.sequence_length, spec.cls_id, spec.sep_id)
        # Padded for unbatch (which would yield ragged elements that padded_batch refuses),
        # then cut back to each text's length.
        return (ids.to_tensor(PAD_ID), ids.row_lengths(), *labels)

    def unpadded(ids, length, *labels):
        return (ids[:length], *labels) if labels else ids[:length]

    return (
        _texts(dataset, split, options, labelled=labelled)
        .batch(1024)  # tokenise many texts per call
        .map(encoded, num_parallel_calls=AUTOTUNE)
        .unbatch()
        .map(unpadded, num_parallel_calls=AUTOTUNE)
        .cache()
    )


def token_batcher(batch_size: int):
    """Batches examples (`(ids, label)` pairs or ids alone) of similar length, each batch padded
    with zeros (`PAD_ID`) to its longest text rounded up to a multiple of `PAD_MULTIPLE`."""

    def pad(ids, *label):
        length = tf.shape(ids)[1]
        extra = -length % PAD_MULTIPLE
        padded = tf.pad(ids, [[0, 0], [0, extra]])
        return (padded, *label) if label else padded

    def batcher(examples: tf.data.Dataset) -> tf.data.Dataset:
        batches = examples.bucket_by_sequence_length(
            lambda ids, *label: tf.shape(ids)[0],
            bucket_boundaries=list(BUCKET_BOUNDARIES),
            bucket_batch_sizes=[batch_size] * (len(BUCKET_BOUNDARIES) + 1),
        )
        return batches.map(pad, num_parallel_calls=tf.data.AUTOTUNE)

    return batcher
