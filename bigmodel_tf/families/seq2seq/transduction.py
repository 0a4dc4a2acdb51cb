"""What the `seq2seq` task adds to a `Seq2Seq` model: a masked loss and token accuracy,
phoneme and word error rates of decoded outputs, and `transduce`, the Python side of
`bigmodel-tf transduce`.

    >>> error_rates([["K", "AE1", "T"]], [[["K", "AA1", "T"], ["K", "AE1", "T"]]])
    {'per': 0.0, 'wer': 0.0}
    >>> transduce("runs/seq2seq/demo", ["hello", "world"], beam_width=5)
    ['HH AH0 L OW1', 'W ER1 L D']
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.errors import UserError
from bigmodel_tf.families.seq2seq.data import (
    END_TOKEN,
    START_ID,
    Seq2SeqSpec,
    decode_targets,
    encode_sources,
    references,
    split_source,
    strip_stress,
    token_lookup,
)
from bigmodel_tf.families.seq2seq.decoding import beam_decode, greedy_decode
from bigmodel_tf.families.seq2seq.model import Seq2Seq
from bigmodel_tf.pictures import pyplot, save_png
from bigmodel_tf.training.config import RunConfig

# Words decoded per batch when scoring a split; sorted by length, so batches end together.
DECODE_BATCH = 256
# What TensorBoard shows decoded after each epoch: regular, irregular, long and borrowed words.
SAMPLE_WORDS = ("hello", "knight", "thoughtful", "pronunciation", "xylophone")


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class MaskedCrossentropy(keras.losses.Loss):
    """Cross-entropy of `(batch, time, vocab)` logits against `(batch, time)` target ids, the
    mean over the targets that are not padding, with optional label smoothing.

    Smoothing trains against `1 - label_smoothing` on the target and the rest spread evenly
    over the vocabulary (Szegedy et al. 2016), which keeps the model from growing overconfident
    on the words it has memorised.

    Args:
        label_smoothing: float in [0, 1). Share of each target's probability spread over the
            vocabulary. Defaults to 0.0 (plain cross-entropy).
        name: str. Loss name. Defaults to `"masked_crossentropy"`.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_crossentropy", **kwargs):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        # The mean divides by the weights' sum, and padding weighs nothing (`__call__`).
        kwargs["reduction"] = "mean_with_sample_weight"
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def __call__(self, y_true, y_pred, sample_weight=None):
        weight = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, "float32")
        return super().__call__(y_true, y_pred, sample_weight=weight)

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.expand_dims(ops.cast(y_true, "int32"), axis=-1)
        target = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), axis=-1)
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * target + self.label_smoothing * uniform

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="bigmodel_tf")
class MaskedAccuracy(keras.metrics.Mean):
    """Token accuracy of `(batch, time, vocab)` logits over the targets that are not padding.

    Args:
        name: str. Metric name. Defaults to `"accuracy"`.
        dtype: str. Dtype of the metric's result. Defaults to None (float32).
    """

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        hits = ops.equal(y_true, ops.cast(ops.argmax(y_pred, axis=-1), "int32"))
        weight = ops.cast(ops.not_equal(y_true, PAD_ID), self.dtype)
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, self.dtype)
        return super().update_state(ops.cast(hits, self.dtype), sample_weight=weight)


def error_rates(
    hypotheses: Sequence[Sequence], references: Sequence[Sequence[Sequence]]
) -> dict[str, float]:
    """Phoneme and word error rates of one output per word against all its references.

    Each word is scored against the reference closest to it (`tf.edit_distance`, unnormalised).
    PER is the sum of those distances over the sum of those references' lengths; WER the share
    of words whose output matches none of their references.

    Args:
        hypotheses: sequence of token sequences (str phonemes or int ids). One output per word.
        references: sequence of sequences of token sequences. Each word's correct outputs (at
            least one, none empty).
    """
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("need one hypothesis per word and at least one word")
    words = np.repeat(np.arange(len(references)), [len(r) for r in references])
    flat = [list(reference) for word in references for reference in word]
    guesses = [list(hypotheses[w]) for w in words]
    sample = next(token for reference in flat for token in reference)
    dtype = tf.string if isinstance(sample, str) else tf.int64
    truth = tf.ragged.constant(flat, dtype=dtype, ragged_rank=1).to_sparse()
    guess = tf.ragged.constant(guesses, dtype=dtype, ragged_rank=1).to_sparse()
    distances = tf.edit_distance(guess, truth, normalize=False).numpy()
    lengths = np.array([len(reference) for reference in flat])
    # Per word, the closest reference: sort by (word, distance) and keep each word's first.
    order = np.lexsort((distances, words))
    closest = order[np.unique(words[order], return_index=True)[1]]
    return {
        "per": float(distances[closest].sum() / lengths[closest].sum()),
        "wer": float(np.mean(distances[closest] > 0)),
    }


def decode(
    model: Seq2Seq, spec: Seq2SeqSpec, source_ids: np.ndarray, beam_width: int = 1, **beam
) -> list[str]:
    """Decoded outputs of a batch of source ids: greedy for width 1, else beam search."""
    max_length = spec.max_target_length + 1  # the end token
    if beam_width == 1:
        ids = greedy_decode(model, source_ids, max_length)
    else:
        ids = beam_decode(model, source_ids, max_length, beam_width, **beam)
    return decode_targets(ids, spec)


def split_error_rates(
    model: Seq2Seq, spec: Seq2SeqSpec, config: RunConfig, split: str, beam_width: int, **beam
) -> dict[str, float]:
    """PER and WER of decoding every word of `split` (with `_no_stress` twins for a model
    that predicts stress: the published figures are on stress-free phonemes)."""
    words, truths = [], []
    for word, pronunciations in references(config.dataset, split, config.data).as_numpy_iterator():
        words.append(word.decode())
        truths.append([p.decode() for p in pronunciations])
    lookup = token_lookup(spec.source_vocabulary)
    outputs = [""] * len(words)
    order = sorted(range(len(words)), key=lambda i: len(words[i]))
    for start in range(0, len(order), DECODE_BATCH):
        batch = order[start : start + DECODE_BATCH]
        characters = split_source(tf.constant([words[i] for i in batch]))
        source = tf.cast(lookup(characters), tf.int32).to_tensor(PAD_ID)
        for i, text in zip(batch, decode(model, spec, source, beam_width, **beam), strict=True):
            outputs[i] = text

    def rates(strip: bool) -> dict[str, float]:
        def tokens(text: str) -> list[str]:
            return (strip_stress(text) if strip else text).split()

        return error_rates([tokens(o) for o in outputs], [[tokens(t) for t in ts] for ts in truths])

    if not spec.stress:
        return rates(strip=True)
    stripped = {f"{name}_no_stress": value for name, value in rates(strip=True).items()}
    return {**rates(strip=False), **stripped}


def sample_words(config: RunConfig, spec: Seq2SeqSpec, count: int = 5) -> list[str]:
    """The words TensorBoard shows decoded: `SAMPLE_WORDS` where the model reads them all
    (CMUdict's letters), else the first `count` validation sources it can read (your pairs)."""

    def readable(word: str) -> bool:
        try:
            encode_sources([word], spec)
        except UserError:
            return False
        return True

    if all(map(readable, SAMPLE_WORDS)):
        return list(SAMPLE_WORDS)
    validation = references(config.dataset, "validation", config.data).as_numpy_iterator()
    sources = (source.decode() for source, _ in validation)
    return list(itertools.islice(filter(readable, sources), count))


class TransductionSample(keras.callbacks.Callback):
    """Writes a few words' greedy outputs (the Text tab) and their attention weights (the
    Images tab: output tokens down, input letters across, white = 1) to TensorBoard after every
    epoch, the same words every epoch, so that the samples show what training changed.

    Args:
        log_dir: path. Where the event file goes (a run's `logs/samples`).
        spec: Seq2SeqSpec. The run's data spec.
        words: sequence of str. The words to decode (`sample_words`).
    """

    def __init__(self, log_dir: Path | str, spec: Seq2SeqSpec, words: Sequence[str]):
        super().__init__()
        self.log_dir = str(log_dir)
        self.spec = spec
        self.words = list(words)
        self.source = encode_sources(self.words, spec)
        self.writer = None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        outputs = decode(self.model, self.spec, self.source)
        rows = [f"| {w} | {o} |" for w, o in zip(self.words, outputs, strict=True)]
        with self.writer.as_default():
            tf.summary.text("outputs", "\n".join(["| word | output |", "|---|---|", *rows]), epoch)
            for word, source, output in zip(self.words, self.source, outputs, strict=True):
                weights = attention_weights(self.model, self.spec, source, output)
                # Each weight as an 8x8 block of grey, so that short words stay visible.
                image = np.kron(weights, np.ones((8, 8), np.float32))[None, :, :, None]
                tf.summary.image(f"attention/{word}", image, epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def attention_weights(model: Seq2Seq, spec: Seq2SeqSpec, source: np.ndarray, output: str):
    """`(output tokens + 1, source length)` attention weights of decoding `output` (a decoded
    string) from one row of source ids, end token last: the teacher-forced pass over the
    decoded tokens repeats the decoder's steps exactly."""
    tokens = token_lookup(spec.target_vocabulary)(tf.constant(output.split(), tf.string))
    decoder_inputs = np.concatenate([[START_ID], tokens.numpy()]).astype(np.int32)
    length = int(np.sum(source != PAD_ID))
    _, weights = model.teacher_forced(source[None, :length], decoder_inputs[None])
    return np.asarray(weights[0])


def transduce(
    run_dir: Path | str,
    words: Sequence[str],
    beam_width: int | None = None,
    plot_attention: Path | str | None = None,
) -> list[str]:
    """The outputs (phonemes) of `words` from a trained `seq2seq` run's best checkpoint.

    Args:
        run_dir: path. A trained `seq2seq` run.
        words: sequence of str. Inputs; lowercased if the training words were. An empty word,
            one longer than the model's `max_source_length` or with characters the model never
            saw raises `UserError` (nothing is truncated).
        beam_width: int. 1 decodes greedily; None uses the run's `model.beam_width`.
        plot_attention: path. Also draw each word's attention weights as a heatmap into this
            PNG file. Defaults to None.

    Returns:
        One string per word: tokens separated by spaces.
    """
    from bigmodel_tf.training.runs import load_run, load_trained

    family = load_run(run_dir).family
    if family != "seq2seq":
        raise UserError(f"{run_dir} is a {family!r} run; transduce needs a 'seq2seq' run")
    config, _, spec, model = load_trained(run_dir)
    width = config.model.beam_width if beam_width is None else beam_width
    if width < 1:
        raise UserError(f"beam width {width}: must be >= 1")
    source = encode_sources(words, spec)
    outputs = decode(model, spec, source, width, length_penalty=config.model.length_penalty)
    if plot_attention is not None:
        save_png(attention_figure(model, spec, words, source, outputs), Path(plot_attention))
    return outputs


def attention_figure(
    model: Seq2Seq,
    spec: Seq2SeqSpec,
    words: Sequence[str],
    source: np.ndarray,
    outputs: Sequence[str],
) -> Any:
    """One heatmap per word (output tokens down, input characters across) of decoding each
    `outputs` from its row of `source` ids, side by side: a matplotlib figure."""
    figure, axes = pyplot().subplots(1, len(words), figsize=(3 * len(words), 3), squeeze=False)
    for axis, word, ids, output in zip(axes[0], words, source, outputs, strict=True):
        weights = attention_weights(model, spec, ids, output)
        axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
        axis.set_xticks(range(weights.shape[1]), list(word.lower() if spec.lowercase else word))
        axis.set_yticks(range(weights.shape[0]), [*output.split(), END_TOKEN])
        axis.set_title(word)
    figure.tight_layout()
    return figure
