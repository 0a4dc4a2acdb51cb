"""Full-int8 conversion with ops kept in float, and the ops LiteRT leaves to reference kernels."""

import keras
import numpy as np
import pytest

from bigmodel_tf.export.tflite import TfliteModel, convert
from bigmodel_tf.families.transformer.serving import TRANSFORMER_FLOAT_OPS

ATTENTION_OPS = {"SOFTMAX", "BATCH_MATMUL"}


@pytest.fixture(scope="module")
def attention(tmp_path_factory):
    """A SavedModel of one attention head with LayerNorm: `(batch, 8, 16)` in and out, its
    random calibration inputs and its Keras outputs on them."""
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 16), name="x")
    query, key, value = (keras.layers.Dense(16)(x) for _ in range(3))
    weights = keras.layers.Softmax()(keras.ops.matmul(query, keras.ops.swapaxes(key, 1, 2)))
    y = keras.layers.LayerNormalization()(x + keras.ops.matmul(weights, value))
    model = keras.Model(x, y)
    path = tmp_path_factory.mktemp("attention") / "saved_model"
    model.export(str(path), format="tf_saved_model", verbose=False)
    inputs = np.random.default_rng(0).normal(size=(64, 8, 16)).astype("float32")
    return path, inputs, np.asarray(model(inputs))


def convert_int8(attention, tmp_path, float_ops=()) -> TfliteModel:
    path, inputs, _ = attention
    data = convert(
        path,
        ["serve"],
        "int8",
        lambda: [("serve", {"x": inputs[i : i + 1]}) for i in range(len(inputs))],
        float_ops=float_ops,
    )
    file = tmp_path / "model.tflite"
    file.write_bytes(data)
    return TfliteModel(file)


def test_int8_attention_runs_on_reference_kernels(attention, tmp_path):
    # The reason for `float_ops`: if LiteRT's XNNPACK learns int8 attention, this fails and the
    # Transformer families' TRANSFORMER_FLOAT_OPS should be measured again.
    model = convert_int8(attention, tmp_path)
    assert set(model.reference_ops["serve"]) >= ATTENTION_OPS | {"ADD"}, model.reference_ops


def test_float_ops_stay_float_on_xnnpack_between_int8_edges(attention, tmp_path):
    _, inputs, expected = attention
    model = convert_int8(attention, tmp_path, float_ops=TRANSFORMER_FLOAT_OPS)
    # On reference kernels, only what the float32 file has there too (shape arithmetic):
    # LayerNorm's `variance + epsilon`, which XNNPACK refuses in int8 (see _SCALE_LIMITED_OPS),
    # is float too.
    path, _, _ = attention
    (tmp_path / "float32.tflite").write_bytes(convert(path, ["serve"], "none"))
    assert model.reference_ops == TfliteModel(tmp_path / "float32.tflite").reference_ops
    (x,) = model.inputs["serve"].values()
    (y,) = model.outputs["serve"].values()
    assert x["dtype"] == np.int8 and y["dtype"] == np.int8  # still int8 at its edges
    outputs = model({"x": inputs})
    (name,) = outputs
    # LayerNorm outputs of unit variance: int8 rounding is about 1/30 of that.
    assert np.abs(outputs[name] - expected).max() < 0.2
