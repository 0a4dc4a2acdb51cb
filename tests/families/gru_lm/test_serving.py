"""Exporting the `gru-lm` family: `generate` on strings, `step` in SavedModel and TFLite."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import training
from bigmodel_tf.export import QUANTIZATIONS, export, verify
from bigmodel_tf.export.tflite import TfliteModel
from bigmodel_tf.families.language_model.data import char_streams, load_vocabulary
from bigmodel_tf.training.runs import load_trained
from tests.helpers import REPORT_VARIANTS, assert_tflite_matches_keras

# The tiny test GRU (tests.helpers.TINY_GRU_LM) over 100 steps of 8 test-text streams, each
# variant carrying its own states. Measured: float32 logits within 3.8e-6 of Keras and float16
# within 4.7e-3; full int8 picks Keras' next character for 95.8% of the 800 predictions (96.3% of
# the report's 51,200) and dynamic-range int8 for 98.8%.
FLOAT32_TOLERANCE = 1e-4
FLOAT16_TOLERANCE = 2e-2
INT8_AGREEMENT_FLOOR = 0.93


@pytest.fixture(scope="module")
def exported(trained_gru_lm, tmp_path_factory):
    """The tiny GRU exported with all four TFLite files (shared, read-only)."""
    return export(trained_gru_lm, tmp_path_factory.mktemp("savedmodels") / "gru-lm" / "1")


@pytest.fixture(scope="module")
def keras_run(trained_gru_lm):
    config, _, spec, model = load_trained(trained_gru_lm)
    return config, spec, model


def test_metadata_describes_the_step_signature_and_the_vocabulary(trained_gru_lm, exported):
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["inputs"] == {
        "token": {"dtype": "int32", "shape": [None]},
        "state_1": {"dtype": "float32", "shape": [None, 64]},
    }
    vocabulary = load_vocabulary(trained_gru_lm / "vocabulary.json")
    assert metadata["outputs"]["logits"] == {"dtype": "float32", "shape": [None, len(vocabulary)]}
    assert metadata["vocabulary"] == vocabulary and metadata["oov_id"] == 0
    assert metadata["state_sizes"] == [64]
    assert set(metadata["generate"]["inputs"]) == {"prompt", "length", "temperature", "seed"}
    assert metadata["tflite"]["signatures"] == ["step"]


@pytest.mark.parametrize(("prompt", "temperature", "seed"), [("ROMEO:", 0.8, 3), ("", 1.5, 4)])
def test_savedmodel_generate_equals_eager_generation(
    trained_gru_lm, exported, prompt, temperature, seed
):
    generate = tf.saved_model.load(str(exported / "saved_model")).signatures["generate"]
    served = generate(
        prompt=tf.constant(prompt),
        length=tf.constant(120),
        temperature=tf.constant(temperature),
        seed=tf.constant(seed),
    )["text"]
    text = served.numpy().decode()
    assert len(text) == 120
    expected = training.generate_text(trained_gru_lm, prompt, 120, temperature, seed=seed)
    assert text == expected


@pytest.mark.parametrize(
    ("length", "temperature", "message"),
    [(0, 1.0, "length must be >= 1"), (10, 0.0, "temperature must be > 0")],
)
def test_savedmodel_generate_refuses_bad_arguments(exported, length, temperature, message):
    generate = tf.saved_model.load(str(exported / "saved_model")).signatures["generate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        generate(
            prompt=tf.constant("a"),
            length=tf.constant(length),
            temperature=tf.constant(temperature),
            seed=tf.constant(1),
        )


def carried(run, tokens: np.ndarray) -> np.ndarray:
    """Logits of `run` stepped over time-major `tokens`, from zero states, carrying its own."""
    state, logits = np.zeros((tokens.shape[1], 64), "float32"), []
    for token in tokens:
        outputs = run({"token": token, "state_1": state})
        state = outputs["state_1"]
        logits.append(outputs["logits"])
    return np.stack(logits)  # (steps, streams, vocab)


def test_tflite_step_tracks_keras_for_100_steps_of_carried_state(exported, keras_run):
    config, spec, model = keras_run
    tokens, _ = char_streams(config.dataset, "test", spec, streams=8, steps=100)

    def keras_step(inputs):
        logits, (state,) = model.step(inputs["token"], [inputs["state_1"]])
        return {"logits": np.asarray(logits), "state_1": np.asarray(state)}

    expected = carried(keras_step, tokens)
    outputs = {
        mode: carried(TfliteModel(exported / name), tokens) for mode, name in QUANTIZATIONS.items()
    }
    assert_tflite_matches_keras(
        outputs,
        expected,
        {"none": FLOAT32_TOLERANCE, "float16": FLOAT16_TOLERANCE},
        INT8_AGREEMENT_FLOOR,
    )


def test_int8_state_inputs_are_calibrated_on_carried_states(exported):
    """GRU states span (-1, 1); calibrated on the batches' zero states alone, their int8 scale
    would collapse and every carried state would be rounded to zero."""
    model = TfliteModel(exported / "model_int8.tflite")
    inputs = model.inputs["step"]
    assert inputs["token"]["dtype"] == np.int32  # ids stay ids
    scale, _ = inputs["state_1"]["quantization"]
    assert inputs["state_1"]["dtype"] == np.int8 and scale > 1 / 255


def test_report_measures_every_variant_on_the_test_streams(exported):
    report = json.loads((exported / "report.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == REPORT_VARIANTS
    assert report["metric"] == "loss" and report["test_examples"] == 256 * 200
    assert rows["saved_model"]["max_abs_diff"] < 1e-5
    assert rows["tflite float32"]["max_abs_diff"] < FLOAT32_TOLERANCE
    assert rows["tflite int8"]["top1_agreement"] >= INT8_AGREEMENT_FLOOR
    for row in rows.values():
        assert 1.0 < row["loss"] < 2.5
        assert row["bits_per_char"] == pytest.approx(row["loss"] / np.log(2))
    lost = {check["target"]: check for check in report["targets"]}["loss added by int8"]
    assert lost["limit"] == 0.05 and lost["met"]
    assert "| tflite int8 | model_int8.tflite |" in (exported / "report.md").read_text()


def test_verify_reproduces_the_report(exported):
    rows, mismatches = verify(exported)
    assert mismatches == []
    report = json.loads((exported / "report.json").read_text())
    assert [row["variant"] for row in rows] == [row["variant"] for row in report["rows"][1:]]
