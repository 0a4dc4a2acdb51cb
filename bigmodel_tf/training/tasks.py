"""How each model family plugs into the one trainer: data, model, loss, metrics, serving.

The trainer, `evaluate` and `export` only ever talk to a `Task`; a new family adds a subclass
and an entry in `TASKS`, and nothing in the core changes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
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
from bigmodel_tf.data.text import CharSpec, char_examples, char_spec, char_streams
from bigmodel_tf.data.transduction import (
    END_ID,
    OOV_ID,
    PAD_ID,
    START_ID,
    Seq2SeqSpec,
    reference_batches,
    transduction_batcher,
    transduction_examples,
    transduction_spec,
)
from bigmodel_tf.models import cnn, gru_lm, seq2seq
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.language_model import BitsPerCharacter, TextGenerator, TextSample
from bigmodel_tf.training.transduction import (
    MaskedAccuracy,
    Transducer,
    TransductionSample,
    UnrolledEncoder,
    error_rates,
    split_error_rates,
)


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
    # Export: the endpoints that are also converted to TFLite (one file, each a signature; a
    # call runs the one whose input names it is given), and the export report's quality
    # metric (a key of `quality()`), its direction and how much full-int8 quantisation may cost.
    tflite_endpoints: tuple[str, ...] = ("serve",)
    quality_metric: str
    quality_higher_is_better: bool = True
    int8_budget: float
    # Whether the report's quality is measured on the same examples as the training run's test
    # metric of the same name, so that `verify` can check the SavedModel against the run.
    quality_is_test_metric: bool = True
    # Whether the model outputs class probabilities, what `training.distill.Distiller` takes.
    distillable: bool = False

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

    def callbacks(
        self, config: RunConfig, spec: Any, run_dir: Path
    ) -> list[keras.callbacks.Callback]:
        """Training callbacks of the family's own (e.g. TensorBoard samples); none by default."""
        return []

    def extra_metrics(
        self, config: RunConfig, spec: Any, model: keras.Model, split: str
    ) -> dict[str, float]:
        """Metrics of `split` beyond `model.evaluate`'s, which need the model run another way
        (e.g. decoding); the trainer adds them to the test metrics. None by default."""
        return {}

    @abc.abstractmethod
    def serving_endpoints(self, model: keras.Model, spec: Any) -> dict[str, tuple[Any, list]]:
        """Export endpoints `{name: (function, input_signature)}` taking raw inputs."""

    @abc.abstractmethod
    def metadata(self, config: RunConfig, spec: Any) -> dict[str, Any]:
        """What an exported model's users need to know (labels, input specs), as JSON."""

    @abc.abstractmethod
    def spec_from_metadata(self, metadata: dict[str, Any]) -> Any:
        """The spec back from an export's `metadata.json` (an export needs no run directory)."""

    @abc.abstractmethod
    def raw_batches(
        self, config: RunConfig, spec: Any, split: str, batch_size: int
    ) -> tf.data.Dataset:
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
        the CNN; a stateful endpoint gets the states `run` returned for the previous batch in
        place of the batch's; seq2seq encodes each batch, then steps until every word ended.
        """

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
    distillable = True
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
            image_examples(config.dataset, split)
            .batch(batch_size)
            .map(lambda images, labels: ({"images": images}, labels))
        )

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        outputs = [run(inputs)["probabilities"] for inputs, _ in batches]
        return np.concatenate(outputs), np.concatenate([labels for _, labels in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(outputs.argmax(-1) == targets))}


# Characters each parallel stream predicts in the export report and in int8 calibration: twice
# the default training window, so that quality includes what generation relies on, states
# carried past the window the model was trained on.
STREAM_STEPS = 200

GENERATE_SIGNATURE = (
    tf.TensorSpec((), tf.string, name="prompt"),
    tf.TensorSpec((), tf.int32, name="length"),
    tf.TensorSpec((), tf.float32, name="temperature"),
    tf.TensorSpec((), tf.int32, name="seed"),
)


def _state_names(num_layers: int) -> list[str]:
    return [f"state_{layer}" for layer in range(1, num_layers + 1)]


def _step_signature(rnn_units: int, num_layers: int) -> list[tf.TensorSpec]:
    """`token (batch,)` int32, then one `(batch, rnn_units)` float32 state per GRU layer."""
    states = [
        tf.TensorSpec((None, rnn_units), tf.float32, name=name) for name in _state_names(num_layers)
    ]
    return [tf.TensorSpec((None,), tf.int32, name="token"), *states]


def _specs_json(specs: Sequence[tf.TensorSpec]) -> dict[str, dict[str, Any]]:
    return {s.name: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for s in specs}


class GruLmTask(Task):
    """Character-level language modelling with `GruLanguageModel`.

    Trains on `model.sequence_length`-character windows (truncated backpropagation through
    time) and reports loss in nats/char, bits/char and perplexity. Exports two endpoints:
    `generate(prompt, length, temperature, seed) -> text` on strings (SavedModel only: string
    ops cannot run in TFLite here) and `step(token, state_1..state_n) -> logits, state_1..`,
    the one converted to TFLite, which ships with the vocabulary in `metadata.json`.

    The export report runs `step` over `STREAM_STEPS` characters of `batch_size` parallel
    streams of the test text (evenly spaced over it), each starting from zero states and
    carrying them, as generation does; every variant carries its own states, so quantisation
    errors compound as they would on a device. Quality is the mean cross-entropy of those
    predictions, in nats/char.
    """

    family = "gru-lm"
    config_class = gru_lm.GruLmConfig
    presets = gru_lm.PRESETS
    default_dataset = "shakespeare"
    tflite_endpoints = ("step",)
    quality_metric = "loss"  # nats/char
    quality_higher_is_better = False
    # 0.05 nats/char: ~3% of the <= 1.6 the default preset aims at; int8 cost the tiny test
    # model 0.002.
    int8_budget = 0.05
    # Streams with carried states, not training's windows from zero states: different numbers.
    quality_is_test_metric = False
    train_defaults = {
        # The trainer runs the default preset at ~5,300 characters/s (1.2 s per batch of 64 x 100),
        # so the 4.5 M training characters take ~14 min per epoch: 2 epochs make the ~30 min run.
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "adam",
        "learning_rate": 2e-3,
        "global_clipnorm": 5.0,
        # Measured in the trainer: XLA made the default preset ~20% slower (~4,250 characters/s),
        # though it speeds up tiny GRUs (the test model: 28 s an epoch instead of 42 s).
        "jit_compile": False,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> CharSpec:
        return char_spec(config.dataset, run_dir, config.model.sequence_length)

    def examples(self, config: RunConfig, split: str, spec: CharSpec) -> tf.data.Dataset:
        return char_examples(config.dataset, split, spec)

    def batcher(self, config: RunConfig, spec: CharSpec, batch_size: int) -> Batcher:
        # Every batch the same shape (XLA compiles once); drops at most batch_size - 1 windows.
        return lambda examples: examples.batch(batch_size, drop_remainder=True)

    def build_model(self, config: RunConfig, spec: CharSpec) -> keras.Model:
        model = gru_lm.GruLanguageModel(
            spec.vocabulary_size,
            config.model.embedding_dim,
            config.model.rnn_units,
            config.model.num_layers,
            config.model.dropout,
        )
        model.build((None, None))
        return model

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        import keras_hub  # 1.5 s to import: only language-model runs pay for it

        return {
            # The mean over every predicted character: the loss is in nats/char.
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": [BitsPerCharacter(), keras_hub.metrics.Perplexity(from_logits=True)],
        }

    def callbacks(
        self, config: RunConfig, spec: CharSpec, run_dir: Path
    ) -> list[keras.callbacks.Callback]:
        return [TextSample(run_dir / "logs" / "samples", spec.vocabulary, seed=config.train.seed)]

    def serving_endpoints(self, model: keras.Model, spec: CharSpec) -> dict[str, tuple[Any, list]]:
        names = _state_names(model.num_layers)

        def step(token, *states):  # (batch,) and n x (batch, units)
            logits, states = model.step(token, list(states))
            return {"logits": logits, **dict(zip(names, states, strict=True))}

        return {
            "generate": (TextGenerator(model, spec.vocabulary), list(GENERATE_SIGNATURE)),
            "step": (step, _step_signature(model.rnn_units, model.num_layers)),
        }

    def metadata(self, config: RunConfig, spec: CharSpec) -> dict[str, Any]:
        step = _step_signature(config.model.rnn_units, config.model.num_layers)
        states = step[1:]
        logits = tf.TensorSpec((None, spec.vocabulary_size), tf.float32, name="logits")
        return {
            # `step`, as the SavedModel and every .tflite file take it.
            "inputs": _specs_json(step),
            "outputs": _specs_json([logits, *states]),
            # SavedModel only.
            "generate": {
                "inputs": _specs_json(GENERATE_SIGNATURE),
                "outputs": {"text": {"dtype": "string", "shape": []}},
            },
            "state_sizes": [s.shape[-1] for s in states],
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
        """One batch per step of `batch_size` parallel streams (`char_streams`), with zero states:
        `predict` replaces them by the carried ones after the first step."""
        tokens, targets = char_streams(config.dataset, split, spec, batch_size, STREAM_STEPS)
        zeros = tf.zeros((batch_size, config.model.rnn_units))
        states = {name: zeros for name in _state_names(config.model.num_layers)}
        return tf.data.Dataset.from_tensor_slices((tokens, targets)).map(
            lambda token, target: ({"token": token, **states}, target)
        )

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        logits, carried = [], {}
        for inputs, _ in batches:
            outputs = run({**inputs, **carried})
            carried = {name: value for name, value in outputs.items() if name != "logits"}
            logits.append(outputs["logits"])  # (streams, vocab)
        return np.concatenate(logits), np.concatenate([targets for _, targets in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        logits = outputs.astype(np.float64)
        peak = logits.max(-1)
        log_normaliser = peak + np.log(np.exp(logits - peak[:, None]).sum(-1))
        nats = float(np.mean(log_normaliser - logits[np.arange(len(targets)), targets]))
        return {"loss": nats, "bits_per_char": nats / np.log(2.0)}


class Seq2SeqTask(Task):
    """Grapheme-to-phoneme conversion with `Seq2Seq`: a word's letters in, its phonemes out.

    Trains by teacher forcing on one example per pronunciation, with the cross-entropy and
    token accuracy of the non-padding targets. Its test metrics add the phoneme and word error
    rates of greedy and beam-search decoding (`training.transduction.split_error_rates`), each
    word scored against its closest pronunciation.

    Exports `transduce(words, beam_width, length_penalty) -> phonemes` on strings (SavedModel
    only: string ops cannot run in TFLite here) and two endpoints that every `.tflite` file
    holds as signatures: `encode`, the encoder unrolled over `max_source_length` characters,
    and `step`, one decoder step; the vocabularies ship in `metadata.json`. The export report
    decodes every test word greedily through `encode` and `step`, and its quality is the
    greedy phoneme error rate.
    """

    family = "seq2seq"
    config_class = seq2seq.Seq2SeqConfig
    presets = seq2seq.PRESETS
    default_dataset = "cmudict"
    tflite_endpoints = ("encode", "step")
    # Greedy PER, as the training run's test metric of the same name.
    quality_metric = "greedy_per"
    quality_higher_is_better = False
    # One point of phoneme error rate.
    int8_budget = 0.01
    train_defaults = {
        # A guess: the README's run reached PER 8.8% after 2 epochs (~20 min each on a busy
        # 2-core machine) and was still improving.
        "epochs": 10,
        "batch_size": 128,
        "optimizer": "adam",
        "learning_rate": 2e-3,
        "global_clipnorm": 5.0,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> Seq2SeqSpec:
        model = config.model
        return transduction_spec(
            config.dataset, run_dir, model.max_source_length, model.max_target_length, model.stress
        )

    def examples(self, config: RunConfig, split: str, spec: Seq2SeqSpec) -> tf.data.Dataset:
        return transduction_examples(config.dataset, split, spec)

    def batcher(self, config: RunConfig, spec: Seq2SeqSpec, batch_size: int) -> Batcher:
        return transduction_batcher(batch_size)

    def build_model(self, config: RunConfig, spec: Seq2SeqSpec) -> keras.Model:
        m = config.model
        model = seq2seq.Seq2Seq(
            spec.source_vocabulary_size,
            spec.target_vocabulary_size,
            embedding_dim=m.embedding_dim,
            units=m.units,
            encoder_layers=m.encoder_layers,
            rnn=m.rnn,
            attention=m.attention,
            attention_units=m.attention_units,
            dropout=m.dropout,
        )
        model.build(((None, None), (None, None)))
        return model

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {
            # The mean over the targets that are not padding.
            "loss": keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=PAD_ID
            ),
            "metrics": [MaskedAccuracy()],
        }

    def callbacks(
        self, config: RunConfig, spec: Seq2SeqSpec, run_dir: Path
    ) -> list[keras.callbacks.Callback]:
        return [TransductionSample(run_dir / "logs" / "samples", spec)]

    def extra_metrics(
        self, config: RunConfig, spec: Seq2SeqSpec, model: keras.Model, split: str
    ) -> dict[str, float]:
        greedy = split_error_rates(model, spec, config.dataset, split, beam_width=1)
        beam = split_error_rates(
            model,
            spec,
            config.dataset,
            split,
            beam_width=config.model.beam_width,
            length_penalty=config.model.length_penalty,
        )
        return {
            **{f"greedy_{name}": value for name, value in greedy.items()},
            **{f"beam_{name}": value for name, value in beam.items()},
        }

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
                UnrolledEncoder(model, spec.max_source_length, names),
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
            "inputs": {"encode": _specs_json(encode), "step": _specs_json(step)},
            "outputs": {
                "encode": _specs_json([value, keys, *states]),
                "step": _specs_json([logits, *states]),
            },
            # SavedModel only.
            "transduce": {
                "inputs": _specs_json(TRANSDUCE_SIGNATURE),
                "outputs": {"phonemes": {"dtype": "string", "shape": [None]}},
            },
            "source_vocabulary": list(spec.source_vocabulary),
            "target_vocabulary": list(spec.target_vocabulary),
            "special_ids": {"pad": PAD_ID, "oov": OOV_ID, "start": START_ID, "end": END_ID},
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
        return reference_batches(config.dataset, split, spec, batch_size).map(
            lambda source, targets: ({"source": source}, targets)
        )

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        """Greedy decoding through `encode` (once per batch) and `step` (once per step until
        every word has ended), each variant feeding back its own tokens and states. Outputs
        are the logits of each step, `(words, max_target_length + 1, vocab)`, with padding,
        OOV and start ruled out and all zeros after a word's end, so that `argmax` gives the
        decoded ids (padding after the end) and top-1 agreement is per step."""
        outputs = []
        for inputs, targets in batches:
            source = inputs["source"]
            encoded = run(inputs)
            states = {name: value for name, value in encoded.items() if name.startswith("state")}
            token, done = np.full(len(source), START_ID, np.int32), np.zeros(len(source), bool)
            steps = []
            max_steps = targets.shape[-1] + 1  # the longest target and its end
            while len(steps) < max_steps and not done.all():
                inputs = {"token": token, "value": encoded["value"], "keys": encoded["keys"]}
                states = run({**inputs, **states, "source": source})
                logits = states.pop("logits").astype(np.float32)
                # Never padding, OOV or start: below the row's lowest, a finite difference.
                logits[:, :END_ID] = logits.min(axis=-1, keepdims=True) - 1.0
                logits[done] = 0.0
                token = np.where(done, PAD_ID, logits.argmax(-1)).astype(np.int32)
                done |= token == END_ID
                steps.append(logits)
            padded = np.zeros((len(source), max_steps, steps[0].shape[-1]), np.float32)
            padded[:, : len(steps)] = np.stack(steps, axis=1)
            outputs.append(padded)
        return np.concatenate(outputs), np.concatenate([targets for _, targets in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        ids = outputs.argmax(-1)  # (words, steps)
        hypotheses = [row[: np.argmax(row == END_ID)] if END_ID in row else row for row in ids]
        references = [[ref[ref != PAD_ID] for ref in refs if ref.any()] for refs in targets]
        rates = error_rates([h[h != PAD_ID] for h in hypotheses], references)
        return {f"greedy_{name}": value for name, value in rates.items()}


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
        for name in _state_names(2 if model.rnn == "lstm" else 1)
    ]
    step = [
        tf.TensorSpec((None,), tf.int32, name="token"),
        *states,
        tf.TensorSpec((None, max_source_length, units), tf.float32, name="value"),
        tf.TensorSpec((None, max_source_length, key_dim), tf.float32, name="keys"),
        source,
    ]
    return [source], step


TASKS: dict[str, Task] = {task.family: task for task in (CnnTask(), GruLmTask(), Seq2SeqTask())}
