"""The Seq2Seq's section of a run's report: a few words decoded greedily, with the attention
weights of each output token over the input letters."""

from __future__ import annotations

import keras

from bigmodel_tf.families.seq2seq.data import Seq2SeqSpec, encode_sources
from bigmodel_tf.families.seq2seq.transduction import attention_figure, decode, sample_words
from bigmodel_tf.pictures import png_bytes
from bigmodel_tf.report.sections import Image, Section, Table
from bigmodel_tf.training.config import RunConfig


def example_sections(config: RunConfig, spec: Seq2SeqSpec, model: keras.Model) -> list[Section]:
    """The words TensorBoard follows through training (`sample_words`), decoded by the best
    checkpoint, and their attention heatmaps; none where the model can read none of them."""
    words = sample_words(config, spec)
    if not words:
        return []
    source = encode_sources(words, spec)
    outputs = decode(model, spec, source)
    heatmaps = attention_figure(model, spec, words, source, outputs)
    return [
        Section(
            "Examples",
            [
                Table(
                    "outputs", ["input", "greedy output"], list(zip(words, outputs, strict=True))
                ),
                Image(
                    "attention",
                    png_bytes(heatmaps),
                    "Attention weights: output tokens down, input characters across; bright = 1.",
                ),
            ],
            note="Greedy decoding by the best checkpoint; TensorBoard shows the same words "
            "after every epoch (samples/).",
            # TransductionSample already logs these words to TensorBoard after every epoch.
            tensorboard=False,
        )
    ]
