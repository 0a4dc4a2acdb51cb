"""TFLite conversion with post-training quantisation, and a LiteRT runner that checks its file.

    >>> data = convert(Path("saved_model"), "serving_default", "int8", calibration)
    >>> model = TfliteModel(Path("model_int8.tflite"))
    >>> model({"images": images})["probabilities"]        # dequantised float32

Models are converted from the exported SavedModel's signature, so a `.tflite` file takes the
same raw inputs (uint8 images, int32 tokens) under the same names as the SavedModel.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
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
    signature: str,
    quantize: str,
    calibration: Callable[[], Iterable[Inputs]] | None = None,
) -> bytes:
    """Converts one SavedModel signature to a TFLite flatbuffer.

    Args:
        saved_model: path. The SavedModel folder.
        signature: str. The signature to convert (its input and output names are kept).
        quantize: str. `"none"` (float32), `"dynamic"` (int8 weights, float activations),
            `"float16"` (float16 weights) or `"int8"` (full integer: int8 weights and
            activations, int8 float inputs/outputs; integer inputs such as uint8 images or
            int32 tokens stay as they are).
        calibration: callable. For `"int8"`: returns an iterable of input dicts drawn from the
            training data, over which activation ranges are measured.
    """
    if quantize not in QUANTIZATIONS:
        choices = ", ".join(QUANTIZATIONS)
        raise UserError(f"unknown quantization {quantize!r}; choose from {choices}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[signature]
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
    # The converter's MLIR passes print to fd 2 and its calibrator warns that it uses the
    # deprecated tf.lite.Interpreter; neither helps a user, and a failure replays them.
    with native_stderr_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


class TfliteModel:
    """One signature of a `.tflite` file run with the LiteRT interpreter (`ai-edge-litert`).

    Takes and returns float or integer numpy arrays by signature name; quantised (int8) float
    inputs and outputs are converted with the file's scale and zero point, so callers compare
    every variant in the same units.

    Args:
        path: path. The `.tflite` file.
        num_threads: int. Interpreter threads. Defaults to the machine's CPU count.
    """

    def __init__(self, path: Path, num_threads: int | None = None):
        # Not tf.lite.Interpreter: with its default XNNPACK delegate it gave wrong int8
        # Transformer outputs on this CPU, where LiteRT's are right.
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.num_threads = num_threads or os.cpu_count() or 1
        try:
            with native_stderr_captured(replay_on_error=False):
                self.interpreter = Interpreter(
                    model_path=str(self.path), num_threads=self.num_threads
                )
            signatures = self.interpreter.get_signature_list()
            (name,) = signatures
            runner = self.interpreter.get_signature_runner(name)
        except (ValueError, RuntimeError) as e:
            raise UserError(
                f"{self.path}: not a usable TFLite model (truncated or corrupted?): "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        self.signature = name
        self.inputs = runner.get_input_details()
        self.outputs = runner.get_output_details()
        self._shapes: dict[str, tuple[int, ...]] = {}

    def __call__(self, inputs: Inputs) -> dict[str, np.ndarray]:
        if set(inputs) != set(self.inputs):
            raise UserError(
                f"{self.path.name} takes inputs {sorted(self.inputs)}, got {sorted(inputs)}"
            )
        shapes = {name: np.shape(value) for name, value in inputs.items()}
        if shapes != self._shapes:
            for name, shape in shapes.items():
                self.interpreter.resize_tensor_input(self.inputs[name]["index"], shape)
            with native_stderr_captured():  # "Created TensorFlow Lite XNNPACK delegate"
                self.interpreter.allocate_tensors()
            self._shapes = shapes
        for name, value in inputs.items():
            detail = self.inputs[name]
            self.interpreter.set_tensor(detail["index"], _quantize(np.asarray(value), detail))
        self.interpreter.invoke()
        return {
            name: _dequantize(self.interpreter.get_tensor(detail["index"]), detail)
            for name, detail in self.outputs.items()
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
