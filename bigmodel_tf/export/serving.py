"""The serving side of a model family's task: what `export` and its report ask of a family.

Endpoints and metadata of the exported model, and how the export report drives the exported
endpoints over test batches and scores what they return. As Model Garden keeps
`official/vision/serving/` apart from its tasks, this is apart from the training side
(`training.task.TrainingTask`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# One token id per row: what a decoder step takes.
TOKEN = tf.TensorSpec((None,), tf.int32, name="token")


class ServingTask(abc.ABC):
    """How one family's runs are exported and measured. Subclasses set the class attributes
    and implement the abstract methods."""

    # The endpoints that are also converted to TFLite (one file, each a signature; a call runs
    # the one whose input names it is given), and the export report's quality metric (a key of
    # `quality()`), its direction and how much full-int8 quantisation may cost.
    tflite_endpoints: tuple[str, ...] = ("serve",)
    quality_metric: str
    quality_higher_is_better: bool = True
    int8_budget: float
    # Full int8 with one scale per output channel of each weight (TFLite's default) or per
    # tensor. Per tensor where the graph uses a weight many times (see the Seq2Seq's).
    int8_per_channel: bool = True
    # TFLite ops the full-int8 file keeps in float (`export.tflite.convert`'s `float_ops`).
    int8_float_ops: tuple[str, ...] = ()
    # Whether the report's quality is measured on the same examples as the training run's test
    # metric of the same name, so that `verify` can check the SavedModel against the run.
    quality_is_test_metric: bool = True

    @abc.abstractmethod
    def serving_endpoints(self, model: keras.Model, spec: Any) -> dict[str, tuple[Any, list]]:
        """Export endpoints `{name: (function, input_signature)}` taking raw inputs."""

    def model_inputs(self, inputs: dict[str, np.ndarray]) -> Any:
        """The Keras model's own input for a batch of `raw_batches` inputs, as `model(x)` and
        `model.predict(x)` take it; None where what is deployed is not one call of the model but
        a loop of stateful steps (the language models, Seq2Seq)."""
        return None

    @abc.abstractmethod
    def metadata(self, config: Any, spec: Any) -> dict[str, Any]:
        """What an exported model's users need to know (labels, input specs), as JSON."""

    @abc.abstractmethod
    def spec_from_metadata(self, metadata: dict[str, Any]) -> Any:
        """The spec back from an export's `metadata.json` (an export needs no run directory)."""

    @abc.abstractmethod
    def raw_batches(self, config: Any, spec: Any, split: str, batch_size: int) -> tf.data.Dataset:
        """`(inputs, targets)` batches of raw inputs by name, as `predict` feeds them to the
        `tflite_endpoints`.

        The export report measures every variant on the `test` batches; int8 calibration uses
        the `train` batches as `predict` feeds them to the Keras model (see `predict`).
        """

    @abc.abstractmethod
    def predict(
        self,
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        batches: list[tuple[dict[str, np.ndarray], np.ndarray]],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Runs the exported `tflite_endpoints` over `batches` → `(outputs, targets)`, where
        `outputs` is what variants are compared on (probabilities, logits), one row a target.

        Calls `run` with all of one endpoint's inputs at a time, in order: once per batch for
        a classifier; a stateful endpoint gets the states `run` returned for the previous batch
        in place of the batch's own; a decoder encodes each batch, then steps until every
        sequence ended.
        """

    @abc.abstractmethod
    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """The family's quality metrics of `predict`'s outputs."""


class ClassificationServing(ServingTask):
    """A family whose model outputs class `probabilities`, scored by accuracy."""

    quality_metric = "accuracy"

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        outputs = [run(inputs)["probabilities"] for inputs, _ in batches]
        return np.concatenate(outputs), np.concatenate([labels for _, labels in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(outputs.argmax(-1) == targets))}


def specs_json(specs: Sequence[tf.TensorSpec]) -> dict[str, dict[str, Any]]:
    """Tensor specs as `metadata.json` describes inputs and outputs: `{name: {dtype, shape}}`."""
    return {s.name: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for s in specs}


def state_names(num_layers: int) -> list[str]:
    """The names of a recurrent step's states as its endpoints take and return them."""
    return [f"state_{layer}" for layer in range(1, num_layers + 1)]
