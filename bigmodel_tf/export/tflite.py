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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

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
    # The converter's MLIR passes print to fd 2 and its calibrator warns that it uses the
    # deprecated tf.lite.Interpreter; neither helps a user, and a failure replays them.
    with native_stderr_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


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
            self.runners = {
                name: interpreter.get_signature_runner(name)
                for name in interpreter.get_signature_list()
            }
            if not self.runners:
                raise ValueError("no signatures")
        except (ValueError, RuntimeError) as e:
            raise UserError(
                f"{self.path}: not a usable TFLite model (truncated or corrupted?): "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        self.inputs = {name: r.get_input_details() for name, r in self.runners.items()}
        self.outputs = {name: r.get_output_details() for name, r in self.runners.items()}
        self._shapes: dict[str, dict[str, tuple[int, ...]]] = {}

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
        details = self.inputs[signature]
        quantized = {name: _quantize(np.asarray(v), details[name]) for name, v in inputs.items()}
        shapes = {name: value.shape for name, value in quantized.items()}
        if shapes != self._shapes.get(signature):
            # The runner resizes and allocates on new shapes (LiteRT skips both otherwise),
            # printing "Created TensorFlow Lite XNNPACK delegate" the first time.
            with native_stderr_captured():
                outputs = self.runners[signature](**quantized)
            self._shapes[signature] = shapes
        else:
            outputs = self.runners[signature](**quantized)
        return {
            name: _dequantize(value, self.outputs[signature][name])
            for name, value in outputs.items()
        }


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
