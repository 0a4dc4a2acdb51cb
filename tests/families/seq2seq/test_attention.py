import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.export.tflite import TfliteModel, convert
from bigmodel_tf.families.seq2seq.attention import BahdanauAttention, LuongAttention

LAYERS = {
    "bahdanau": lambda: BahdanauAttention(units=6, name="attention"),
    "luong": lambda: LuongAttention(name="attention"),
}


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(2, 3, 5)).astype("float32")  # (batch, queries, query_dim)
    value = rng.normal(size=(2, 4, 7)).astype("float32")  # (batch, values, value_dim)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)  # the second example has 2 real values
    return query, value, mask


@pytest.fixture(params=sorted(LAYERS))
def layer(request):
    keras.utils.set_random_seed(0)
    return LAYERS[request.param]()


def test_shapes_and_weights_sum_to_one(layer):
    query, value, _ = inputs()
    context, weights = layer(query, value)
    assert tuple(context.shape) == (2, 3, 7) and tuple(weights.shape) == (2, 3, 4)
    np.testing.assert_allclose(np.sum(weights, -1), 1.0, atol=1e-6)
    np.testing.assert_allclose(context, np.einsum("bqv,bvd->bqd", weights, value), atol=1e-5)


def test_padded_positions_get_zero_weight_and_do_not_matter(layer):
    query, value, mask = inputs()
    context, weights = layer(query, value, value_mask=mask)
    weights = np.asarray(weights)
    assert np.all(weights[0, :, 3] == 0.0) and np.all(weights[1, :, 2:] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    noisy = value.copy()
    noisy[~mask] = 1e3  # whatever sits in padded positions
    other_context, other_weights = layer(query, noisy, value_mask=mask)
    np.testing.assert_allclose(other_context, context, atol=1e-5)
    np.testing.assert_allclose(other_weights, weights, atol=1e-6)
    _, unmasked = layer(query, value)
    assert np.all(np.asarray(unmasked)[1, :, 2:] > 0)  # the mask is what zeroes them


def test_precomputed_keys_give_the_same_result(layer):
    query, value, mask = inputs(1)
    expected = layer(query, value, value_mask=mask)
    again = layer(query, value, value_mask=mask, keys=layer.project_keys(value))
    for a, b in zip(again, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_scores_are_the_papers(layer):
    query, value, _ = inputs(2)
    layer(query, value)
    keys = np.asarray(layer.project_keys(value))
    if isinstance(layer, BahdanauAttention):
        w_q = np.asarray(layer.query_dense.kernel)
        v = np.asarray(layer.energy.kernel)[:, 0]
        projected = query @ w_q  # (b, q, units)
        expected = np.tanh(projected[:, :, None] + keys[:, None]) @ v
    else:
        expected = np.einsum("bqd,bvd->bqv", query, keys) / np.sqrt(query.shape[-1])
    np.testing.assert_allclose(layer.score(query, keys), expected, atol=1e-5)


def test_config_round_trip(layer):
    query, value, mask = inputs()
    layer(query, value)
    clone = layer.__class__.from_config(layer.get_config())
    clone(query, value)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    for a, b in zip(
        clone(query, value, value_mask=mask), layer(query, value, value_mask=mask), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_full_int8_conversion_keeps_the_weights_of_a_padded_batch(layer, tmp_path):
    # A masked score filled with -1e9 (Keras' Softmax) sets the scores' int8 scale so coarse
    # that every real score rounds to one value and the weights become uniform. Measured: max
    # difference 0.03 (Bahdanau) and 0.02 (Luong); 0.24 and 0.48 with the -1e9 fill.
    query, value, mask = inputs()
    layer(query, value, value_mask=mask)
    signature = [
        tf.TensorSpec(query.shape, tf.float32, name="query"),
        tf.TensorSpec(value.shape, tf.float32, name="value"),
        tf.TensorSpec(mask.shape, tf.float32, name="mask"),
    ]

    def attend(query, value, mask):
        return {"weights": layer(query, value, value_mask=mask)[1]}

    def calibration():
        for seed in range(20):
            q, v, _ = inputs(seed)
            yield "serve", {"query": q, "value": v, "mask": mask.astype("float32")}

    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint("serve", attend, input_signature=signature)
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    path = tmp_path / "attention.tflite"
    path.write_bytes(convert(tmp_path / "saved_model", ["serve"], "int8", calibration))
    weights = TfliteModel(path)({"query": query, "value": value, "mask": mask.astype("float32")})
    expected = np.asarray(layer(query, value, value_mask=mask)[1])
    np.testing.assert_allclose(weights["weights"], expected, atol=0.05)
