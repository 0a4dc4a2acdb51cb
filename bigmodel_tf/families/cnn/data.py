"""Image classification data: any TFDS-style `(uint8 image, label)` dataset into batches.

Embedded and catalogue sets have one image shape; your own images (`images:DIR`) keep their
sizes in the cache and are resized here, to the most common size among them unless the model
asks for another (`model.image_size`, `model.channels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from bigmodel_tf.data import DataOptions, builder, load
from bigmodel_tf.data.own import source_info
from bigmodel_tf.data.pipeline import AUTOTUNE
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

# A run's input shape and class names, kept so that its model can be rebuilt without its data.
SPEC_FILE = "image_spec.json"


def normalize_images(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels in [0, 255] → float32 in [0, 1]; shared by the pipeline and the exports."""
    return tf.cast(images, tf.float32) / 255.0


@dataclass(frozen=True)
class ImageSpec:
    """What a model needs to know about an image dataset."""

    input_shape: tuple[int, int, int]
    labels: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def image_spec(
    dataset: str,
    options: DataOptions | None = None,
    *,
    image_size: int = 0,
    channels: int = 0,
    directory: Path | None = None,
) -> ImageSpec:
    """Input shape and labels of an image dataset, from its `DatasetInfo` (no examples read).

    Args:
        dataset: str. An image dataset (`mnist5k`, `images:DIR`, `tfds:cifar10`).
        options: DataOptions. How own data is read and split.
        image_size: int. Resize to `image_size` x `image_size` (0: the data's size).
        channels: int. 1 or 3 channels (0: the data's).
        directory: Path. A run directory: the spec is written there on the first call and
            read back afterwards, so that the run needs no data to rebuild its model.
    """
    path = directory / SPEC_FILE if directory else None
    if path is not None and path.is_file():
        saved = read_json(path)
        return ImageSpec(tuple(saved["input_shape"]), tuple(saved["labels"]))
    info = builder(dataset, options).info
    if "image" not in info.features or "label" not in info.features:
        raise UserError(f"{dataset} has no image and label features; the cnn needs labelled images")
    height, width, data_channels = info.features["image"].shape
    if height is None or width is None:
        height, width = source_info(dataset, options)["image_size"]
    if data_channels is None:
        raise UserError(f"{dataset}: images must have a fixed channel count")
    spec = ImageSpec(
        input_shape=(image_size or height, image_size or width, channels or data_channels),
        labels=tuple(info.features["label"].names),
    )
    if path is not None:
        write_json(path, {"input_shape": list(spec.input_shape), "labels": list(spec.labels)})
    return spec


def image_examples(
    dataset: str, split: str, spec: ImageSpec, options: DataOptions | None = None
) -> tf.data.Dataset:
    """Decoded `(uint8 image, label)` examples of `split` in `spec`'s shape, cached in memory."""
    examples, info = load(dataset, split, options)
    if tuple(info.features["image"].shape) != spec.input_shape:
        examples = examples.map(_resizer(spec.input_shape), num_parallel_calls=AUTOTUNE)
    # Cache the uint8 pixels (4x smaller than floats); normalise per batch, vectorised.
    return examples.cache()


def _resizer(shape: tuple[int, int, int]):
    height, width, channels = shape

    def resize(image: tf.Tensor, label: tf.Tensor):
        if image.shape[-1] != channels:
            convert = tf.image.grayscale_to_rgb if channels == 3 else tf.image.rgb_to_grayscale
            image = convert(image)
        image = tf.image.resize(image, (height, width), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    return resize


def image_batcher(batch_size: int):
    """Batches `(image, label)` examples and normalises each batch's pixels."""

    def batcher(examples: tf.data.Dataset) -> tf.data.Dataset:
        return examples.batch(batch_size).map(
            lambda images, labels: (normalize_images(images), labels),
            num_parallel_calls=AUTOTUNE,
        )

    return batcher
