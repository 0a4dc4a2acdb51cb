"""The CNN's section of a run's report: the test split's confusion matrix and the test images
the best checkpoint gets most confidently wrong."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from bigmodel_tf.families.cnn.data import ImageSpec, image_examples
from bigmodel_tf.families.cnn.serving import CnnServing
from bigmodel_tf.pictures import png_bytes, pyplot
from bigmodel_tf.report.classification import (
    classifier_section,
    examples_at,
    predict_split,
    wrong_caption,
)
from bigmodel_tf.report.sections import Image, Section
from bigmodel_tf.training.config import RunConfig

COLUMNS = 6


def image_sections(config: RunConfig, spec: ImageSpec, model: keras.Model) -> list[Section]:
    """The confusion matrix and a grid of the most confidently wrong test images."""
    probabilities, labels = predict_split(CnnServing(), config, spec, model, "test")

    def show_wrong(indices: np.ndarray) -> Image:
        test = image_examples(config.dataset, "test", spec, config.data)
        images = [image for image, _ in examples_at(test, indices)]
        captions = [wrong_caption(spec.labels, labels[i], probabilities[i]) for i in indices]
        return Image(
            "most_confidently_wrong",
            png_bytes(_grid(images, captions)),
            "The wrong test images of highest confidence: true → predicted (probability).",
        )

    return [classifier_section(probabilities, labels, spec.labels, show_wrong)]


def _grid(images: list[np.ndarray], captions: list[str]) -> Any:
    """`images` (uint8, `(height, width, channels)`) in rows of `COLUMNS`, each captioned."""
    rows = math.ceil(len(images) / COLUMNS)
    columns = min(len(images), COLUMNS)
    figure, axes = pyplot().subplots(
        rows, columns, figsize=(2 * columns, 2.2 * rows), dpi=100, squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption in zip(axes.flat, images, captions, strict=False):
        grey = image.shape[-1] == 1
        axis.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None)
        axis.set_title(caption, fontsize=8)
    figure.tight_layout()
    return figure
