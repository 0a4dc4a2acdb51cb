"""Exporting the `transformer-lm` family: `generate` on strings, the cached `step` in SavedModel
and TFLite."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import training
from bigmodel_tf.export import QUANTIZATIONS, export, verify
from bigmodel_tf.export.tflite import TfliteModel
from bigmodel_tf.export.variants import tensor_runner
from bigmodel_tf.families.language_model.data import char_streams
from bigmodel_tf.families.transformer.serving import TRANSFORMER_FLOAT_OPS
from bigmodel_tf.training.runs import load_trained
from tests.helpers import REPORT_VARIANTS, assert_tflite_matches_keras

# Minutes on 2 cores (a trained model, four conversions and a report over carried caches):
# `scripts/test.sh -m slow` runs it.
pytestmark = pytest.mark.slow

# The tiny test Transformer (tests.helpers.TINY_TRANSFORMER_LM) stepped over its 64-character
# context in 4 test-text streams, each variant carrying its own cache. Measured on the report's
# 256 streams: float32 logits within 9.8e-6 of Keras, float16 within 1.3e-2; dynamic-range
# int8 picks Keras' next character for 97.8% of the predictions, full int8 (its key/value cache
# quantised too) for 85.4% (86.3% on the test's 4 streams).
FLOAT32_TOLERANCE = 1e-4
FLOAT16_TOLERANCE = 5e-2
INT8_AGREEMENT_FLOOR = 0.8


@pytest.fixture(scope="module")
def exported(trained_transformer_lm, tmp_path_factory):
    """The tiny Transformer LM exported with all four TFLite files (shared, read-only)."""
    out = tmp_path_factory.mktemp("savedmodels") / "transformer-lm" / "1"
    return export(trained_transformer_lm, out, calibration_batches=20)


@pytest.fixture(scope="module")
def keras_run(trained_transformer_lm):
    config, _, spec, model = load_trained(trained_transformer_lm)
    return config, spec, model


def test_metadata_describes_the_cached_step(exported, keras_run):
    _, _, model = keras_run
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["inputs"] == {
        "token": {"dtype": "int32", "shape": [None]},
        "cache": {"dtype": "float32", "shape": [None, 4, 4, 64, 16]},
        "position": {"dtype": "int32", "shape": []},
    }
    assert list(model.backbone.cache_shape) == metadata["inputs"]["cache"]["shape"][1:]
    assert set(metadata["outputs"]) == {"logits", "cache", "position"}


def test_savedmodel_generate_equals_eager_generation(trained_transformer_lm, exported):
    generate = tf.saved_model.load(str(exported / "saved_model")).signatures["generate"]
    served = generate(
        prompt=tf.constant("ROMEO:"),
        length=tf.constant(200),  # past the 64-character context: the window slides
        temperature=tf.constant(0.9),
        seed=tf.constant(3),
    )["text"]
    expected = training.generate_text(trained_transformer_lm, "ROMEO:", 200, 0.9, seed=3)
    assert served.numpy().decode() == expected


def stepped(run, tokens: np.ndarray) -> np.ndarray:
    """Logits of `run` stepped over time-major `tokens` from an empty cache, carrying its own."""
    state, logits = None, []
    for token in tokens:
        inputs = {"token": token, **(state or {})}
        if state is None:
            inputs |= {"cache": np.zeros((len(token), 4, 4, 64, 16), "float32"), "position": 0}
        outputs = run(inputs)
        state = {"cache": outputs["cache"], "position": outputs["position"]}
        logits.append(outputs["logits"])
    return np.stack(logits)  # (steps, streams, vocab)


def test_every_variant_tracks_the_uncached_keras_pass_over_the_context(exported, keras_run):
    config, spec, model = keras_run
    tokens, _ = char_streams(config.dataset, "test", spec, streams=4, steps=64)
    expected = np.asarray(model(tokens.T)).transpose(1, 0, 2)  # one uncached pass per stream
    saved = tf.saved_model.load(str(exported / "saved_model")).signatures["step"]
    outputs = {"saved_model": stepped(tensor_runner(saved), tokens)} | {
        mode: stepped(TfliteModel(exported / name), tokens) for mode, name in QUANTIZATIONS.items()
    }
    assert_tflite_matches_keras(
        outputs,
        expected,
        {"saved_model": 1e-4, "none": FLOAT32_TOLERANCE, "float16": FLOAT16_TOLERANCE},
        INT8_AGREEMENT_FLOOR,
    )


def test_a_fed_back_int8_cache_goes_in_as_the_integers_it_came_out_as(exported, keras_run):
    config, spec, _ = keras_run
    tokens, _ = char_streams(config.dataset, "test", spec, streams=4, steps=16)
    model = TfliteModel(exported / "model_int8.tflite")
    carried = stepped(model, tokens)
    # A copy is not the array the model returned: it is quantised again, to the same integers.
    copied = stepped(lambda inputs: model({k: np.array(v) for k, v in inputs.items()}), tokens)
    np.testing.assert_array_equal(carried, copied)


def test_report_measures_every_variant_on_the_test_streams(exported):
    report = json.loads((exported / "report.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == REPORT_VARIANTS
    assert report["test_examples"] == 256 * 64  # streams x the 64-character context
    assert rows["tflite float32"]["max_abs_diff"] < FLOAT32_TOLERANCE
    for row in rows.values():
        assert 1.0 < row["loss"] < 3.0


def test_int8_step_keeps_attention_on_xnnpack_and_the_report_says_what_to_ship(exported):
    model = TfliteModel(exported / "model_int8.tflite")
    assert not set(TRANSFORMER_FLOAT_OPS) & set(model.reference_ops["step"]), model.reference_ops
    report = json.loads((exported / "report.json").read_text())
    choice = report["recommendation"]
    assert choice["variant"] == "tflite float32" or choice["quality_cost"] <= 0.05
    assert "step" in {row["variant"]: row for row in report["rows"]}["tflite int8"]["reference_ops"]


def test_int8_step_keeps_layer_norm_statistics_in_float(exported):
    # One int8 scale for every row's variance is the int8 file's largest error once training
    # has grown the residual stream (docs/results.md, the language model's int8 note).
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported / "model_int8.tflite"))
    interpreter.allocate_tensors()
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    means = [
        tensors[op["outputs"][0]]
        for op in interpreter._get_ops_details()
        if op["op_name"] == "MEAN"
    ]
    # Each LayerNorm's mean and variance: 2 per block and the final norm's.
    assert len(means) == 2 * (2 * 2 + 1)
    assert {tensor["dtype"] for tensor in means} == {np.float32}


def test_the_step_computes_no_shapes_at_run_time(exported):
    # Its batch is unknown: Keras' rank-3 Dense and reshapes by `ops.shape` would leave shape
    # arithmetic in the file (`layers.dense`); one SHAPE broadcasts the position embedding.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported / "model_float32.tflite"))
    names = [op["op_name"] for op in interpreter._get_ops_details()]
    assert "REDUCE_PROD" not in names and names.count("SHAPE") <= 1, sorted(set(names))


def test_verify_reproduces_the_report(exported):
    _, mismatches = verify(exported)
    assert mismatches == []
