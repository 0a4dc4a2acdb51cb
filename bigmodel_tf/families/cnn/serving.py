"""The CNN's serving side: `serve(images) -> probabilities` on uint8 images."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.export.serving import ClassificationServing
from bigmodel_tf.families.cnn.data import ImageSpec, image_examples, normalize_images
from bigmodel_tf.training.config import RunConfig


class CnnServing(ClassificationServing):
    int8_budget = 0.005  # half a point of accuracy

    def serving_endpoints(self, model: keras.Model, spec: ImageSpec) -> dict[str, tuple[Any, list]]:
        def serve(images):
            return {"probabilities": model(self.model_inputs({"images": images}), training=False)}

        signature = [tf.TensorSpec((None, *spec.input_shape), tf.uint8, name="images")]
        return {"serve": (serve, signature)}

    def model_inputs(self, inputs: dict[str, Any]) -> tf.Tensor:
        return normalize_images(inputs["images"])

    def metadata(self, config: RunConfig, spec: ImageSpec) -> dict[str, Any]:
        return {
            "inputs": {"images": {"dtype": "uint8", "shape": [None, *spec.input_shape]}},
            "outputs": {"probabilities": {"dtype": "float32", "shape": [None, spec.num_classes]}},
            "labels": list(spec.labels),
        }

    def spec_from_metadata(self, metadata: dict[str, Any]) -> ImageSpec:
        return ImageSpec(
            input_shape=tuple(metadata["inputs"]["images"]["shape"][1:]),
            labels=tuple(metadata["labels"]),
        )

    def raw_batches(
        self, config: RunConfig, spec: ImageSpec, split: str, batch_size: int
    ) -> tf.data.Dataset:
        return (
            image_examples(config.dataset, split, spec, config.data)
            .batch(batch_size)
            .map(lambda images, labels: ({"images": images}, labels))
        )
