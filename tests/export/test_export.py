import errno
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import data
from bigmodel_tf.errors import UserError
from bigmodel_tf.export import (
    QUANTIZATIONS,
    CalibrationSample,
    export,
    next_version,
    parse_quantize,
    verify,
)
from bigmodel_tf.export.tflite import TfliteModel, convert
from tests.helpers import REPORT_VARIANTS

# The tiny test CNN (~0.9 accuracy after one epoch) must keep this much top-1 agreement with
# Keras after full-int8 quantisation; measured 0.993 on the 1,000 test images.
INT8_AGREEMENT_FLOOR = 0.98


@pytest.fixture(scope="module")
def exported(trained_cnn, tmp_path_factory):
    """The tiny CNN exported with all four TFLite files (shared, read-only)."""
    return export(trained_cnn, tmp_path_factory.mktemp("savedmodels") / "cnn" / "1")


@pytest.fixture(scope="module")
def test_images():
    images, labels = next(iter(data.load("mnist5k", "test")[0].batch(64)))
    return images.numpy(), labels.numpy()


def keras_probabilities(run_dir, images):
    model = keras.saving.load_model(run_dir / "checkpoints" / "best.keras", safe_mode=True)
    return model.predict(tf.cast(images, tf.float32) / 255.0, verbose=0)


def test_export_writes_every_artefact(exported):
    names = {p.name for p in exported.iterdir()}
    assert names == {"saved_model", "metadata.json", "report.json", "report.md"} | set(
        QUANTIZATIONS.values()
    )
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["inputs"]["images"] == {"dtype": "uint8", "shape": [None, 28, 28, 1]}
    assert metadata["labels"] == [str(i) for i in range(10)]
    assert metadata["metrics"]["test"]["accuracy"] > 0.8
    assert set(metadata["versions"]) == {"tensorflow", "keras", "ai-edge-litert"}
    for name, record in metadata["tflite"]["files"].items():
        assert record["bytes"] == (exported / name).stat().st_size


def test_savedmodel_takes_uint8_images_and_matches_keras(trained_cnn, exported, test_images):
    images, _ = test_images
    serving = tf.saved_model.load(str(exported / "saved_model")).signatures["serving_default"]
    served = serving(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(served, keras_probabilities(trained_cnn, images), atol=1e-6)


def test_tflite_files_run_and_match_keras(trained_cnn, exported, test_images):
    images, _ = test_images
    expected = keras_probabilities(trained_cnn, images)
    outputs = {
        mode: TfliteModel(exported / name)({"images": images})["probabilities"]
        for mode, name in QUANTIZATIONS.items()
    }
    np.testing.assert_allclose(outputs["none"], expected, atol=1e-4)
    for mode in ("dynamic", "float16", "int8"):
        assert outputs[mode].shape == expected.shape
        np.testing.assert_allclose(outputs[mode].sum(-1), 1.0, atol=0.05)  # still softmax rows


def test_int8_file_is_integer_end_to_end(exported):
    model = TfliteModel(exported / "model_int8.tflite")
    assert model.inputs["serve"]["images"]["dtype"] == np.uint8  # raw pixels, no float input
    assert model.outputs["serve"]["probabilities"]["dtype"] == np.int8
    assert model.outputs["serve"]["probabilities"]["quantization"][0] > 0


def test_report_measures_every_variant_against_keras(exported):
    report = json.loads((exported / "report.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == REPORT_VARIANTS
    assert report["test_examples"] == 1000
    assert rows["saved_model"]["max_abs_diff"] < 1e-5
    assert rows["tflite float32"]["max_abs_diff"] < 1e-4
    assert rows["tflite int8"]["top1_agreement"] >= INT8_AGREEMENT_FLOOR
    for row in rows.values():
        assert row["latency_ms"]["1"] > 0 and row["latency_ms"]["32"] > 0
        assert 0.8 < row["accuracy"] <= 1.0
    sizes = {name: row["bytes"] for name, row in rows.items()}
    assert sizes["tflite int8"] < 0.35 * sizes["tflite float32"]
    assert sizes["tflite float16"] < 0.55 * sizes["tflite float32"]
    assert {check["target"] for check in report["targets"]} == {
        "float16 size / float32 size",
        "int8 size / float32 size",
        "int8 latency / float32 latency (1 example)",
        "accuracy lost by int8",
    }
    markdown = (exported / "report.md").read_text()
    assert "| tflite int8 | model_int8.tflite |" in markdown


def test_verify_reproduces_the_recorded_metrics(exported):
    """Regression: the artefacts alone reproduce report.json and the run's test accuracy."""
    rows, mismatches = verify(exported)
    assert mismatches == []
    metadata = json.loads((exported / "metadata.json").read_text())
    saved_model = rows[0]
    assert saved_model["variant"] == "saved_model"
    assert saved_model["accuracy"] == pytest.approx(metadata["metrics"]["test"]["accuracy"])


def test_verify_reports_a_modified_file(exported, tmp_path):
    copy = shutil.copytree(exported, tmp_path / "1")
    path = copy / "model_dynamic.tflite"
    path.write_bytes(path.read_bytes() + b"\0")  # still loads, but it is not what was exported
    _, mismatches = verify(copy)
    assert mismatches == [
        "model_dynamic.tflite: sha256 differs from metadata.json (modified or corrupted)"
    ]


def test_truncated_tflite_is_a_clear_error(exported, tmp_path):
    copy = shutil.copytree(exported, tmp_path / "1")
    path = copy / "model_int8.tflite"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"model_int8\.tflite: not a usable TFLite model"):
        verify(copy)


@pytest.mark.parametrize("name", ["metadata.json", "report.json"])
def test_damaged_export_json_is_named(exported, tmp_path, name):
    copy = shutil.copytree(exported, tmp_path / "1")
    (copy / name).write_text((copy / name).read_text()[:50])
    with pytest.raises(UserError, match=rf"{name} is damaged \(not valid JSON"):
        verify(copy)


def test_existing_version_needs_force(trained_cnn, tmp_path):
    out = export(trained_cnn, tmp_path / "1", quantize=())
    stamp = (out / "metadata.json").stat().st_mtime_ns
    with pytest.raises(UserError, match="already exists; pass --force"):
        export(trained_cnn, out, quantize=())
    assert (out / "metadata.json").stat().st_mtime_ns == stamp
    export(trained_cnn, out, force=True, quantize=("none",))
    assert (out / "metadata.json").stat().st_mtime_ns != stamp
    assert (out / "model_float32.tflite").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]  # no staging folders left


def test_a_report_on_the_first_test_batches_is_verified_on_the_same_ones(trained_cnn, tmp_path):
    out = export(trained_cnn, tmp_path / "1", quantize=("none",), test_batches=1)
    assert json.loads((out / "report.json").read_text())["test_examples"] == 256  # of 1,000
    _, mismatches = verify(out)
    assert mismatches == []  # nor compared with the run's metric over the whole split
    with pytest.raises(UserError, match="test batches must be >= 1"):
        export(trained_cnn, tmp_path / "2", test_batches=0)


def test_failure_mid_export_leaves_nothing_at_the_target(trained_cnn, tmp_path, monkeypatch):
    def fail_on_int8(saved_model, signature, quantize, calibration=None, **options):
        if quantize == "int8":
            raise OSError(errno.ENOSPC, "No space left on device")
        return convert(saved_model, signature, quantize, calibration, **options)

    monkeypatch.setattr("bigmodel_tf.export.convert", fail_on_int8)
    with pytest.raises(UserError, match=r"cannot write the export .*1: No space left on device"):
        export(trained_cnn, tmp_path / "1", quantize=("none", "int8"))
    assert list(tmp_path.iterdir()) == []


def test_quantize_modes_are_checked():
    assert parse_quantize("int8, none,int8") == ("int8", "none")
    assert parse_quantize("") == ()
    with pytest.raises(UserError, match="unknown quantization int4"):
        parse_quantize("none,int4")


def test_versions_count_up(tmp_path):
    assert next_version(tmp_path / "missing") == tmp_path / "missing" / "1"
    (tmp_path / "3").mkdir()
    (tmp_path / "notes").mkdir()
    assert next_version(tmp_path) == tmp_path / "4"


def test_calibration_sample_keeps_what_fits_drawn_from_every_call():
    sample = CalibrationSample(minimum=5, budget=80)  # each call below is 8 bytes: 10 fit
    for call in range(1000):
        sample.add({"x": np.full(2, call, np.int32)})
    kept = sorted(int(inputs["x"][0]) for inputs in sample.items)
    assert sample.seen == 1000 and len(kept) == 10 == len(set(kept))
    assert kept[-1] >= 500  # not just the first calls
    small = CalibrationSample(minimum=5, budget=8)  # one call fits, the minimum wins
    for call in range(3):
        small.add({"x": np.full(2, call, np.int32)})
    assert [int(inputs["x"][0]) for inputs in small.items] == [0, 1, 2]
