"""The Seq2Seq's serving side: `transduce` on strings, `encode` and `step` for TFLite, and
greedy decoding through them for the export report."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.export.serving import TOKEN, ServingTask, specs_json, state_names
from bigmodel_tf.families.seq2seq.data import (
    END_ID,
    OOV_ID,
    START_ID,
    Seq2SeqSpec,
    reference_batches,
)
from bigmodel_tf.families.seq2seq.decoding import greedy_steps
from bigmodel_tf.families.seq2seq.endpoints import Transducer, UnrolledEncoder
from bigmodel_tf.families.seq2seq.transduction import error_rates
from bigmodel_tf.training.config import RunConfig


class Seq2SeqServing(ServingTask):
    """Exports `transduce(words, beam_width, length_penalty) -> phonemes` on strings (SavedModel
    only: string ops cannot run in TFLite here) and two endpoints that every `.tflite` file
    holds as signatures: `encode`, the encoder unrolled over `max_source_length` characters,
    and `step`, one decoder step; the vocabularies ship in `metadata.json`. The export report
    decodes every test word greedily through `encode` and `step`, and its quality is the
    greedy phoneme error rate.
    """

    tflite_endpoints = ("encode", "step")
    # Greedy PER, as the training run's test metric of the same name.
    quality_metric = "greedy_per"
    quality_higher_is_better = False
    int8_budget = 0.005  # half a point of phoneme error rate
    # The unrolled encoder uses each GRU kernel at 64 steps, and TFLite stores every use's 768
    # per-channel scales and int64 zero points apart (1.3 MB): per channel the int8 file was
    # 0.45x the float32 one, per tensor 0.295x, with greedy PER +0.05 points (test split).
    int8_per_channel = False

    def serving_endpoints(
        self, model: keras.Model, spec: Seq2SeqSpec
    ) -> dict[str, tuple[Any, list]]:
        encode_signature, step_signature = _seq2seq_signatures(model, spec.max_source_length)
        names = [tensor.name for tensor in step_signature[1:-3]]

        def step(token, *inputs):  # (batch,), the states, value, keys, source
            *states, value, keys, source = inputs
            mask = tf.not_equal(source, PAD_ID)
            logits, states, _ = model.step(token, states, value, keys, mask)
            return {"logits": logits, **dict(zip(names, states, strict=True))}

        return {
            "transduce": (Transducer(model, spec), list(TRANSDUCE_SIGNATURE)),
            "encode": (
                UnrolledEncoder(model, names),
                encode_signature,
            ),
            "step": (step, step_signature),
        }

    def metadata(self, config: RunConfig, spec: Seq2SeqSpec) -> dict[str, Any]:
        encode, step = _seq2seq_signatures(config.model, spec.max_source_length)
        states = step[1:-3]
        value, keys = step[-3:-1]
        logits = tf.TensorSpec((None, spec.target_vocabulary_size), tf.float32, name="logits")
        return {
            # `encode` and `step`, as the SavedModel and every .tflite file take them.
            "inputs": {"encode": specs_json(encode), "step": specs_json(step)},
            "outputs": {
                "encode": specs_json([value, keys, *states]),
                "step": specs_json([logits, *states]),
            },
            # SavedModel only.
            "transduce": {
                "inputs": specs_json(TRANSDUCE_SIGNATURE),
                "outputs": {"phonemes": {"dtype": "string", "shape": [None]}},
            },
            "source_vocabulary": list(spec.source_vocabulary),
            "target_vocabulary": list(spec.target_vocabulary),
            "special_ids": {
                "pad": PAD_ID,
                "oov": OOV_ID,
                "start": START_ID,
                "end": END_ID,
            },
            "max_source_length": spec.max_source_length,
            "max_target_length": spec.max_target_length,
            "stress": spec.stress,
        }

    def spec_from_metadata(self, metadata: dict[str, Any]) -> Seq2SeqSpec:
        return Seq2SeqSpec(
            source_vocabulary=tuple(metadata["source_vocabulary"]),
            target_vocabulary=tuple(metadata["target_vocabulary"]),
            max_source_length=metadata["max_source_length"],
            max_target_length=metadata["max_target_length"],
            stress=metadata["stress"],
        )

    def raw_batches(
        self, config: RunConfig, spec: Seq2SeqSpec, split: str, batch_size: int
    ) -> tf.data.Dataset:
        """Words padded to `max_source_length` as `source`; targets are each word's reference
        ids, `(batch, 4, max_target_length)` padded with 0 (CMUdict has at most 4)."""
        return reference_batches(config.dataset, split, spec, batch_size, config.data).map(
            lambda source, targets: ({"source": source}, targets)
        )

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        """Greedy decoding (`decoding.greedy_steps`) through `encode` (once per batch) and
        `step` (once per step until every word has ended), each variant feeding back its own
        tokens and states. Outputs are the logits of each step, `(words, max_target_length + 1,
        vocab)`, as `greedy_steps` returns them, zero-padded to that many steps, so that
        `argmax` gives the decoded ids and top-1 agreement is per step."""
        # The longest target and its end.
        outputs = [
            _decode(run, inputs["source"], targets.shape[-1] + 1) for inputs, targets in batches
        ]
        return np.concatenate(outputs), np.concatenate([targets for _, targets in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        ids = outputs.argmax(-1)  # (words, steps)
        hypotheses = [row[: np.argmax(row == END_ID)] if END_ID in row else row for row in ids]
        references = [[ref[ref != PAD_ID] for ref in refs if ref.any()] for refs in targets]
        rates = error_rates([h[h != PAD_ID] for h in hypotheses], references)
        return {f"greedy_{name}": value for name, value in rates.items()}


def _decode(run, source: np.ndarray, max_steps: int) -> np.ndarray:
    encoded = run({"source": source})
    states = {name: value for name, value in encoded.items() if name.startswith("state")}
    context = {"value": encoded["value"], "keys": encoded["keys"], "source": source}

    def step(token: np.ndarray) -> np.ndarray:
        nonlocal states
        states = run({"token": token, **context, **states})
        return states.pop("logits")

    steps = greedy_steps(step, len(source), max_steps)
    padded = np.zeros((len(source), max_steps, steps.shape[-1]), np.float32)
    padded[:, : steps.shape[1]] = steps
    return padded


TRANSDUCE_SIGNATURE = (
    tf.TensorSpec((None,), tf.string, name="words"),
    tf.TensorSpec((), tf.int32, name="beam_width"),
    tf.TensorSpec((), tf.float32, name="length_penalty"),
)


def _seq2seq_signatures(model: Any, max_source_length: int) -> tuple[list, list]:
    """`encode` and `step` input signatures for a `Seq2Seq` or its config (which share the
    attribute names): `source (batch, max_source_length)` int32 to encode; to step, `token
    (batch,)`, the decoder's states, the encoder's `value` and attention `keys`, and `source`
    again (its padding is the attention mask)."""
    units = 2 * model.units
    key_dim = model.attention_units if model.attention == "bahdanau" else units
    source = tf.TensorSpec((None, max_source_length), tf.int32, name="source")
    states = [
        tf.TensorSpec((None, units), tf.float32, name=name)
        for name in state_names(2 if model.rnn == "lstm" else 1)
    ]
    step = [
        TOKEN,
        *states,
        tf.TensorSpec((None, max_source_length, units), tf.float32, name="value"),
        tf.TensorSpec((None, max_source_length, key_dim), tf.float32, name="keys"),
        source,
    ]
    return [source], step
