"""Masked-language pretraining (`transformer-mlm`) and a classifier fine-tuned from it."""

import json

import keras
import numpy as np
import pytest

from bigmodel_tf import training
from bigmodel_tf.errors import UserError
from bigmodel_tf.export import export
from bigmodel_tf.registry import task_for
from tests.helpers import TINY_TRANSFORMER

ARCHITECTURE = {k: v for k, v in TINY_TRANSFORMER.items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A few steps of masked-language pretraining of the tiny classifier's backbone, at its
    learning rate without warm-up (the task's default warm-up would take all 40 steps)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mlm"
    overrides = {**TINY_TRANSFORMER, "train.epochs": 1, "train.max_steps_per_epoch": 40}
    training.train(training.make_config("transformer-mlm", overrides=overrides), run_dir, verbose=0)
    return run_dir


def test_pretraining_learns_to_fill_in_masked_subwords(pretrained):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    # Uniform guessing over the ~2,000 subwords costs ln 2000 = 7.6 nats; 40 steps measured 6.28,
    # about what the subwords' frequencies alone give (6.23). So this checks that pretraining
    # learns at all (a model that never updates stays near 7.6), not yet that it reads context.
    assert metrics["validation"]["loss"] < 7.0, metrics
    assert 0.0 < metrics["validation"]["accuracy"] < 1.0


def test_only_the_masked_positions_are_predicted(pretrained):
    config, task = training.load_run(pretrained), task_for("transformer-mlm")
    spec = task.prepare(config, pretrained)
    inputs, targets, weights = next(
        iter(task.batcher(config, spec, 16)(task.examples(config, "validation", spec)))
    )
    assert inputs["mask_positions"].shape == targets.shape == weights.shape
    assert 0 < float(np.mean(weights)) < 1  # some predictions only fill their row


def test_a_classifier_starts_from_the_pretrained_backbone(pretrained, tmp_path):
    overrides = {
        **TINY_TRANSFORMER,
        "model.encoder_from": str(pretrained),
        "train.epochs": 1,
        "train.max_steps_per_epoch": 1,
        "train.learning_rate": 0.0,  # nothing moves: the backbone stays the pretrained one
    }
    config = training.make_config("transformer", overrides=overrides)
    training.train(config, tmp_path / "run", verbose=0)
    vocabulary = (tmp_path / "run" / "wordpiece.json").read_text()
    assert vocabulary == (pretrained / "wordpiece.json").read_text()
    weights = [
        keras.saving.load_model(path / "checkpoints" / "best.keras").backbone.get_weights()
        for path in (pretrained, tmp_path / "run")
    ]
    for mine, theirs in zip(*weights, strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.encoder_from": "/nonexistent"}, "is not a run directory"),
        ({"model.hidden_dim": 64}, "another architecture: model.hidden_dim=32 there, 64 here"),
    ],
)
def test_encoder_from_must_be_a_matching_pretraining_run(pretrained, tmp_path, overrides, message):
    overrides = {**ARCHITECTURE, "model.encoder_from": str(pretrained), **overrides}
    config = training.make_config("transformer", overrides=overrides)
    with pytest.raises(UserError, match=message):
        training.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_encoder_from_refuses_a_classifier_run(trained_transformer, tmp_path):
    overrides = {**ARCHITECTURE, "model.encoder_from": str(trained_transformer)}
    config = training.make_config("transformer", overrides=overrides)
    with pytest.raises(UserError, match="is a 'transformer' run, not a 'transformer-mlm' run"):
        training.train(config, tmp_path / "run")


def test_pretraining_runs_are_not_exported(pretrained, tmp_path):
    with pytest.raises(UserError, match="are pretraining and are not exported"):
        export(pretrained, tmp_path / "out")
    assert not (tmp_path / "out").exists()
