"""The serving side every character-level language-model family shares: `generate` on
strings and `step`, one token from a carried state."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.export.serving import ServingTask, specs_json
from bigmodel_tf.families.language_model.components import TextGenerator
from bigmodel_tf.families.language_model.data import CharSpec, char_streams
from bigmodel_tf.training.config import RunConfig

# Characters each parallel stream predicts in the export report and in int8 calibration: twice
# the GRU's default training window, so that quality includes what generation relies on, states
# carried past the window the model was trained on.
STREAM_STEPS = 200

GENERATE_SIGNATURE = (
    tf.TensorSpec((), tf.string, name="prompt"),
    tf.TensorSpec((), tf.int32, name="length"),
    tf.TensorSpec((), tf.float32, name="temperature"),
    tf.TensorSpec((), tf.int32, name="seed"),
)


class LanguageModelServing(ServingTask):
    """Exports two endpoints: `generate(prompt, length, temperature, seed) -> text` on strings
    (SavedModel only: string ops cannot run in TFLite here) and `step(token, *state) -> logits,
    *state`, one token from a carried state, the one converted to TFLite, which ships with the
    vocabulary in `metadata.json`. Subclasses say what the state is (`step_signature`,
    `step_endpoint`).

    The export report runs `step` over `stream_steps` characters of `batch_size` parallel
    streams of the test text (evenly spaced over it), each starting from a zero state and
    carrying it, as generation does; every variant carries its own state, so quantisation
    errors compound as they would on a device. Quality is the mean cross-entropy of those
    predictions, in nats/char.
    """

    tflite_endpoints = ("step",)
    quality_metric = "loss"  # nats/char
    quality_higher_is_better = False
    # 0.05 nats/char: ~3% of the <= 1.6 the default presets aim at.
    int8_budget = 0.05
    # Streams with carried states, not training's windows from zero states: different numbers.
    quality_is_test_metric = False

    @abc.abstractmethod
    def step_signature(self, config: RunConfig) -> list[tf.TensorSpec]:
        """`TOKEN`, then the state's tensors, as `step` takes and returns them."""

    @abc.abstractmethod
    def step_endpoint(self, model: keras.Model) -> tuple[Callable, list[tf.TensorSpec]]:
        """`step(token, *state) -> {"logits": (batch, vocab), **state}` and its signature
        (`step_signature`'s, from the model's own dimensions)."""

    def stream_steps(self, config: RunConfig) -> int:
        """Characters each stream of the export report predicts."""
        return STREAM_STEPS

    def serving_endpoints(self, model: keras.Model, spec: CharSpec) -> dict[str, tuple[Any, list]]:
        return {
            "generate": (TextGenerator(model, spec.vocabulary), list(GENERATE_SIGNATURE)),
            "step": self.step_endpoint(model),
        }

    def metadata(self, config: RunConfig, spec: CharSpec) -> dict[str, Any]:
        step = self.step_signature(config)
        logits = tf.TensorSpec((None, spec.vocabulary_size), tf.float32, name="logits")
        return {
            # `step`, as the SavedModel and every .tflite file take it.
            "inputs": specs_json(step),
            "outputs": specs_json([logits, *step[1:]]),
            # SavedModel only.
            "generate": {
                "inputs": specs_json(GENERATE_SIGNATURE),
                "outputs": {"text": {"dtype": "string", "shape": []}},
            },
            "vocabulary": list(spec.vocabulary),
            "oov_id": spec.oov_id,
            "sequence_length": spec.sequence_length,
        }

    def spec_from_metadata(self, metadata: dict[str, Any]) -> CharSpec:
        return CharSpec(
            vocabulary=tuple(metadata["vocabulary"]),
            oov_id=metadata["oov_id"],
            sequence_length=metadata["sequence_length"],
        )

    def raw_batches(
        self, config: RunConfig, spec: CharSpec, split: str, batch_size: int
    ) -> tf.data.Dataset:
        """One batch per step of `batch_size` parallel streams (`char_streams`: fewer for a
        split too short for them). The first
        step's state is zeros; the later steps' is empty (no rows), as `predict` replaces it by
        the carried one: a Transformer's key/value cache per step would hold hundreds of
        megabytes for each of hundreds of steps."""
        tokens, targets = char_streams(
            config.dataset, split, spec, batch_size, self.stream_steps(config), config.data
        )
        steps = tf.data.Dataset.from_tensor_slices((tokens, targets))

        def with_state(rows: int) -> Callable:
            state = {  # (rows, ...) zeros, or a scalar zero
                tensor.name: tf.zeros(
                    [rows if n is None else n for n in tensor.shape], tensor.dtype
                )
                for tensor in self.step_signature(config)[1:]
            }
            return lambda token, target: ({"token": token, **state}, target)

        first, rest = steps.take(1), steps.skip(1)
        streams = tokens.shape[1]
        return first.map(with_state(streams)).concatenate(rest.map(with_state(0)))

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        logits, carried = [], {}
        for inputs, _ in batches:
            state = [value for name, value in inputs.items() if name != "token"]
            # A state with rows starts the streams afresh (their first step, `raw_batches`);
            # an empty one continues them from the state the last step returned.
            fresh = not carried or any(np.ndim(value) and len(value) for value in state)
            outputs = run(inputs if fresh else {**inputs, **carried})
            carried = {name: value for name, value in outputs.items() if name != "logits"}
            logits.append(outputs["logits"])  # (streams, vocab)
        return np.concatenate(logits), np.concatenate([targets for _, targets in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        logits = outputs.astype(np.float64)
        peak = logits.max(-1)
        log_normaliser = peak + np.log(np.exp(logits - peak[:, None]).sum(-1))
        nats = float(np.mean(log_normaliser - logits[np.arange(len(targets)), targets]))
        return {"loss": nats, "bits_per_char": nats / np.log(2.0)}
