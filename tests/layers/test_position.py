import numpy as np
import pytest

from bigmodel_tf.layers import PositionEmbedding, SinusoidalPositionEncoding
from tests.helpers import assert_keras_file_round_trip


def documents_formula(length: int, dim: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    encoding = np.zeros((length, dim))
    for pos in range(length):
        for i in range(0, dim, 2):
            encoding[pos, i] = np.sin(pos / 10000 ** (i / dim))
            if i + 1 < dim:
                encoding[pos, i + 1] = np.cos(pos / 10000 ** (i / dim))
    return encoding


@pytest.mark.parametrize("dim", [8, 7])
def test_sinusoids_follow_the_documents_formula(dim):
    inputs = np.zeros((2, 50, dim), "float32")
    encoding = np.asarray(SinusoidalPositionEncoding()(inputs))
    assert encoding.shape == (2, 50, dim)
    np.testing.assert_allclose(encoding[1], documents_formula(50, dim), atol=1e-5)


@pytest.mark.parametrize("layer", [SinusoidalPositionEncoding(), PositionEmbedding(20)])
def test_start_index_gives_the_later_positions(layer):
    long = np.asarray(layer(np.zeros((1, 12, 6), "float32")))
    shifted = np.asarray(layer(np.zeros((1, 3, 6), "float32"), start_index=9))
    np.testing.assert_array_equal(shifted, long[:, 9:12])


def test_learned_positions_are_one_trainable_table():
    layer = PositionEmbedding(16)
    output = layer(np.zeros((3, 5, 4), "float32"))
    (table,) = layer.trainable_weights
    assert table.shape == (16, 4)
    np.testing.assert_array_equal(output[2], table.numpy()[:5])


@pytest.mark.parametrize(
    "layer", [SinusoidalPositionEncoding(max_wavelength=500.0), PositionEmbedding(9)]
)
def test_config_round_trip_and_keras_file(layer, tmp_path):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert_keras_file_round_trip(layer, np.ones((2, 9, 4), "float32"), tmp_path)
