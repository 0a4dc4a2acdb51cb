"""TFLite conversion with post-training quantisation, and a LiteRT runner that checks its file.

    >>> data = convert(Path("saved_model"), ["serve"], "int8", calibration)
    >>> model = TfliteModel(Path("model_int8.tflite"))
    >>> model({"images": images})["probabilities"]        # dequantised float32

Models are converted from the exported SavedModel's signatures, so a `.tflite` file takes the
same raw inputs (uint8 images, int32 tokens) under the same names as the SavedModel.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.io import native_stderr_captured

# Quantisation modes by the name users pass to `--quantize`, and the file each one writes.
QUANTIZATIONS = {
    "none": "model_float32.tflite",
    "dynamic": "model_dynamic.tflite",
    "float16": "model_float16.tflite",
    "int8": "model_int8.tflite",
}

Inputs = dict[str, np.ndarray]


def convert(
    saved_model: Path,
    signatures: Sequence[str],
    quantize: str,
    calibration: Callable[[], Iterable[tuple[str, Inputs]]] | None = None,
    per_channel: bool = True,
    float_ops: Sequence[str] = (),
) -> bytes:
    """Converts SavedModel signatures to one TFLite flatbuffer holding each as a signature.

    Args:
        saved_model: path. The SavedModel folder.
        signatures: sequence of str. The signatures to convert (their input and output names
            are kept).
        quantize: str. `"none"` (float32), `"dynamic"` (int8 weights, float activations),
            `"float16"` (float16 weights) or `"int8"` (full integer: int8 weights and
            activations, int8 float inputs/outputs; integer inputs such as uint8 images or
            int32 tokens stay as they are).
        calibration: callable. For `"int8"`: returns an iterable of `(signature, inputs)`
            drawn from the training data, over which activation ranges are measured.
        per_channel: bool. For `"int8"`: a scale per output channel of each weight (TFLite's
            default), else one per weight tensor. Defaults to `True`.
        float_ops: sequence of str. For `"int8"`: TFLite builtin op names (`"SOFTMAX"`) kept in
            float between dequantise and quantise ops, for ops that LiteRT's XNNPACK runs only
            in float (the rest of the file stays int8). Defaults to none.
    """
    if quantize not in QUANTIZATIONS:
        choices = ", ".join(QUANTIZATIONS)
        raise UserError(f"unknown quantization {quantize!r}; choose from {choices}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=list(signatures)
    )
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if calibration is None:
            raise ValueError("int8 quantization needs calibration data")
        converter.representative_dataset = calibration
        # Builtin int8 kernels only: a float fallback would hide an op that did not quantise.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_disable_per_channel = not per_channel  # no public switch
        # No public switch keeps chosen ops in float either: as the quantisation debugger does,
        # calibrate, then quantise with those ops denylisted.
        converter._experimental_calibrate_only = bool(float_ops)
    # The converter's MLIR passes print to fd 2 and its calibrator warns that it uses the
    # deprecated tf.lite.Interpreter; neither helps a user, and a failure replays them.
    with native_stderr_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = converter.convert()
        if quantize == "int8" and float_ops:
            data = _quantize_except(data, per_channel, float_ops)
    return data


# Elementwise ops that XNNPACK runs in int8 only for some ratios of their scales: it refuses
# LayerNorm's `variance + epsilon` (epsilon's scale is ~1e-5 of the variance's) and the bias of
# attention's key projection (near zero: softmax ignores it, so training leaves it so). Where it
# refuses such a node, the node is kept in float too, which XNNPACK runs.
_SCALE_LIMITED_OPS = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "MEAN"}


def _quantize_except(calibrated: bytes, per_channel: bool, float_ops: Sequence[str]) -> bytes:
    """A calibrated model quantised to full int8 (int8 inputs and outputs) but for `float_ops`
    and for the `_SCALE_LIMITED_OPS` nodes that XNNPACK then refuses in int8.

    This path skips the converter's `TFLITE_BUILTINS_INT8` check: an op that cannot be
    quantised stays float here instead of failing the conversion."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python.convert import mlir_quantize

    def quantize(float_nodes: Sequence[str] = ()) -> bytes:
        return mlir_quantize(
            calibrated,
            disable_per_channel=not per_channel,
            input_data_type=tf.int8,
            output_data_type=tf.int8,
            denylisted_ops=list(float_ops),
            denylisted_nodes=list(float_nodes),  # by output tensor name
        )

    data = quantize()
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    refused = [
        tensors[op["outputs"][0]]["name"]
        for op in _reference_nodes(interpreter)
        if op["op_name"] in _SCALE_LIMITED_OPS and tensors[op["outputs"][0]]["dtype"] == np.int8
    ]
    return quantize(refused) if refused else data


def reference_kernel_ops(interpreter: Any) -> dict[str, int]:
    """`{op name: count}` of the ops of a LiteRT interpreter's primary subgraph that its
    delegates (XNNPACK on CPU) did not take, i.e. that run on TFLite's reference kernels. The
    interpreter must be allocated (delegates are applied then)."""
    return dict(sorted(Counter(op["op_name"] for op in _reference_nodes(interpreter)).items()))


def _reference_nodes(interpreter: Any) -> list[dict[str, Any]]:
    """The primary subgraph's nodes that no delegate took, as `_get_ops_details` lists them.

    A delegate replaces the nodes it takes with one `DELEGATE` node per partition, whose inputs
    and outputs are the partition's; its nodes are those reached from its outputs without
    crossing its inputs."""
    ops = interpreter._get_ops_details()  # no public API lists the delegated nodes
    producer = {
        tensor: op["index"] for op in ops if op["op_name"] != "DELEGATE" for tensor in op["outputs"]
    }
    delegated = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary, pending = set(op["inputs"]), list(op["outputs"])
        while pending:
            tensor = pending.pop()
            node = producer.get(tensor)
            if tensor in boundary or node is None or node in delegated:
                continue
            delegated.add(node)
            pending.extend(ops[node]["inputs"])
    return [op for op in ops if op["op_name"] != "DELEGATE" and op["index"] not in delegated]


class TfliteModel:
    """The signatures of a `.tflite` file, run with the LiteRT interpreter (`ai-edge-litert`).

    A call runs the signature whose input names it is given (a file may hold several, such as
    an encoder and a decoder step). Takes and returns float or integer numpy arrays by name;
    quantised (int8) float inputs and outputs are converted with the file's scale and zero
    point, so callers compare every variant in the same units.

    Args:
        path: path. The `.tflite` file.
        num_threads: int. Interpreter threads. Defaults to the machine's CPU count.

    Attributes:
        inputs, outputs: `{signature: {name: LiteRT tensor details}}`.
        reference_ops: `{signature: {op name: count}}`, the ops that run on TFLite's reference
            kernels rather than a delegate's (see `reference_kernel_ops`), for the signature
            in the primary subgraph (LiteRT's Python API lists no other subgraph's ops).
    """

    def __init__(self, path: Path, num_threads: int | None = None):
        # Not tf.lite.Interpreter: with its default XNNPACK delegate it gave wrong int8
        # Transformer outputs on this CPU, where LiteRT's are right.
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.num_threads = num_threads or os.cpu_count() or 1
        try:
            with native_stderr_captured(replay_on_error=False):
                interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
                # Before any signature runner holds its tensors (allocating refuses then).
                interpreter.allocate_tensors()
            signatures = interpreter.get_signature_list()
            if not signatures:
                raise ValueError("no signatures")
            self.reference_ops = {
                name: reference_kernel_ops(interpreter)
                for name in signatures
                if interpreter._interpreter.GetSubgraphIndexFromSignature(name) == 0
            }
            self.runners = {name: interpreter.get_signature_runner(name) for name in signatures}
        except (ValueError, RuntimeError) as e:
            raise UserError(
                f"{self.path}: not a usable TFLite model (truncated or corrupted?): "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        self.inputs = {name: r.get_input_details() for name, r in self.runners.items()}
        self.outputs = {name: r.get_output_details() for name, r in self.runners.items()}
        self._shapes: dict[str, dict[str, tuple[int, ...]]] = {}
        # The arrays of each signature's last call that have integer forms, by id:
        # `(array, integers, quantisation)` for its quantised inputs and dequantised outputs.
        self._known: dict[str, dict[int, tuple[np.ndarray, np.ndarray, tuple]]] = {}

    def signature_for(self, names: Iterable[str]) -> str:
        """The signature whose inputs are exactly `names`."""
        names = set(names)
        for signature, inputs in self.inputs.items():
            if set(inputs) == names:
                return signature
        expected = " or ".join(str(sorted(inputs)) for inputs in self.inputs.values())
        raise UserError(f"{self.path.name} takes inputs {expected}, got {sorted(names)}")

    def __call__(self, inputs: Inputs) -> dict[str, np.ndarray]:
        signature = self.signature_for(inputs)
        details_in = self.inputs[signature]
        quantized = {name: self._integers(v, details_in[name]) for name, v in inputs.items()}
        shapes = {name: value.shape for name, value in quantized.items()}
        if shapes != self._shapes.get(signature):
            # The runner resizes and allocates on new shapes (LiteRT skips both otherwise),
            # printing "Created TensorFlow Lite XNNPACK delegate" the first time.
            with native_stderr_captured():
                outputs = self.runners[signature](**quantized)
            self._shapes[signature] = shapes
        else:
            outputs = self.runners[signature](**quantized)
        details = self.outputs[signature]
        dequantized = {name: _dequantize(value, details[name]) for name, value in outputs.items()}
        known = [(dequantized[name], outputs[name], details[name]) for name in outputs]
        known += [
            (inputs[name], quantized[name], details_in[name])
            for name in inputs
            if isinstance(inputs[name], np.ndarray) and not inputs[name].flags.writeable
        ]
        self._known[signature] = {
            id(array): (array, integers, detail["quantization"])
            for array, integers, detail in known
            if _is_quantized(detail) and array is not integers
        }
        return dequantized

    def _integers(self, value: np.ndarray, detail: dict) -> np.ndarray:
        """`value` as the input tensor takes it, quantised if the input is.

        An array of the last call (of any signature) goes in as the integers it had there
        when the input has the same quantisation: one it returned, dequantised, as the
        integers it came out as (so a returned array must not be changed in place and passed
        back); a read-only one it was given, as the integers it was quantised to. A deployed
        int8 model carries its state (a language model's key/value cache) as integers;
        quantising it in numpy on every step would cost more than the step itself."""
        for known in self._known.values():
            array, integers, quantization = known.get(id(value), (None, None, None))
            if array is value and quantization == detail["quantization"]:
                return integers
        return _quantize(np.asarray(value), detail)


def _is_quantized(detail: dict) -> bool:
    scale, _ = detail["quantization"]
    return scale != 0.0


def _quantize(value: np.ndarray, detail: dict) -> np.ndarray:
    if not _is_quantized(detail) or not np.issubdtype(value.dtype, np.floating):
        return value.astype(detail["dtype"], copy=False)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(value / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    if not _is_quantized(detail):
        return value
    scale, zero_point = detail["quantization"]
    return (value.astype(np.float32) - zero_point) * np.float32(scale)
