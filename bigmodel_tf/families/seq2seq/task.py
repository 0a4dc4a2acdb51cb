"""The Seq2Seq's training task: teacher forcing, and decoding for the test metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf import registry
from bigmodel_tf.data.pipeline import Batcher
from bigmodel_tf.families.seq2seq import model as seq2seq
from bigmodel_tf.families.seq2seq.data import (
    Seq2SeqSpec,
    transduction_batcher,
    transduction_examples,
    transduction_spec,
)
from bigmodel_tf.families.seq2seq.report import example_sections
from bigmodel_tf.families.seq2seq.serving import Seq2SeqServing
from bigmodel_tf.families.seq2seq.transduction import (
    MaskedAccuracy,
    MaskedCrossentropy,
    TransductionSample,
    sample_words,
    split_error_rates,
)
from bigmodel_tf.report.sections import Section
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.task import TrainingTask


class Seq2SeqTask(TrainingTask):
    """Grapheme-to-phoneme conversion with `Seq2Seq`: a word's letters in, its phonemes out.

    Trains by teacher forcing on one example per pronunciation, with the cross-entropy and
    token accuracy of the non-padding targets. Its test metrics add the phoneme and word error
    rates of greedy and beam-search decoding (`transduction.split_error_rates`), each
    word scored against its closest pronunciation.
    """

    family = "seq2seq"
    config_class = seq2seq.Seq2SeqConfig
    presets = seq2seq.PRESETS
    default_dataset = "cmudict"
    # Token accuracy, not loss, picks the checkpoint: the validation loss bottoms out an epoch
    # or two before the end (the model grows overconfident) while accuracy, and with it the
    # phoneme and word error rates, still improve. With a 3-layer encoder the last epoch had
    # beam PER/WER 6.11%/25.8% on the validation split, the lowest-loss one 6.18%/26.2%.
    monitor = "val_accuracy"
    monitor_mode = "max"
    train_defaults = {
        # 12 epochs of the 3-layer encoder fit the hour of training the G2P target allows on
        # 2 cores (docs/results.md).
        "epochs": 12,
        "batch_size": 128,
        "optimizer": "adam",
        "learning_rate": 2e-3,
        # Without it the validation loss jumped at epoch 2 (0.38 to 0.49).
        "warmup_epochs": 0.5,
        "global_clipnorm": 5.0,
    }
    # XLA fuses each recurrent step's small ops; bf16 saves little on matmuls this small, and
    # under XLA (Eigen's bf16 dots, not oneDNN's) it loses.
    mixed_precision_pays = False
    jit_pays = {"float32": True}

    def prepare(self, config: RunConfig, run_dir: Path) -> Seq2SeqSpec:
        model = config.model
        return transduction_spec(
            config.dataset,
            run_dir,
            model.max_source_length,
            model.max_target_length,
            model.stress,
            config.data,
        )

    def examples(self, config: RunConfig, split: str, spec: Seq2SeqSpec) -> tf.data.Dataset:
        return transduction_examples(config.dataset, split, spec, config.data)

    def batcher(self, config: RunConfig, spec: Seq2SeqSpec, batch_size: int) -> Batcher:
        return transduction_batcher(batch_size)

    def build_model(self, config: RunConfig, spec: Seq2SeqSpec) -> keras.Model:
        m = config.model
        model = seq2seq.Seq2Seq(
            spec.source_vocabulary_size,
            spec.target_vocabulary_size,
            embedding_dim=m.embedding_dim,
            units=m.units,
            encoder_layers=m.encoder_layers,
            rnn=m.rnn,
            attention=m.attention,
            attention_units=m.attention_units,
            dropout=m.dropout,
        )
        model.build(((None, None), (None, None)))
        return model

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {
            "loss": MaskedCrossentropy(config.model.label_smoothing),
            "metrics": [MaskedAccuracy()],
        }

    def callbacks(
        self, config: RunConfig, spec: Seq2SeqSpec, run_dir: Path
    ) -> list[keras.callbacks.Callback]:
        words = sample_words(config, spec)
        return [TransductionSample(run_dir / "logs" / "samples", spec, words)] if words else []

    def extra_metrics(
        self, config: RunConfig, spec: Seq2SeqSpec, model: keras.Model, split: str
    ) -> dict[str, float]:
        greedy = split_error_rates(model, spec, config, split, beam_width=1)
        beam = split_error_rates(
            model,
            spec,
            config,
            split,
            beam_width=config.model.beam_width,
            length_penalty=config.model.length_penalty,
        )
        return {
            **{f"greedy_{name}": value for name, value in greedy.items()},
            **{f"beam_{name}": value for name, value in beam.items()},
        }

    def report_sections(
        self, config: RunConfig, spec: Seq2SeqSpec, model: keras.Model, run_dir: Path
    ) -> list[Section]:
        return example_sections(config, spec, model)


registry.register(Seq2SeqTask(), Seq2SeqServing())
