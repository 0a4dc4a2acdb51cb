"""Exporting the `transformer` classifier: `serve` on raw strings, `tokens` in SavedModel and
TFLite, each against Keras."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.export import QUANTIZATIONS, export, verify
from bigmodel_tf.export.tflite import TfliteModel
from bigmodel_tf.families.transformer.data import subword_examples
from bigmodel_tf.families.transformer.serving import TRANSFORMER_FLOAT_OPS
from bigmodel_tf.training import classify
from bigmodel_tf.training.runs import load_trained
from tests.helpers import REPORT_VARIANTS, assert_tflite_matches_keras

# Parity of the tiny test Transformer (tests.helpers.TINY_TRANSFORMER) on 256 test snippets,
# against Keras. Measured: TODO.
FLOAT32_TOLERANCE = 1e-5
FLOAT16_TOLERANCE = 1e-2
INT8_AGREEMENT_FLOOR = 0.95

TEXTS = [
    "A gorgeous, witty, seductive movie.",
    "Two hours of my life I will never get back.",
    "",  # an empty text is [CLS] alone: the model's prior
    b"bad \xff\xfe acting",  # bytes that are not UTF-8 read as U+FFFD
    "a long, long review " * 200,  # truncated to the sequence length
]


@pytest.fixture(scope="module")
def exported(trained_transformer, tmp_path_factory):
    """The tiny Transformer exported with all four TFLite files (shared, read-only)."""
    return export(trained_transformer, tmp_path_factory.mktemp("savedmodels") / "transformer" / "1")


@pytest.fixture(scope="module")
def test_batch(trained_transformer):
    """256 test snippets as `(token_ids, labels)`, padded to the longest of them."""
    config, _, spec, model = load_trained(trained_transformer)
    examples = subword_examples(config.dataset, "test", spec)
    ids, labels = next(iter(examples.padded_batch(256)))
    return ids.numpy(), labels.numpy(), np.asarray(model(ids))


def serve(exported, texts):
    serving = tf.saved_model.load(str(exported / "saved_model")).signatures["serving_default"]
    return serving(texts=tf.constant(texts))


def test_metadata_describes_the_tokens_signature_and_the_vocabulary(trained_transformer, exported):
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["inputs"] == {"token_ids": {"dtype": "int32", "shape": [None, None]}}
    assert metadata["outputs"] == {"probabilities": {"dtype": "float32", "shape": [None, 2]}}
    assert metadata["serve"]["inputs"] == {"texts": {"dtype": "string", "shape": [None]}}
    assert metadata["labels"] == ["rotten", "fresh"] and metadata["pad_id"] == PAD_ID
    vocabulary = json.loads((trained_transformer / "wordpiece.json").read_text())["vocabulary"]
    assert metadata["vocabulary"] == vocabulary and metadata["sequence_length"] == 64
    assert metadata["tflite"]["signatures"] == ["tokens"]


def test_savedmodel_serves_raw_strings_as_classify_does(trained_transformer, exported):
    served = serve(exported, TEXTS)
    assert served["probabilities"].shape == (len(TEXTS), 2)
    valid = [0, 1, 4]  # classify() refuses the empty and the non-UTF-8 text
    expected = classify(trained_transformer, [TEXTS[i] for i in valid])
    for i, result in zip(valid, expected, strict=True):
        np.testing.assert_allclose(
            served["probabilities"][i].numpy(),
            [result["probabilities"][label] for label in ("rotten", "fresh")],
            atol=1e-6,
        )
        assert served["label"][i].numpy().decode() == result["label"]


def test_savedmodel_reads_odd_texts_without_failing(trained_transformer, exported):
    probabilities = serve(exported, TEXTS)["probabilities"].numpy()
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    # Only the first sequence_length - 1 subwords count: more of the same text changes nothing.
    longer = serve(exported, ["a long, long review " * 400])["probabilities"].numpy()
    np.testing.assert_allclose(longer[0], probabilities[4], atol=1e-6)


def test_tflite_files_match_keras(exported, test_batch):
    ids, _, expected = test_batch
    outputs = {
        mode: TfliteModel(exported / name)({"token_ids": ids})["probabilities"]
        for mode, name in QUANTIZATIONS.items()
    }
    assert_tflite_matches_keras(
        outputs,
        expected,
        {"none": FLOAT32_TOLERANCE, "float16": FLOAT16_TOLERANCE},
        INT8_AGREEMENT_FLOOR,
    )


def test_int8_file_takes_token_ids(exported):
    model = TfliteModel(exported / "model_int8.tflite")
    assert model.inputs["tokens"]["token_ids"]["dtype"] == np.int32  # ids stay ids
    assert model.outputs["tokens"]["probabilities"]["dtype"] == np.int8


def test_int8_file_keeps_what_xnnpack_runs_only_in_float_in_float(exported):
    model = TfliteModel(exported / "model_int8.tflite")
    assert not set(TRANSFORMER_FLOAT_OPS) & set(model.reference_ops["tokens"]), model.reference_ops
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["tflite"]["int8_float_ops"] == list(TRANSFORMER_FLOAT_OPS)


def test_report_names_the_variant_to_ship_and_the_ops_on_reference_kernels(exported):
    report = json.loads((exported / "report.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert [name for name, row in rows.items() if "reference_ops" in row] == [
        name for name in rows if name.startswith("tflite ")
    ]
    assert all(set(rows[name]["reference_ops"]) == {"tokens"} for name in rows if "tflite" in name)
    choice = report["recommendation"]
    assert rows[choice["variant"]]["file"] == choice["file"]
    assert choice["variant"] == "tflite float32" or choice["quality_cost"] <= 0.005
    markdown = (exported / "report.md").read_text()
    assert f"**{choice['variant']}**" in markdown and "## Ops on reference kernels" in markdown


def test_report_measures_every_variant_on_the_test_split(trained_transformer, exported):
    report = json.loads((exported / "report.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == REPORT_VARIANTS
    assert report["metric"] == "accuracy" and report["test_examples"] == 1275
    trained = json.loads((trained_transformer / "metrics.json").read_text())["test"]["accuracy"]
    assert rows["keras"]["accuracy"] == pytest.approx(trained, abs=1e-6)
    assert rows["saved_model"]["max_abs_diff"] < 1e-5
    assert rows["tflite float32"]["max_abs_diff"] < FLOAT32_TOLERANCE
    assert rows["tflite int8"]["top1_agreement"] >= INT8_AGREEMENT_FLOOR


def test_verify_reproduces_the_report(exported):
    rows, mismatches = verify(exported)
    assert mismatches == []
    report = json.loads((exported / "report.json").read_text())
    assert [row["variant"] for row in rows] == [row["variant"] for row in report["rows"][1:]]
