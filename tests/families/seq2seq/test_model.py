import dataclasses

import keras
import numpy as np
import pytest

from bigmodel_tf.data import PAD_ID
from bigmodel_tf.families.seq2seq.data import END_ID, START_ID
from bigmodel_tf.families.seq2seq.decoding import (
    beam_decode,
    decode_step_by_step,
    greedy_decode,
)
from bigmodel_tf.families.seq2seq.model import (
    PRESETS,
    Seq2Seq,
    Seq2SeqConfig,
    Seq2SeqDecoder,
    Seq2SeqEncoder,
)

SOURCE_VOCAB, TARGET_VOCAB = 9, 12


def make_model(**kwargs) -> Seq2Seq:
    keras.utils.set_random_seed(0)
    arguments = {"embedding_dim": 6, "units": 8, "attention_units": 5, **kwargs}
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, **arguments)
    model.build(((None, None), (None, None)))
    return model


def batch(seed=0):
    """Two sources (the second padded) and teacher-forced decoder inputs and targets."""
    rng = np.random.default_rng(seed)
    source = rng.integers(2, SOURCE_VOCAB, (2, 6)).astype("int32")
    source[1, 4:] = PAD_ID
    tokens = rng.integers(END_ID + 1, TARGET_VOCAB, (2, 5)).astype("int32")
    decoder_inputs = np.concatenate([np.full((2, 1), START_ID, "int32"), tokens], axis=1)
    targets = np.concatenate([tokens, np.full((2, 1), END_ID, "int32")], axis=1)
    decoder_inputs[1, 4:], targets[1, 3:] = PAD_ID, PAD_ID  # the second target is shorter
    targets[1, 3] = END_ID
    return source, decoder_inputs, targets


VARIANTS = [
    {},
    {"attention": "luong"},
    {"rnn": "lstm", "encoder_layers": 2},
]


@pytest.fixture(scope="module", params=range(len(VARIANTS)), ids=["gru", "luong", "lstm2"])
def model(request):
    return make_model(**VARIANTS[request.param])


def test_logits_and_attention_shapes(model):
    source, decoder_inputs, _ = batch()
    logits = model((source, decoder_inputs))
    assert tuple(logits.shape) == (2, 6, TARGET_VOCAB)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    _, weights = model.teacher_forced(source, decoder_inputs)
    assert tuple(weights.shape) == (2, 6, 6)
    assert np.all(np.asarray(weights)[1, :, 4:] == 0.0)  # source padding


def test_source_padding_does_not_change_the_outputs(model):
    source, decoder_inputs, _ = batch()
    short = model((source[1:, :4], decoder_inputs[1:]))
    padded = model((np.pad(source[1:, :4], ((0, 0), (0, 5))), decoder_inputs[1:]))
    np.testing.assert_allclose(padded, short, atol=1e-5)


def test_presets_are_valid_configs():
    for name in PRESETS:
        dataclasses.replace(Seq2SeqConfig(), **PRESETS[name])


def test_encoder_and_decoder_config_round_trips(model):
    for layer in (model.encoder, model.decoder):
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    assert isinstance(model.encoder, Seq2SeqEncoder)
    assert isinstance(model.decoder, Seq2SeqDecoder)
    clone = Seq2Seq.from_config(model.get_config())
    clone.build(((None, None), (None, None)))
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


def test_teacher_forced_loss_equals_a_hand_unrolled_decoder(model):
    """The compiled loss (mean over non-padding targets) of one teacher-forced pass equals the
    cross-entropy of a decoder stepped token by token from the encoder's states."""
    source, decoder_inputs, targets = batch(2)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)
    teacher_forced = float(loss(targets, model((source, decoder_inputs))))

    value, states, keys, mask = model.encode(source)
    nats = []
    for position in range(decoder_inputs.shape[1]):
        logits, states, _ = model.step(decoder_inputs[:, position], states, value, keys, mask)
        log_probs = np.asarray(logits) - np.log(np.exp(np.asarray(logits)).sum(-1, keepdims=True))
        for row in range(len(source)):
            if targets[row, position] != PAD_ID:
                nats.append(-log_probs[row, targets[row, position]])
    assert len(nats) == 6 + 4
    assert teacher_forced == pytest.approx(np.mean(nats), abs=1e-5)


def test_fit_reduces_the_loss_on_a_repeated_batch():
    model = make_model(dropout=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
    )
    source, decoder_inputs, targets = batch(3)
    history = model.fit((source, decoder_inputs), targets, batch_size=2, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def random_sources(count=5, seed=4):
    rng = np.random.default_rng(seed)
    source = rng.integers(2, SOURCE_VOCAB, (count, 7)).astype("int32")
    for row, length in enumerate(rng.integers(1, 8, count)):
        source[row, length:] = PAD_ID
    return source


def test_greedy_in_the_graph_equals_step_by_step_python_decoding(model):
    source = random_sources()
    np.testing.assert_array_equal(
        greedy_decode(model, source, 9), decode_step_by_step(model, source, 9)
    )


def test_beam_width_1_equals_greedy(model):
    source = random_sources(seed=5)
    np.testing.assert_array_equal(
        beam_decode(model, source, 9, beam_width=1), greedy_decode(model, source, 9)
    )


def test_beam_decodes_each_example_independently_of_its_batch(model):
    source = random_sources(seed=6)
    together = np.asarray(beam_decode(model, source, 9, beam_width=3))
    for row in range(len(source)):
        alone = beam_decode(model, source[row : row + 1], 9, beam_width=3)
        np.testing.assert_array_equal(alone[0], together[row])


def test_outputs_are_tokens_then_the_end_then_padding(model):
    ids = np.asarray(beam_decode(model, random_sources(seed=7), 9, beam_width=4))
    assert ids.shape == (5, 9) and ids.dtype == np.int32
    for row in ids:
        ends = np.flatnonzero(row == END_ID)
        tokens = row[: ends[0]] if len(ends) else row
        assert np.all(tokens > END_ID)  # never padding, OOV or start
        if len(ends):
            assert np.all(row[ends[0] + 1 :] == PAD_ID)
