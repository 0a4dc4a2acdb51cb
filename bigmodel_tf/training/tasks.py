"""How each model family plugs into the one trainer: data, model, loss, metrics, serving.

The trainer, `evaluate` and `export` only ever talk to a `Task`; a new family adds a subclass
and an entry in `TASKS`, and nothing in the core changes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.data.images import (
    ImageSpec,
    image_batcher,
    image_examples,
    image_spec,
    normalize_images,
)
from bigmodel_tf.data.pipeline import Batcher
from bigmodel_tf.models import cnn
from bigmodel_tf.training.config import RunConfig


class Task(abc.ABC):
    """One model family. Subclasses set the class attributes and implement the methods."""

    family: str
    config_class: type
    presets: dict[str, dict]
    default_dataset: str
    # TrainConfig values that suit this family better than the generic defaults.
    train_defaults: dict[str, Any] = {}
    # The validation metric that picks the best checkpoint, and whether higher is better.
    # Loss, not accuracy: on mnist5k's 500 validation images accuracy saturates at 1.0 and picked
    # an early checkpoint (test 0.985) over a later one (test 0.989).
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    # Export: the endpoint that is also converted to TFLite, and the export report's quality
    # metric (a key of `quality()`), its direction and how much full-int8 quantisation may cost.
    tflite_endpoint: str = "serve"
    quality_metric: str
    quality_higher_is_better: bool = True
    int8_budget: float

    @abc.abstractmethod
    def prepare(self, config: RunConfig, run_dir: Path) -> Any:
        """Returns the data spec the model is built from (shapes, labels, vocabulary).

        Whatever the spec needs on disk (a vocabulary built from the training split) is written
        under `run_dir` on the first call and read back afterwards.
        """

    @abc.abstractmethod
    def examples(self, config: RunConfig, split: str, spec: Any) -> tf.data.Dataset:
        """Unbatched, cached `(inputs, targets)` examples of a split."""

    @abc.abstractmethod
    def batcher(self, config: RunConfig, spec: Any, batch_size: int) -> Batcher:
        """Turns examples into batches of `batch_size` (the global batch)."""

    @abc.abstractmethod
    def build_model(self, config: RunConfig, spec: Any) -> keras.Model:
        """A built (weights created) model; called inside the strategy scope."""

    @abc.abstractmethod
    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        """`loss` and `metrics` for `model.compile`."""

    @abc.abstractmethod
    def serving_endpoints(self, model: keras.Model, spec: Any) -> dict[str, tuple[Any, list]]:
        """Export endpoints `{name: (function, input_signature)}` taking raw inputs."""

    @abc.abstractmethod
    def metadata(self, spec: Any) -> dict[str, Any]:
        """What an exported model's users need to know (labels, input specs), as JSON."""

    @abc.abstractmethod
    def spec_from_metadata(self, metadata: dict[str, Any]) -> Any:
        """The spec back from an export's `metadata.json` (an export needs no run directory)."""

    @abc.abstractmethod
    def raw_batches(
        self, config: RunConfig, spec: Any, split: str, batch_size: int
    ) -> tf.data.Dataset:
        """`(inputs, targets)` batches as `tflite_endpoint` takes them: raw inputs by name."""

    @abc.abstractmethod
    def predict(
        self,
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        batches: list[tuple[dict[str, np.ndarray], np.ndarray]],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Runs an exported `tflite_endpoint` over `batches` → `(outputs, targets)`, where
        `outputs` is what variants are compared on (probabilities, logits), one row a target."""

    @abc.abstractmethod
    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """The family's quality metrics of `predict`'s outputs."""


class CnnTask(Task):
    family = "cnn"
    config_class = cnn.CnnConfig
    presets = cnn.PRESETS
    default_dataset = "mnist5k"
    quality_metric = "accuracy"
    int8_budget = 0.005  # the limit: half a point of accuracy
    # Measured on mnist5k (README): 30 epochs of AdamW with cosine decay reach >= 0.985.
    train_defaults = {
        "epochs": 30,
        "batch_size": 64,
        "optimizer": "adamw",
        "learning_rate": 3e-3,
        "weight_decay": 1e-4,
        "warmup_epochs": 1.0,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> ImageSpec:
        return image_spec(config.dataset)

    def examples(self, config: RunConfig, split: str, spec: ImageSpec) -> tf.data.Dataset:
        return image_examples(config.dataset, split)

    def batcher(self, config: RunConfig, spec: ImageSpec, batch_size: int) -> Batcher:
        return image_batcher(batch_size)

    def build_model(self, config: RunConfig, spec: ImageSpec) -> keras.Model:
        return cnn.build_cnn(config.model, spec.input_shape, spec.num_classes, config.train.seed)

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def serving_endpoints(self, model: keras.Model, spec: ImageSpec) -> dict[str, tuple[Any, list]]:
        def serve(images):
            return {"probabilities": model(normalize_images(images), training=False)}

        signature = [tf.TensorSpec((None, *spec.input_shape), tf.uint8, name="images")]
        return {"serve": (serve, signature)}

    def metadata(self, spec: ImageSpec) -> dict[str, Any]:
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
            image_examples(config.dataset, split)
            .batch(batch_size)
            .map(lambda images, labels: ({"images": images}, labels))
        )

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        outputs = [run(inputs)["probabilities"] for inputs, _ in batches]
        return np.concatenate(outputs), np.concatenate([labels for _, labels in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(outputs.argmax(-1) == targets))}


TASKS: dict[str, Task] = {task.family: task for task in (CnnTask(),)}
