import dataclasses

import keras
import numpy as np
import pytest

from bigmodel_tf.families.cnn.model import PRESETS, CnnConfig, build_cnn


def preset(name: str) -> CnnConfig:
    return dataclasses.replace(CnnConfig(), **PRESETS[name])


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_outputs_are_probabilities_for_any_image_shape(name, shape):
    model = build_cnn(preset(name), shape, num_classes=7)
    probs = model(np.random.default_rng(0).random((3, *shape), dtype="float32"))
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)


def test_seed_preset_is_the_documents_network():
    model = build_cnn(preset("seed"), (28, 28, 1), num_classes=10)
    layers = [(type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None)))
              for layer in model.layers[1:]]  # fmt: skip
    assert layers == [
        ("Conv2D", 32), ("MaxPooling2D", None), ("Conv2D", 64), ("MaxPooling2D", None),
        ("Conv2D", 64), ("Flatten", None), ("Dense", 64), ("Dense", 10),
    ]  # fmt: skip
    assert model.count_params() == 93_322  # the documents' summary for 28x28x1 input


def test_get_config_round_trip():
    model = build_cnn(CnnConfig(), (28, 28, 1), num_classes=10)
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert clone.count_params() == model.count_params()
