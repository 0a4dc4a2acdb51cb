"""The Transformer families' serving side: the classifier's `serve` on strings and `tokens` on
ids, the causal language model's `generate` and `step` with a key/value cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.export.serving import TOKEN, ClassificationServing, specs_json
from bigmodel_tf.families import transformer
from bigmodel_tf.families.language_model.serving import STREAM_STEPS, LanguageModelServing
from bigmodel_tf.families.transformer.data import SubwordSpec, subword_examples
from bigmodel_tf.families.transformer.text_classifier import TextClassifier
from bigmodel_tf.training.config import RunConfig

# The Transformer ops that LiteRT's XNNPACK (x86) runs only in float, kept in float in the int8
# files: int8 they would run on reference kernels, slower than float32 on XNNPACK. Attention's
# softmax and its two batch matmuls (int8 XNNPACK refuses a right-hand side with a non-zero zero
# point, which calibrated activations have), GELU, and LayerNorm's variance and 1/sqrt. And
# LayerNorm's means (MEAN) for accuracy: one int8 scale for the variances of every row rounds a
# row's variance to a few steps of ~0.5-1 once training has grown the residual stream, the
# largest per-layer error the quantisation debugger finds in a trained language model.
TRANSFORMER_FLOAT_OPS = ("SOFTMAX", "BATCH_MATMUL", "GELU", "SQUARED_DIFFERENCE", "RSQRT", "MEAN")

TOKEN_IDS = tf.TensorSpec((None, None), tf.int32, name="token_ids")
TEXTS = tf.TensorSpec((None,), tf.string, name="texts")


class ClassifierServing(ClassificationServing):
    """Exports two endpoints: `serve(texts) -> probabilities, label` on strings (the SavedModel's
    default signature; it tokenises in the graph with tensorflow-text ops, which TFLite cannot
    run here) and `tokens(token_ids) -> probabilities` on `(batch, time)` int32 ids padded with
    0, the one converted to TFLite, which ships with the vocabulary in `metadata.json`.
    """

    tflite_endpoints = ("tokens",)
    int8_budget = 0.005  # half a point of accuracy, as for the CNN
    int8_float_ops = TRANSFORMER_FLOAT_OPS

    def serving_endpoints(
        self, model: keras.Model, spec: SubwordSpec
    ) -> dict[str, tuple[Any, list]]:
        def tokens(token_ids):
            return {"probabilities": model(token_ids, training=False)}

        return {"serve": (TextClassifier(model, spec), [TEXTS]), "tokens": (tokens, [TOKEN_IDS])}

    def model_inputs(self, inputs: dict[str, Any]) -> Any:
        return inputs["token_ids"]

    def metadata(self, config: RunConfig, spec: SubwordSpec) -> dict[str, Any]:
        probabilities = tf.TensorSpec((None, spec.num_classes), tf.float32, name="probabilities")
        return {
            # `tokens`, as the SavedModel and every .tflite file take it.
            "inputs": specs_json([TOKEN_IDS]),
            "outputs": specs_json([probabilities]),
            # SavedModel only (the default signature).
            "serve": {
                "inputs": specs_json([TEXTS]),
                "outputs": {
                    **specs_json([probabilities]),
                    "label": {"dtype": "string", "shape": [None]},
                },
            },
            "labels": list(spec.labels),
            "vocabulary": list(spec.vocabulary),
            "pad_id": PAD_ID,
            "cls_id": spec.cls_id,
            "sep_id": spec.sep_id,
            "sequence_length": spec.sequence_length,
        }

    def spec_from_metadata(self, metadata: dict[str, Any]) -> SubwordSpec:
        import tensorflow_text  # noqa: F401  the SavedModel's tokenizer ops, needed to load it

        return SubwordSpec(
            vocabulary=tuple(metadata["vocabulary"]),
            labels=tuple(metadata["labels"]),
            sequence_length=metadata["sequence_length"],
            end_token=metadata.get("sep_id") is not None,
        )

    def raw_batches(
        self, config: RunConfig, spec: SubwordSpec, split: str, batch_size: int
    ) -> tf.data.Dataset:
        """Batches padded to `sequence_length`: one width for every batch, as int8 calibration
        and the report's latency inputs (rows drawn from several batches) need."""
        return (
            subword_examples(config.dataset, split, spec, options=config.data)
            .padded_batch(batch_size, padded_shapes=([spec.sequence_length], []))
            .map(lambda ids, labels: ({"token_ids": ids}, labels))
        )


def _transformer_step_signature(cache_shape: tuple[int, ...]) -> list[tf.TensorSpec]:
    """`TOKEN`, the float32 key/value `cache (batch, *cache_shape)` and the int32 `position`."""
    return [
        TOKEN,
        tf.TensorSpec((None, *cache_shape), tf.float32, name="cache"),
        tf.TensorSpec((), tf.int32, name="position"),
    ]


class CausalLmServing(LanguageModelServing):
    """The state of `step` is the key/value `cache` of the positions before `position`: `step`
    writes the token's keys and values at `position` and returns `position + 1`. It does not
    slide the window as generation does, so the export report's streams stop at the context
    (`sequence_length`) if it is shorter than `STREAM_STEPS`.
    """

    int8_float_ops = TRANSFORMER_FLOAT_OPS

    def stream_steps(self, config: RunConfig) -> int:
        return min(STREAM_STEPS, config.model.sequence_length)

    def step_signature(self, config: RunConfig) -> list[tf.TensorSpec]:
        model = config.model
        shape = transformer.cache_shape(
            model.num_layers, model.num_heads, model.hidden_dim, model.sequence_length
        )
        return _transformer_step_signature(shape)

    def step_endpoint(self, model: keras.Model) -> tuple[Callable, list[tf.TensorSpec]]:
        def step(token, cache, position):  # (batch,), (batch, *cache_shape), ()
            logits, cache = model.cached_step(token, cache, position)
            return {"logits": logits, "cache": cache, "position": position + 1}

        return step, _transformer_step_signature(model.backbone.cache_shape)
