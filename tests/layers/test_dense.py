import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.layers.dense import dense_over_last_axis


def tflite_ops(function, signature) -> list[str]:
    concrete = tf.function(function, input_signature=signature).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=converter.convert())
    return [op["op_name"] for op in interpreter._get_ops_details()]


@pytest.mark.parametrize("shape", [(2, 8), (2, 3, 8), (2, 3, 4, 8)])
def test_same_numbers_as_the_layer(shape):
    layer = keras.layers.Dense(5)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_allclose(dense_over_last_axis(layer, x), layer(x), rtol=1e-6, atol=1e-6)


def test_a_graph_of_unknown_batch_keeps_no_shape_arithmetic():
    layer = keras.layers.Dense(5)
    layer.build((None, 3, 8))
    signature = [tf.TensorSpec((None, 3, 8), tf.float32)]
    ops = tflite_ops(lambda x: dense_over_last_axis(layer, x), signature)
    assert sorted(set(ops)) == ["FULLY_CONNECTED", "RESHAPE"], ops
    # What it avoids: Keras' own rank-3 Dense computes its reshapes at run time.
    assert "REDUCE_PROD" in tflite_ops(lambda x: layer(x), signature)
