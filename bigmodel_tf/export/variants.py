"""What an export report measures, as runnable `Variant`s: the Keras model itself, the SavedModel
and each `.tflite` file of an export folder, and a distilled run's teacher; and `measure_split`,
which runs them over the test split.

A variant's runner takes numpy inputs by name and returns numpy outputs by name, whichever
endpoint of the family (`ServingTask.tflite_endpoints`) takes those names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.export.report import Runner, Variant, measure
from bigmodel_tf.export.serving import ServingTask
from bigmodel_tf.export.tflite import QUANTIZATIONS, TfliteModel, convert
from bigmodel_tf.export.writing import write_saved_model
from bigmodel_tf.registry import serving_for
from bigmodel_tf.training.runs import load_trained
from bigmodel_tf.training.task import TrainingTask

# Test-split batch size for measuring quality (latency uses 1 and LATENCY_BATCH).
EVALUATION_BATCH = 256


def keras_variant(
    run_dir: Path, serving: ServingTask, spec: Any, model: keras.Model, name: str = "keras"
) -> Variant:
    """The Keras model itself, eager, through the family's TFLite endpoints (raw inputs)."""
    endpoints = serving.serving_endpoints(model, spec)
    runners = {}
    for endpoint in serving.tflite_endpoints:
        function, signature = endpoints[endpoint]
        runners[frozenset(tensor.name for tensor in signature)] = tensor_runner(
            by_position(function, signature)
        )
    checkpoint = run_dir / "checkpoints" / "best.keras"
    return Variant(name, str(checkpoint), checkpoint.stat().st_size, dispatch(runners))


def artefacts(export_dir: Path, serving: ServingTask) -> list[Variant]:
    """The SavedModel and every `.tflite` file present in `export_dir`, as runnable variants."""
    saved_model_dir = export_dir / "saved_model"
    loaded = tf.saved_model.load(str(saved_model_dir))
    runners = {}
    for endpoint in serving.tflite_endpoints:
        serve = loaded.signatures[endpoint]
        _, names = serve.structured_input_signature
        runners[frozenset(names)] = tensor_runner(serve)
    size = sum(p.stat().st_size for p in saved_model_dir.rglob("*") if p.is_file())
    variants = [Variant("saved_model", "saved_model/", size, dispatch(runners))]
    for mode, filename in QUANTIZATIONS.items():
        path = export_dir / filename
        if path.exists():
            name = "tflite " + ("float32" if mode == "none" else mode)
            variants.append(_tflite_variant(name, path, filename))
    return variants


def teacher_variants(
    teacher_dir: Path, scratch: Path, student_task: TrainingTask, student_spec: Any
) -> list[Variant]:
    """A distilled run's teacher as Keras and float32 TFLite rows, to compare the student with.

    They are fed the student's test batches; a teacher of another vocabulary gets them through
    the same `TrainingTask.teacher_inputs` as in training (each input tensor translated
    alike)."""
    config, _, spec, teacher = load_trained(teacher_dir)
    serving = serving_for(config.family)
    write_saved_model(teacher, serving.serving_endpoints(teacher, spec), scratch / "saved_model")
    path = scratch / "teacher_float32.tflite"
    path.write_bytes(convert(scratch / "saved_model", serving.tflite_endpoints, "none"))
    variants = [
        keras_variant(teacher_dir, serving, spec, teacher, name="teacher keras"),
        _tflite_variant("teacher tflite float32", path, str(teacher_dir)),
    ]
    adapter = student_task.teacher_inputs(student_spec, spec)
    if adapter is None:
        return variants

    def translated(run: Runner) -> Runner:
        return lambda inputs: run({k: np.asarray(adapter(v)) for k, v in inputs.items()})

    return [dataclasses.replace(v, run=translated(v.run)) for v in variants]


def measure_split(
    serving: ServingTask,
    config: Any,
    spec: Any,
    variants: list[Variant],
    *,
    rounds: int,
    test_batches: int | None,
) -> tuple[list[dict], int]:
    """Each variant's report row on the test split, or its first `test_batches` batches of
    `EVALUATION_BATCH` examples; and how many examples that was."""
    batches = serving.raw_batches(config, spec, "test", EVALUATION_BATCH)
    batches = list(batches.take(test_batches or -1).as_numpy_iterator())
    rows = measure(variants, serving.predict, batches, serving.quality, rounds=rounds)
    return rows, sum(len(targets) for _, targets in batches)


def by_position(function: Callable, signature: list[tf.TensorSpec]) -> Callable:
    """`function` of positional tensors called with them by name, as `signature` names them."""

    def call(**inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        # As a SavedModel signature binds them: an endpoint may take `*states`.
        return function(*(inputs[tensor.name] for tensor in signature))

    return call


def dispatch(runners: dict[frozenset[str], Runner]) -> Runner:
    """One runner over several endpoints: each call runs the one whose input names it gets."""

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = frozenset(inputs)
        if names not in runners:
            expected = " or ".join(str(sorted(n)) for n in runners)
            raise UserError(f"the endpoints take inputs {expected}, got {sorted(names)}")
        return runners[names](inputs)

    return run


def tensor_runner(function: Callable[..., dict[str, tf.Tensor]]) -> Runner:
    """A TF function of named tensors as a `Runner` of numpy arrays."""

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}

    return run


def _tflite_variant(name: str, path: Path, file: str) -> Variant:
    model = TfliteModel(path)
    return Variant(name, file, path.stat().st_size, model, model.reference_ops)
