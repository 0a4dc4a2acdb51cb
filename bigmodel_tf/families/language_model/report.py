"""The language models' section of a run's report: text sampled by the best checkpoint at two
temperatures, a conservative one and the model's own distribution."""

from __future__ import annotations

import keras

from bigmodel_tf.families.language_model.components import sample_text
from bigmodel_tf.families.language_model.data import CharSpec
from bigmodel_tf.report.sections import Section, Text
from bigmodel_tf.training.config import RunConfig

# Below 1 the model keeps to what it is sure of (spelling, line shapes); at 1 it samples its own
# distribution, which shows what it has learnt and what it has not.
TEMPERATURES = (0.5, 1.0)
SAMPLE_LENGTH = 400


def sample_sections(config: RunConfig, spec: CharSpec, model: keras.Model) -> list[Section]:
    """One sample per temperature in `TEMPERATURES`, from the start of a line, seeded by the
    run's seed (the same run gives the same samples)."""
    seed = config.train.seed
    samples = [
        Text(f"temperature {t}", sample_text(model, spec.vocabulary, SAMPLE_LENGTH, t, seed))
        for t in TEMPERATURES
    ]
    note = f"{SAMPLE_LENGTH} characters from the start of a line, sampling seed {seed}."
    return [Section("Generated samples", samples, note=note)]
