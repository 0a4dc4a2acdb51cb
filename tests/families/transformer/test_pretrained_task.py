"""The `minilm` preset: all-MiniLM-L6-v2 fine-tuned as a `transformer` classifier, through the
same trainer, export and `classify` as every run (two short steps here; the real run is the
bench's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import training
from bigmodel_tf.errors import UserError
from bigmodel_tf.export import export
from bigmodel_tf.families.transformer import pretrained
from bigmodel_tf.training.runs import load_trained
from tests.helpers import REPORT_VARIANTS, write_table

# write_table's classes, in label order.
TOPICS = ("food", "music", "sport")

SHORT = {
    "model.sequence_length": 16,
    "train.epochs": 1,
    "train.max_steps_per_epoch": 2,
    # Evaluation batches are this size too: larger ones read the two splits faster.
    "train.batch_size": 32,
    # Compiling a 22 M-weight model with XLA takes far longer than two steps.
    "train.jit_compile": "false",
}


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    # Your own table of three topics (the fine-tuning plumbing does not depend on the data, and
    # 6-row held-out splits evaluate a 22 M-weight model in seconds, where Rotten Tomatoes' take
    # half a minute).
    table = write_table(tmp_path_factory.mktemp("data") / "topics.csv")
    config = training.make_config(
        "transformer", dataset=f"csv:{table}", preset="minilm", overrides=SHORT
    )
    run_dir = tmp_path_factory.mktemp("runs") / "minilm"
    training.train(config, run_dir, verbose=0)
    return run_dir


def test_the_preset_is_the_checkpoints_architecture_and_a_gentle_recipe():
    config = training.make_config("transformer", preset="minilm")
    checkpoint = pretrained.load_checkpoint("all-minilm-l6-v2")
    for name, value in checkpoint.architecture().items():
        assert getattr(config.model, name) == value, name
    assert config.train.learning_rate <= 1e-4 and config.train.epochs <= 3


def test_fine_tuning_steps_move_the_pretrained_weights(fine_tuned):
    _, _, spec, model = load_trained(fine_tuned)
    metrics = json.loads((fine_tuned / "metrics.json").read_text())
    assert metrics["steps_trained_this_invocation"] == 2
    assert np.isfinite(metrics["test"]["loss"]) and metrics["parameters"] > 22_000_000
    assert (spec.cls_id, spec.sep_id, spec.vocabulary_size) == (101, 102, 30522)
    checkpoint = pretrained.load_checkpoint("all-minilm-l6-v2")
    start = checkpoint.weights["encoder.layer.5.output.dense.weight"].T
    moved = model.backbone.blocks[5].output_dense.kernel.numpy()
    assert moved.shape == start.shape and 0 < np.abs(moved - start).max() < 0.01


def test_another_architecture_is_refused_before_anything_is_written(tmp_path):
    config = training.make_config(
        "transformer", preset="minilm", overrides={**SHORT, "model.num_layers": 4}
    )
    with pytest.raises(UserError, match=r"model\.num_layers=4 \(the checkpoint has 6\)"):
        training.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    both = training.make_config(
        "transformer", preset="minilm", overrides={"model.encoder_from": str(tmp_path)}
    )
    with pytest.raises(UserError, match="choose one to start from"):
        training.train(both, tmp_path / "run")


def test_classify_reads_texts_as_the_checkpoint_tokenises_them(fine_tuned, capsys):
    results = training.classify(fine_tuned, ["A gorgeous, witty film.", "word " * 40])
    assert [r["label"] in TOPICS for r in results] == [True, True]
    assert sum(results[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    # [CLS] and [SEP] take two of the 16 positions.
    assert "text 2 has 40 subwords; the model reads the first 14" in capsys.readouterr().err


@pytest.mark.slow  # converting the 90 MB model takes ~40 s
def test_export_serves_raw_strings_and_token_ids_like_keras(fine_tuned, tmp_path):
    out = export(fine_tuned, tmp_path / "export", quantize=("none",), test_batches=1)
    metadata = json.loads((out / "metadata.json").read_text())
    assert (metadata["cls_id"], metadata["sep_id"], len(metadata["vocabulary"])) == (
        101,
        102,
        30522,
    )
    texts = ["A gorgeous, witty film.", "Dull."]
    serving = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    served = serving(texts=tf.constant(texts))["probabilities"].numpy()
    expected = [r["probabilities"] for r in training.classify(fine_tuned, texts)]
    np.testing.assert_allclose(served[:, 1], [p[TOPICS[1]] for p in expected], atol=1e-5)
    report = json.loads((out / "report.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == [v for v in REPORT_VARIANTS if v in rows] and "tflite float32" in rows
    assert rows["tflite float32"]["top1_agreement"] == 1.0
    assert rows["tflite float32"]["max_abs_diff"] < 1e-4
