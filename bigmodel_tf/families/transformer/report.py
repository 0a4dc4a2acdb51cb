"""The Transformer classifier's section of a run's report: the test split's confusion matrix and
the test texts the best checkpoint gets most confidently wrong."""

from __future__ import annotations

import keras
import numpy as np

from bigmodel_tf.families.transformer.data import SubwordSpec, labelled_texts
from bigmodel_tf.families.transformer.serving import ClassifierServing
from bigmodel_tf.report.classification import classifier_section, examples_at, predict_split
from bigmodel_tf.report.sections import Section, Table
from bigmodel_tf.training.config import RunConfig

# Characters of a text the table shows; longer ones end with an ellipsis.
SHOWN_CHARACTERS = 300


def text_sections(config: RunConfig, spec: SubwordSpec, model: keras.Model) -> list[Section]:
    """The confusion matrix and a table of the most confidently wrong test texts."""
    probabilities, labels = predict_split(ClassifierServing(), config, spec, model, "test")
    names = spec.labels

    def show_wrong(indices: np.ndarray) -> Table:
        test = labelled_texts(config.dataset, "test", config.data)
        rows = []
        for index, (text, _) in zip(indices, examples_at(test, indices), strict=True):
            text = text.decode("utf-8", errors="replace")
            if len(text) > SHOWN_CHARACTERS:
                text = text[: SHOWN_CHARACTERS - 1] + "…"
            row = probabilities[index]
            rows.append([text, names[labels[index]], names[row.argmax()], float(row.max())])
        return Table(
            "most_confidently_wrong",
            ["text", "true", "predicted", "probability"],
            rows,
            "The wrong test texts of highest confidence.",
        )

    return [classifier_section(probabilities, labels, names, show_wrong)]
