"""The `transformer` classifier through the one trainer: learning, the vocabulary, `classify`."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import registry, training
from bigmodel_tf.errors import UserError
from bigmodel_tf.families.transformer.data import SubwordSpec
from tests.helpers import run_task_test


def test_one_tiny_epoch_beats_the_majority_class_by_far(trained_transformer):
    # Measured 0.728 (validation) and 0.718 (test). Always answering "fresh" scores 0.578;
    # shuffled labels or ids, or a mask that hides the text, stay near it.
    metrics = json.loads((trained_transformer / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert metrics[split]["accuracy"] > 0.70, (split, metrics[split])
    assert (trained_transformer / "wordpiece.json").is_file()


def test_classify_gives_a_label_and_probability_per_text(trained_transformer):
    results = training.classify(
        trained_transformer,
        ["A triumph: moving, funny and wise.", b"Dull, lifeless and far too long."],
    )
    assert [r["label"] for r in results] == ["fresh", "rotten"]
    for result in results:
        assert set(result["probabilities"]) == {"rotten", "fresh"}
        assert result["probability"] == max(result["probabilities"].values()) > 0.5
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_long_texts_are_truncated_with_a_warning(trained_transformer, capsys):
    (long,) = training.classify(trained_transformer, ["a fine film " * 100])
    (longer,) = training.classify(trained_transformer, ["a fine film " * 200])
    assert long["probabilities"] == pytest.approx(longer["probabilities"], abs=1e-6)
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2 and "has 300 subwords; the model reads the first 63" in warnings[0]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "at least one text"),
        ("a bare string", "at least one text"),
        (["fine", "  "], "text 2 is empty"),
        ([b"caf\xe9"], "text 1 is not valid UTF-8"),
        (["caf\udce9"], "text 1 is not valid UTF-8"),  # how argv carries such bytes
    ],
)
def test_bad_texts_are_refused(trained_transformer, texts, message):
    with pytest.raises(UserError, match=message):
        training.classify(trained_transformer, texts)


def test_classify_takes_only_a_transformer_run(trained_cnn):
    with pytest.raises(UserError, match="is a 'cnn' run; classify takes a 'transformer' run"):
        training.classify(trained_cnn, ["x"])


def test_bad_configs_and_datasets_are_refused_before_anything_is_written(tmp_path):
    for overrides, dataset, message in [
        ({"model.hidden_dim": 30, "model.num_heads": 4}, None, "must be a multiple of"),
        ({}, "shakespeare", "shakespeare has no labels"),
    ]:
        config = training.make_config("transformer", dataset=dataset, overrides=overrides)
        with pytest.raises(UserError, match=message):
            training.train(config, tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_task_builds_fits_saves_and_exports(trained_transformer, tmp_path):
    run_task_test(trained_transformer, tmp_path)


def test_the_augmentations_compose_on_training_batches():
    vocabulary = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "b", "##x", "c", "d")
    spec = SubwordSpec(vocabulary, ("rotten", "fresh"), 16, end_token=True)
    task = registry.task_for("transformer")
    ids = tf.constant([[1, 5, 6, 7, 8, 9, 5, 8, 9, 2, 0, 0]] * 64)
    labels = tf.zeros((64,), tf.int32)
    assert task.augment(training.make_config("transformer"), spec) is None
    config = training.make_config(
        "transformer",
        overrides={
            "model.span_sampling": 1.0,
            "model.word_replacement": 0.5,
            "model.token_dropout": 0.1,
        },
    )
    augmented, same_labels = task.augment(config, spec)(ids, labels)
    augmented = augmented.numpy()
    assert same_labels is labels and augmented.shape == ids.shape
    # Every text cut to [CLS] + 1-5 words + [SEP] (dropped subwords leave padding between),
    # its words (maybe replaced) words of the vocabulary.
    last = [int(np.flatnonzero(row)[-1]) for row in augmented]
    assert (augmented[:, 0] == 1).all() and max(last) <= 1 + 6
    assert (augmented[np.arange(64), last] == 2).all()
    assert set(augmented[augmented > 2].tolist()) <= {5, 6, 7, 8, 9}
