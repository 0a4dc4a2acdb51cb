"""The `seq2seq` family through the one trainer: learning, error rates, `transduce`."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import training
from bigmodel_tf.errors import UserError
from bigmodel_tf.families.seq2seq.endpoints import UnrolledEncoder
from bigmodel_tf.families.seq2seq.model import Seq2Seq
from bigmodel_tf.families.seq2seq.transduction import (
    MaskedAccuracy,
    MaskedCrossentropy,
    error_rates,
)
from tests.helpers import run_cli, run_task_test


@pytest.mark.slow  # the tiny run trains and decodes its test split: ~75 s on 2 cores
def test_short_run_learns_letter_to_sound_rules(trained_seq2seq):
    # Measured on the tiny config (tests.helpers.TINY_SEQ2SEQ, 300 steps, 23 s of training;
    # label smoothing 0.1): token accuracy 0.787, PER 0.291 greedy / 0.283 beam-3 (0.263 /
    # 0.254 without stress), WER 0.77 / 0.76 (without smoothing: 0.786, 0.294 / 0.282).
    # Chance-level outputs are far off: the most frequent phoneme is 7% of the phonemes.
    metrics = json.loads((trained_seq2seq / "metrics.json").read_text())["test"]
    assert metrics["accuracy"] > 0.7, metrics
    assert metrics["greedy_per"] < 0.35 and metrics["beam_per"] < 0.35, metrics
    assert metrics["greedy_per_no_stress"] <= metrics["greedy_per"]
    assert 0 < metrics["greedy_wer"] < 1 and metrics["beam_wer"] < 1


@pytest.mark.slow  # the tiny run trains and decodes its test split: ~75 s on 2 cores
def test_evaluate_reproduces_the_test_metrics(trained_seq2seq):
    recorded = json.loads((trained_seq2seq / "metrics.json").read_text())["test"]
    again = training.evaluate(trained_seq2seq, "test")
    assert again.keys() == recorded.keys()
    for name, value in recorded.items():
        assert again[name] == pytest.approx(value, abs=1e-6), name


def test_error_rates_on_hand_made_examples():
    hypotheses = ["K AE1 T", "D AO1 G Z", "T AH0 M EY1 T OW2", ""]
    references = [
        ["K AE1 T"],  # exact: 0 edits of 3
        ["D AO1 G"],  # one insertion: 1 of 3
        ["T AH0 M AA1 T OW2", "T AH0 M EY1 T OW2"],  # matches the second reference: 0 of 6
        ["AH0", "EY1"],  # empty output: 1 deletion of 1
    ]
    rates = error_rates(
        [h.split() for h in hypotheses], [[r.split() for r in rs] for rs in references]
    )
    assert rates["per"] == pytest.approx(2 / 13)
    assert rates["wer"] == pytest.approx(2 / 4)
    ids = error_rates([[1, 2, 3]], [[[7, 8], [1, 2, 4]]])  # token ids work alike
    assert ids == {"per": pytest.approx(1 / 3), "wer": 1.0}


def test_masked_accuracy_ignores_padding():
    metric = MaskedAccuracy()
    logits = np.log(np.array([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]], "float32"))  # (1, 3, 2)
    metric.update_state(np.array([[1, 0, 0]]), logits)  # one real target, right; two padding
    assert float(metric.result()) == 1.0
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(clone, MaskedAccuracy)


def test_masked_crossentropy_is_the_mean_over_real_targets_of_smoothed_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5)).astype("float32")
    targets = np.array([[3, 1, 0, 0], [2, 4, 1, 0]])  # 0 is padding: 5 real targets
    real = targets != 0
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    assert float(MaskedCrossentropy()(targets, logits)) == pytest.approx(
        float(plain(targets, logits)), rel=1e-5
    )
    # By hand: cross-entropy against 0.9 on the target plus 0.1 / 5 on every id.
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    smoothed = 0.9 * np.eye(5)[targets] + 0.1 / 5
    expected = -(smoothed * log_probs).sum(-1)[real].mean()
    loss = MaskedCrossentropy(label_smoothing=0.1)
    assert float(loss(targets, logits)) == pytest.approx(expected, rel=1e-5)
    # Padding's logits do not matter.
    assert float(loss(targets, np.where(real[..., None], logits, 9.0))) == pytest.approx(
        expected, rel=1e-5
    )
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, MaskedCrossentropy) and clone.label_smoothing == 0.1
    with pytest.raises(ValueError, match="label_smoothing"):
        MaskedCrossentropy(label_smoothing=1.0)


@pytest.mark.slow  # the tiny run trains and decodes its test split: ~75 s on 2 cores
def test_transduce_greedy_and_beam_from_the_command_line(trained_seq2seq):
    greedy = training.transduce(trained_seq2seq, ["cat", "Dog"], beam_width=1)
    assert all(output and output == output.strip() for output in greedy)
    result = run_cli("transduce", trained_seq2seq, "cat", "Dog", "--beam", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"cat\t{greedy[0]}", f"Dog\t{greedy[1]}"]
    beam = run_cli("transduce", trained_seq2seq, "cat")  # the run's model.beam_width
    assert beam.returncode == 0 and beam.stdout.startswith("cat\t"), beam.stderr


@pytest.mark.slow  # the tiny run trains and decodes its test split: ~75 s on 2 cores
@pytest.mark.parametrize(
    ("words", "beam", "message"),
    [
        ([""], None, "an empty word has no pronunciation"),
        (["c@t"], None, "'@' not in the model's characters"),
        (["a" * 40], None, "has 40 characters; the model takes at most 32"),
        (["cat"], 0, "beam width 0: must be >= 1"),
    ],
)
def test_bad_input_is_refused(trained_seq2seq, words, beam, message):
    with pytest.raises(UserError, match=message):
        training.transduce(trained_seq2seq, words, beam_width=beam)


def test_transduce_needs_a_seq2seq_run(trained_cnn):
    with pytest.raises(UserError, match="is a 'cnn' run; transduce needs a 'seq2seq' run"):
        training.transduce(trained_cnn, ["cat"])


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_unrolled_encoder_equals_the_encoder_on_real_positions(rnn):
    """Guards the workaround in `UnrolledEncoder`: Keras' own unrolled backward pass differs."""
    keras.utils.set_random_seed(0)
    model = Seq2Seq(9, 12, embedding_dim=6, units=8, encoder_layers=2, rnn=rnn)
    model.build(((None, None), (None, None)))
    rng = np.random.default_rng(0)
    # Random biases too: at their initial zeros a misplaced or dropped bias would go unseen.
    model.encoder.set_weights([rng.normal(0, 0.5, w.shape) for w in model.encoder.get_weights()])
    source = rng.integers(2, 9, (3, 10)).astype("int32")
    source[1, 6:], source[2, 2:] = 0, 0
    names = ["state_1", "state_2"][: 2 if rnn == "lstm" else 1]
    unrolled = UnrolledEncoder(model, names)(tf.constant(source))
    value, states = model.encoder(source)
    real = source != 0
    np.testing.assert_allclose(
        np.asarray(unrolled["value"])[real], np.asarray(value)[real], atol=1e-5
    )
    for name, state in zip(names, states, strict=True):
        np.testing.assert_allclose(unrolled[name], state, atol=1e-5)
    keys = model.decoder.attention_layer.project_keys(value)
    np.testing.assert_allclose(
        np.asarray(unrolled["keys"])[real], np.asarray(keys)[real], atol=1e-5
    )


def test_task_builds_fits_saves_and_exports(trained_seq2seq, tmp_path):
    run_task_test(trained_seq2seq, tmp_path)
