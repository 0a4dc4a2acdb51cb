import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import data
from bigmodel_tf.errors import UserError
from bigmodel_tf.export import export, next_version


def test_savedmodel_takes_uint8_images_and_matches_keras(trained_cnn, tmp_path):
    out = export(trained_cnn, tmp_path / "cnn" / "1")
    images, _ = next(iter(data.load("mnist5k", "test")[0].batch(64)))
    serving = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    served = serving(images=images)["probabilities"].numpy()
    model = keras.saving.load_model(trained_cnn / "checkpoints" / "best.keras", safe_mode=True)
    expected = model.predict(tf.cast(images, tf.float32) / 255.0, verbose=0)
    np.testing.assert_allclose(served, expected, atol=1e-6)

    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["inputs"]["images"] == {"dtype": "uint8", "shape": [None, 28, 28, 1]}
    assert metadata["labels"] == [str(i) for i in range(10)]
    assert metadata["metrics"]["test"]["accuracy"] > 0.8


def test_existing_version_needs_force(trained_cnn, tmp_path):
    out = export(trained_cnn, tmp_path / "1")
    stamp = (out / "metadata.json").stat().st_mtime_ns
    with pytest.raises(UserError, match="already exists; pass --force"):
        export(trained_cnn, out)
    assert (out / "metadata.json").stat().st_mtime_ns == stamp
    export(trained_cnn, out, force=True)
    assert (out / "metadata.json").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]  # no staging folders left


def test_failure_mid_export_leaves_nothing_at_the_target(trained_cnn, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("bigmodel_tf.export.write_json", fail)
    with pytest.raises(OSError, match="disk full"):
        export(trained_cnn, tmp_path / "1")
    assert list(tmp_path.iterdir()) == []


def test_versions_count_up(tmp_path):
    assert next_version(tmp_path / "missing") == tmp_path / "missing" / "1"
    (tmp_path / "3").mkdir()
    (tmp_path / "notes").mkdir()
    assert next_version(tmp_path) == tmp_path / "4"
