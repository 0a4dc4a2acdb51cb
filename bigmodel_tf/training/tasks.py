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
from bigmodel_tf.data.subwords import (
    PAD_ID,
    VOCABULARY_FILE,
    Retokenizer,
    SubwordSpec,
    drop_tokens,
    mask_tokens,
    subword_examples,
    subword_spec,
    token_batcher,
)
from bigmodel_tf.data.text import CharSpec, char_examples, char_spec, char_streams
from bigmodel_tf.data.transduction import (
    END_ID,
    OOV_ID,
    START_ID,
    Seq2SeqSpec,
    reference_batches,
    transduction_batcher,
    transduction_examples,
    transduction_spec,
)
from bigmodel_tf.data.transduction import PAD_ID as TRANSDUCTION_PAD_ID
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json
from bigmodel_tf.models import cnn, gru_lm, seq2seq, transformer
from bigmodel_tf.models.transformer.pretrained import (
    Checkpoint,
    load_checkpoint,
    load_weights,
    principal_projection,
    word_vectors,
)
from bigmodel_tf.training.config import RunConfig
from bigmodel_tf.training.language_model import BitsPerCharacter, TextGenerator, TextSample
from bigmodel_tf.training.text_classifier import TextClassifier
from bigmodel_tf.training.transduction import (
    MaskedAccuracy,
    MaskedCrossentropy,
    Transducer,
    TransductionSample,
    UnrolledEncoder,
    error_rates,
    split_error_rates,
)

# The Transformer ops that LiteRT's XNNPACK (x86) runs only in float, kept in float in the int8
# files: int8 they would run on reference kernels, slower than float32 on XNNPACK. Attention's
# softmax and its two batch matmuls (int8 XNNPACK refuses a right-hand side with a non-zero zero
# point, which calibrated activations have), GELU, and LayerNorm's variance and 1/sqrt.
TRANSFORMER_FLOAT_OPS = ("SOFTMAX", "BATCH_MATMUL", "GELU", "SQUARED_DIFFERENCE", "RSQRT")


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
    # Full int8 with one scale per output channel of each weight (TFLite's default) or per
    # tensor. Per tensor where the graph uses a weight many times (see Seq2SeqTask).
    int8_per_channel: bool = True
    # TFLite ops the full-int8 file keeps in float (`export.tflite.convert`'s `float_ops`).
    int8_float_ops: tuple[str, ...] = ()
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

    def augment(self, config: RunConfig, spec: Any) -> Callable | None:
        """A map over training batches (not evaluation ones), applied before the model and a
        distillation teacher see them; None for none (in-model augmentation needs none)."""
        return None

    def teacher_inputs(self, spec: Any, teacher_spec: Any) -> keras.layers.Layer | None:
        """For distillation: a layer that makes a teacher's inputs (of `teacher_spec`) from a
        batch of the student's (of `spec`); None where the teacher reads the student's own."""
        return None

    @abc.abstractmethod
    def serving_endpoints(self, model: keras.Model, spec: Any) -> dict[str, tuple[Any, list]]:
        """Export endpoints `{name: (function, input_signature)}` taking raw inputs."""

    def model_inputs(self, inputs: dict[str, np.ndarray]) -> Any:
        """The Keras model's own input for a batch of `raw_batches` inputs, as `model(x)` and
        `model.predict(x)` take it; None where what is deployed is not one call of the model but
        a loop of stateful steps (the language models, Seq2Seq)."""
        return None

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
        a classifier; a stateful endpoint gets the states `run` returned for the previous batch
        in place of the batch's own (see `LanguageModelTask.raw_batches`); seq2seq encodes each
        batch, then steps until every word ended.
        """

    @abc.abstractmethod
    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """The family's quality metrics of `predict`'s outputs."""


class ClassificationTask(Task):
    """A family whose model outputs class `probabilities`, scored by accuracy."""

    quality_metric = "accuracy"

    def predict(self, run, batches) -> tuple[np.ndarray, np.ndarray]:
        outputs = [run(inputs)["probabilities"] for inputs, _ in batches]
        return np.concatenate(outputs), np.concatenate([labels for _, labels in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(outputs.argmax(-1) == targets))}


class CnnTask(ClassificationTask):
    family = "cnn"
    config_class = cnn.CnnConfig
    presets = cnn.PRESETS
    default_dataset = "mnist5k"
    int8_budget = 0.005  # the limit: half a point of accuracy
    distillable = True
    # Measured on mnist5k (docs/results.md): 30 epochs of AdamW with cosine decay reach >= 0.985.
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
            image_examples(config.dataset, split)
            .batch(batch_size)
            .map(lambda images, labels: ({"images": images}, labels))
        )


def _specs_json(specs: Sequence[tf.TensorSpec]) -> dict[str, dict[str, Any]]:
    return {s.name: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for s in specs}


TOKEN_IDS = tf.TensorSpec((None, None), tf.int32, name="token_ids")
TEXTS = tf.TensorSpec((None,), tf.string, name="texts")


class TransformerClassifierTask(ClassificationTask):
    """Text classification with `TransformerClassifier` over WordPiece subwords.

    Exports two endpoints: `serve(texts) -> probabilities, label` on strings (the SavedModel's
    default signature; it tokenises in the graph with tensorflow-text ops, which TFLite cannot
    run here) and `tokens(token_ids) -> probabilities` on `(batch, time)` int32 ids padded with
    0, the one converted to TFLite, which ships with the vocabulary in `metadata.json`.
    """

    family = "transformer"
    config_class = transformer.TransformerClassifierConfig
    presets = transformer.classifier.PRESETS
    default_dataset = "rotten_tomatoes"
    tflite_endpoints = ("tokens",)
    int8_budget = 0.005  # half a point of accuracy, as for the CNN
    int8_float_ops = TRANSFORMER_FLOAT_OPS
    distillable = True
    # Measured on rotten_tomatoes: the default preset overfits after 2-3 epochs (training
    # accuracy 0.89, validation loss rising), so 4 epochs at 5e-4 with cosine decay; 10 epochs
    # at 1e-3 picked an epoch-2 checkpoint at a still high learning rate.
    train_defaults = {
        "epochs": 4,
        "batch_size": 64,
        "optimizer": "adamw",
        "learning_rate": 5e-4,
        "weight_decay": 0.01,
        "warmup_epochs": 1.0,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> SubwordSpec:
        _check_heads(config)
        model = config.model
        if model.encoder_from and model.pretrained:
            raise UserError("model.encoder_from and model.pretrained: choose one to start from")
        # The pretrained backbone's ids, before anything else is written.
        if model.encoder_from:
            encoder = _pretrained_encoder(config)
            vocabulary = read_json(encoder / VOCABULARY_FILE)
            if not (run_dir / VOCABULARY_FILE).exists():
                write_json(run_dir / VOCABULARY_FILE, vocabulary)
        if model.pretrained and not (run_dir / VOCABULARY_FILE).exists():
            checkpoint = _checked_checkpoint(config)
            vocabulary = {"vocabulary": list(checkpoint.vocabulary), "end_token": True}
            write_json(run_dir / VOCABULARY_FILE, vocabulary)
        return subword_spec(config.dataset, run_dir, model.vocabulary_size, model.sequence_length)

    def examples(self, config: RunConfig, split: str, spec: SubwordSpec) -> tf.data.Dataset:
        return subword_examples(config.dataset, split, spec)

    def batcher(self, config: RunConfig, spec: SubwordSpec, batch_size: int) -> Batcher:
        return token_batcher(batch_size)

    def build_model(self, config: RunConfig, spec: SubwordSpec) -> keras.Model:
        model = transformer.build_classifier(config.model, spec.vocabulary_size, spec.num_classes)
        if config.model.pretrained:
            load_weights(model.backbone, _checked_checkpoint(config))
        if config.model.embeddings_from:
            rows = word_vectors(load_checkpoint(config.model.embeddings_from), spec.vocabulary)
            # At the scale of Keras' default uniform(-0.05, 0.05) initialisation.
            rows = principal_projection(rows, config.model.hidden_dim, std=0.05 / np.sqrt(3))
            model.backbone.token_embedding.embeddings.assign(rows)
        if config.model.encoder_from:
            checkpoint = Path(config.model.encoder_from) / "checkpoints" / "best.keras"
            pretrained = keras.saving.load_model(checkpoint, safe_mode=True, compile=False)
            model.backbone.set_weights(pretrained.backbone.get_weights())
        return model

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def augment(self, config: RunConfig, spec: SubwordSpec) -> Callable | None:
        rate = config.model.token_dropout
        if not rate:
            return None
        return lambda ids, labels: (drop_tokens(ids, rate, config.train.seed), labels)

    def teacher_inputs(
        self, spec: SubwordSpec, teacher_spec: SubwordSpec
    ) -> keras.layers.Layer | None:
        if (spec.vocabulary, spec.end_token) == (teacher_spec.vocabulary, teacher_spec.end_token):
            return None
        return Retokenizer(
            spec.vocabulary,
            teacher_spec.vocabulary,
            teacher_spec.sequence_length,
            teacher_spec.end_token,
        )

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
            "inputs": _specs_json([TOKEN_IDS]),
            "outputs": _specs_json([probabilities]),
            # SavedModel only (the default signature).
            "serve": {
                "inputs": _specs_json([TEXTS]),
                "outputs": {
                    **_specs_json([probabilities]),
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
            subword_examples(config.dataset, split, spec)
            .padded_batch(batch_size, padded_shapes=([spec.sequence_length], []))
            .map(lambda ids, labels: ({"token_ids": ids}, labels))
        )


# The architecture a classifier must share with the transformer-mlm run it starts from (dropout
# is not in the weights; the vocabulary comes from the run).
ENCODER_FIELDS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "positions",
    "norm_first",
    "activation",
    "sequence_length",
    "max_positions",
    "layer_norm_epsilon",
    "scale_embeddings",
    "embedding_norm",
    "token_types",
)


def _checked_checkpoint(config: RunConfig) -> Checkpoint:
    """`model.pretrained`, read, after checking that the model.* architecture is its own."""
    model = config.model
    checkpoint = load_checkpoint(model.pretrained)
    differences = [
        f"model.{name}={getattr(model, name)} (the checkpoint has {value})"
        for name, value in checkpoint.architecture().items()
        if getattr(model, name) != value
    ]
    if differences:
        raise UserError(
            f"model.pretrained={model.pretrained} needs its own architecture "
            f"(--preset minilm sets it): {'; '.join(differences)}"
        )
    if model.sequence_length > model.max_positions:
        raise UserError(
            f"model.sequence_length={model.sequence_length} is longer than the "
            f"{model.max_positions} positions {model.pretrained} has"
        )
    return checkpoint


def _pretrained_encoder(config: RunConfig) -> Path:
    """`model.encoder_from`, checked: a finished transformer-mlm run of the same architecture."""
    run = Path(config.model.encoder_from)
    if not (run / "config.json").is_file():
        raise UserError(f"model.encoder_from={run} is not a run directory")
    pretrained = read_json(run / "config.json")
    if pretrained["family"] != TransformerMlmTask.family:
        raise UserError(
            f"model.encoder_from={run} is a {pretrained['family']!r} run, not a "
            f"{TransformerMlmTask.family!r} run"
        )
    if not (run / "metrics.json").is_file():
        raise UserError(f"model.encoder_from={run} has not finished training")
    differences = [
        f"model.{name}={pretrained['model'][name]} there, {getattr(config.model, name)} here"
        for name in ENCODER_FIELDS
        if pretrained["model"][name] != getattr(config.model, name)
    ]
    if differences:
        raise UserError(
            f"model.encoder_from={run} has another architecture: {'; '.join(differences)}"
        )
    return run


# The texts masked-language pretraining learns from: the training texts and the unlabelled ones
# (Rotten Tomatoes' plot summaries, IMDB's unsupervised reviews), never held-out text.
PRETRAINING_SPLIT = "train+unsupervised"


class TransformerMlmTask(Task):
    """Masked-language-model pretraining (BERT) of the classifier's backbone on unlabelled text.

    Trains on `PRETRAINING_SPLIT` (validation and test: the held-out splits' texts, labels
    unused), with a WordPiece vocabulary computed from it; the loss and accuracy count the
    masked positions only. A `transformer` classifier starts from the finished run with
    `model.encoder_from=RUN_DIR`. These runs are not exported: the fine-tuned classifier is.
    """

    family = "transformer-mlm"
    config_class = transformer.TransformerMlmConfig
    presets = transformer.masked_lm.PRESETS
    default_dataset = "rotten_tomatoes"
    # 20 epochs (3,560 steps) took 47 minutes on a busy 2-core machine and reached a masked-token
    # accuracy of 0.19; longer pretraining is likely to help and was not measured.
    train_defaults = {
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "adamw",
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "warmup_epochs": 1.0,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> SubwordSpec:
        _check_heads(config)
        model = config.model
        return subword_spec(
            config.dataset,
            run_dir,
            model.vocabulary_size,
            model.sequence_length,
            labelled=False,
            vocabulary_split=PRETRAINING_SPLIT,
        )

    def examples(self, config: RunConfig, split: str, spec: SubwordSpec) -> tf.data.Dataset:
        split = PRETRAINING_SPLIT if split == "train" else split
        return subword_examples(config.dataset, split, spec, labelled=False)

    def batcher(self, config: RunConfig, spec: SubwordSpec, batch_size: int) -> Batcher:
        def mask(ids):
            return mask_tokens(ids, config.model.mask_rate, spec.vocabulary_size, config.train.seed)

        return lambda examples: token_batcher(batch_size)(examples).map(mask)

    def build_model(self, config: RunConfig, spec: SubwordSpec) -> keras.Model:
        return transformer.build_masked_lm(config.model, spec.vocabulary_size)

    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        return {
            # The mean over the masked positions (weight 1), not over every position.
            "loss": keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            ),
            "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def _not_exported(self, *args, **kwargs):
        raise UserError(
            f"{self.family} runs are pretraining and are not exported; fine-tune a classifier "
            f"from one (bigmodel-tf train transformer --set model.encoder_from=RUN_DIR) and "
            "export that"
        )

    serving_endpoints = metadata = spec_from_metadata = raw_batches = _not_exported
    predict = quality = _not_exported


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
TOKEN = tf.TensorSpec((None,), tf.int32, name="token")


class LanguageModelTask(Task):
    """Character-level language modelling: what every language-model family shares.

    Trains on `model.sequence_length`-character windows and reports loss in nats/char, bits/char
    and perplexity. Exports two endpoints: `generate(prompt, length, temperature, seed) -> text`
    on strings (SavedModel only: string ops cannot run in TFLite here) and
    `step(token, *state) -> logits, *state`, one token from a carried state, the one converted
    to TFLite, which ships with the vocabulary in `metadata.json`. Subclasses say what the
    state is (`step_signature`, `step_endpoint`) and build the model.

    The export report runs `step` over `stream_steps` characters of `batch_size` parallel
    streams of the test text (evenly spaced over it), each starting from a zero state and
    carrying it, as generation does; every variant carries its own state, so quantisation
    errors compound as they would on a device. Quality is the mean cross-entropy of those
    predictions, in nats/char.
    """

    default_dataset = "shakespeare"
    tflite_endpoints = ("step",)
    quality_metric = "loss"  # nats/char
    quality_higher_is_better = False
    # 0.05 nats/char: ~3% of the <= 1.6 the default presets aim at; int8 cost the tiny test GRU
    # 0.002.
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

    def prepare(self, config: RunConfig, run_dir: Path) -> CharSpec:
        return char_spec(config.dataset, run_dir, config.model.sequence_length)

    def examples(self, config: RunConfig, split: str, spec: CharSpec) -> tf.data.Dataset:
        return char_examples(config.dataset, split, spec)

    def batcher(self, config: RunConfig, spec: CharSpec, batch_size: int) -> Batcher:
        # Every batch the same shape (XLA compiles once); drops at most batch_size - 1 windows.
        return lambda examples: examples.batch(batch_size, drop_remainder=True)

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
        return {
            "generate": (TextGenerator(model, spec.vocabulary), list(GENERATE_SIGNATURE)),
            "step": self.step_endpoint(model),
        }

    def metadata(self, config: RunConfig, spec: CharSpec) -> dict[str, Any]:
        step = self.step_signature(config)
        logits = tf.TensorSpec((None, spec.vocabulary_size), tf.float32, name="logits")
        return {
            # `step`, as the SavedModel and every .tflite file take it.
            "inputs": _specs_json(step),
            "outputs": _specs_json([logits, *step[1:]]),
            # SavedModel only.
            "generate": {
                "inputs": _specs_json(GENERATE_SIGNATURE),
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
        """One batch per step of `batch_size` parallel streams (`char_streams`). The first
        step's state is zeros; the later steps' is empty (no rows), as `predict` replaces it by
        the carried one: a Transformer's key/value cache per step would hold hundreds of
        megabytes for each of hundreds of steps."""
        tokens, targets = char_streams(
            config.dataset, split, spec, batch_size, self.stream_steps(config)
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
        return first.map(with_state(batch_size)).concatenate(rest.map(with_state(0)))

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


def _state_names(num_layers: int) -> list[str]:
    return [f"state_{layer}" for layer in range(1, num_layers + 1)]


def _gru_step_signature(rnn_units: int, num_layers: int) -> list[tf.TensorSpec]:
    """`TOKEN`, then one `(batch, rnn_units)` float32 state per GRU layer."""
    states = [
        tf.TensorSpec((None, rnn_units), tf.float32, name=name) for name in _state_names(num_layers)
    ]
    return [TOKEN, *states]


class GruLmTask(LanguageModelTask):
    """Character-level language modelling with `GruLanguageModel`, by truncated backpropagation
    through time over the training windows. The state of `step` is one `state_i` per GRU layer.
    """

    family = "gru-lm"
    config_class = gru_lm.GruLmConfig
    presets = gru_lm.PRESETS
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

    def step_signature(self, config: RunConfig) -> list[tf.TensorSpec]:
        return _gru_step_signature(config.model.rnn_units, config.model.num_layers)

    def step_endpoint(self, model: keras.Model) -> tuple[Callable, list[tf.TensorSpec]]:
        names = _state_names(model.num_layers)

        def step(token, *states):  # (batch,) and n x (batch, units)
            logits, states = model.step(token, list(states))
            return {"logits": logits, **dict(zip(names, states, strict=True))}

        return step, _gru_step_signature(model.rnn_units, model.num_layers)

    def metadata(self, config: RunConfig, spec: CharSpec) -> dict[str, Any]:
        states = self.step_signature(config)[1:]
        return {**super().metadata(config, spec), "state_sizes": [s.shape[-1] for s in states]}


def _transformer_step_signature(cache_shape: tuple[int, ...]) -> list[tf.TensorSpec]:
    """`TOKEN`, the float32 key/value `cache (batch, *cache_shape)` and the int32 `position`."""
    return [
        TOKEN,
        tf.TensorSpec((None, *cache_shape), tf.float32, name="cache"),
        tf.TensorSpec((), tf.int32, name="position"),
    ]


class TransformerLmTask(LanguageModelTask):
    """Character-level language modelling with the decoder-only `TransformerLanguageModel`.

    The state of `step` is the key/value `cache` of the positions before `position`: `step`
    writes the token's keys and values at `position` and returns `position + 1`. It does not
    slide the window as generation does, so the export report's streams stop at the context
    (`sequence_length`) if it is shorter than `STREAM_STEPS`.
    """

    family = "transformer-lm"
    config_class = transformer.TransformerLmConfig
    presets = transformer.causal_lm.PRESETS
    int8_float_ops = TRANSFORMER_FLOAT_OPS
    # Many small steps beat few large ones on a time budget: 16 x 128 characters per step
    # gives ~11,000 optimizer steps in 5 epochs (~25 min) where 64 x 256 gave 552 in 2.
    train_defaults = {
        "epochs": 5,
        "batch_size": 16,
        "optimizer": "adamw",
        "learning_rate": 2e-3,
        "weight_decay": 0.01,
        "warmup_epochs": 0.05,
        # nanoGPT's small-model settings, each better at equal steps in our measurements.
        "final_lr_fraction": 0.1,
        "adam_beta_2": 0.99,
        "global_clipnorm": 1.0,
        # XLA fuses the many small ops of a narrow model into fewer, larger kernels.
        "jit_compile": True,
    }

    def prepare(self, config: RunConfig, run_dir: Path) -> CharSpec:
        _check_heads(config)
        return super().prepare(config, run_dir)

    def build_model(self, config: RunConfig, spec: CharSpec) -> keras.Model:
        return transformer.build_language_model(config.model, spec.vocabulary_size)

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


def _check_heads(config: RunConfig) -> None:
    model = config.model
    if model.hidden_dim % model.num_heads:
        raise UserError(
            f"model.hidden_dim={model.hidden_dim} must be a multiple of "
            f"model.num_heads={model.num_heads}"
        )


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
    int8_budget = 0.005  # half a point of phoneme error rate
    # The unrolled encoder uses each GRU kernel at 64 steps, and TFLite stores every use's 768
    # per-channel scales and int64 zero points apart (1.3 MB): per channel the int8 file was
    # 0.45x the float32 one, per tensor 0.295x, with greedy PER +0.05 points (test split).
    int8_per_channel = False
    # Token accuracy, not loss, picks the checkpoint: the validation loss bottoms out an epoch
    # or two before the end (the model grows overconfident) while accuracy, and with it the
    # phoneme and word error rates, still improve. With a 3-layer encoder the last epoch had
    # beam PER/WER 6.11%/25.8% on the validation split, the lowest-loss one 6.18%/26.2%.
    monitor = "val_accuracy"
    monitor_mode = "max"
    train_defaults = {
        # 12 epochs of the 3-layer encoder fit the hour of training the G2P target allows on
        # 2 cores (docs/results.md).
        "epochs": 12,
        "batch_size": 128,
        "optimizer": "adam",
        "learning_rate": 2e-3,
        # Without it the validation loss jumped at epoch 2 (0.38 to 0.49).
        "warmup_epochs": 0.5,
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
            "loss": MaskedCrossentropy(config.model.label_smoothing),
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
            mask = tf.not_equal(source, TRANSDUCTION_PAD_ID)
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
            "special_ids": {
                "pad": TRANSDUCTION_PAD_ID,
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
                token = np.where(done, TRANSDUCTION_PAD_ID, logits.argmax(-1)).astype(np.int32)
                done |= token == END_ID
                steps.append(logits)
            padded = np.zeros((len(source), max_steps, steps[0].shape[-1]), np.float32)
            padded[:, : len(steps)] = np.stack(steps, axis=1)
            outputs.append(padded)
        return np.concatenate(outputs), np.concatenate([targets for _, targets in batches])

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        ids = outputs.argmax(-1)  # (words, steps)
        hypotheses = [row[: np.argmax(row == END_ID)] if END_ID in row else row for row in ids]
        references = [
            [ref[ref != TRANSDUCTION_PAD_ID] for ref in refs if ref.any()] for refs in targets
        ]
        rates = error_rates([h[h != TRANSDUCTION_PAD_ID] for h in hypotheses], references)
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
        TOKEN,
        *states,
        tf.TensorSpec((None, max_source_length, units), tf.float32, name="value"),
        tf.TensorSpec((None, max_source_length, key_dim), tf.float32, name="keys"),
        source,
    ]
    return [source], step


TASKS: dict[str, Task] = {
    task.family: task
    for task in (
        CnnTask(),
        GruLmTask(),
        TransformerClassifierTask(),
        TransformerMlmTask(),
        TransformerLmTask(),
        Seq2SeqTask(),
    )
}
