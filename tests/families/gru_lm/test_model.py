import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.families.gru_lm.model import PRESETS, GruLanguageModel, GruLmConfig
from bigmodel_tf.families.language_model.generation import (
    MAX_GENERATE_LENGTH,
    generate,
    generate_by_rerunning_prefix,
)

VOCAB = 11


def tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, shape).astype("int32")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = GruLanguageModel(VOCAB, embedding_dim=8, rnn_units=16, num_layers=2)
    model.build((None, None))
    return model


def test_logits_and_states_shapes(model):
    logits, states = model(tokens((3, 7)), return_state=True)
    assert logits.shape == (3, 7, VOCAB)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert [tuple(state.shape) for state in states] == [(3, 16), (3, 16)]
    assert model(tokens((3, 7))).shape == (3, 7, VOCAB)


def test_presets_are_valid_configs_and_seed_is_the_documents_model():
    for name in PRESETS:
        dataclasses.replace(GruLmConfig(), **PRESETS[name])
    seed = dataclasses.replace(GruLmConfig(), **PRESETS["seed"])
    documents = GruLanguageModel(66, seed.embedding_dim, seed.rnn_units, seed.num_layers)
    documents.build((None, None))
    assert documents.count_params() == 4_022_850  # the documents' summary for 66 characters


def test_get_config_round_trip(model):
    clone = GruLanguageModel.from_config(model.get_config())
    clone.build((None, None))
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


@pytest.mark.parametrize("prefix", [1, 4])
def test_step_continues_the_sequence_forward_pass(model, prefix):
    sequence = tokens((2, 8), seed=1)
    expected = model(sequence)  # (2, 8, vocab)
    logits, states = model(sequence[:, :prefix], return_state=True)
    for position in range(prefix, 8):
        logits, states = model.step(sequence[:, position], states)
        np.testing.assert_allclose(logits, expected[:, position], atol=1e-5)


def test_step_from_zero_states_matches_the_first_position(model):
    sequence = tokens((2, 3), seed=2)
    logits, _ = model.step(sequence[:, :1], [np.zeros((2, 16), "float32")] * 2)
    np.testing.assert_allclose(logits, model(sequence)[:, 0], atol=1e-5)


def test_same_seed_same_ids_different_seed_different_ids(model):
    prompt = tokens((5,), seed=3)
    first, again, other = (
        np.asarray(generate(model, prompt, 40, temperature=3.0, seed=seed)) for seed in (7, 7, 8)
    )
    assert first.shape == (40,) and first.dtype == np.int32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def teacher_forced_logits(model, prompt, ids):
    """Logits that predicted each generated id, from one pass over prompt + ids."""
    sequence = np.concatenate([prompt, ids[:, :-1]], axis=1)
    return np.asarray(model(sequence))[:, prompt.shape[1] - 1 :]  # (batch, length, vocab)


def test_top_k_1_is_greedy_argmax_at_any_temperature_and_seed(model):
    prompt = tokens((3, 4), seed=4)
    ids = np.asarray(generate(model, prompt, 12, temperature=5.0, top_k=1, seed=1))
    np.testing.assert_array_equal(ids, generate(model, prompt, 12, top_k=1, seed=2))
    np.testing.assert_array_equal(ids, teacher_forced_logits(model, prompt, ids).argmax(-1))


def test_top_p_ids_stay_in_the_nucleus(model):
    prompt, top_p, temperature = tokens((4, 3), seed=5), 0.5, 0.7
    ids = np.asarray(generate(model, prompt, 30, temperature=temperature, top_p=top_p, seed=3))
    logits = teacher_forced_logits(model, prompt, ids) / temperature
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    chosen = np.take_along_axis(probabilities, ids[..., None], axis=-1)
    more_likely_mass = np.where(probabilities > chosen, probabilities, 0.0).sum(-1)
    assert np.all(more_likely_mass < top_p + 1e-6)
    assert len(np.unique(ids)) > 1  # sampled, not collapsed to argmax


@pytest.mark.parametrize("sampling", [{"top_k": 1}, {"temperature": 2.0, "seed": 5}])
def test_stateful_loop_equals_rerunning_the_prefix(model, sampling):
    prompt = tokens((2, 6), seed=6)
    np.testing.assert_array_equal(
        generate(model, prompt, 15, **sampling),
        generate_by_rerunning_prefix(model, prompt, 15, **sampling),
    )


def test_tensor_arguments_inside_tf_function_give_the_same_ids(model):
    """The shape of the exported `generate(prompt, length, temperature, seed)` signature."""
    signature = [
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.int32),
    ]

    @tf.function(input_signature=signature)
    def exported(prompt, length, temperature, seed):
        return generate(model, prompt, length, temperature=temperature, seed=seed)

    for length, temperature, seed in [(9, 1.5, 4), (3, 0.5, 5)]:
        np.testing.assert_array_equal(
            exported(tf.constant([1, 2, 3]), length, temperature, seed),
            generate(model, [1, 2, 3], length, temperature=temperature, seed=seed),
        )


@pytest.mark.parametrize(
    "arguments",
    [
        {"length": 0},
        {"length": MAX_GENERATE_LENGTH + 1},
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"top_k": 0},
        {"top_k": VOCAB + 1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": 5, "top_p": 0.9},
        {"seed": -1},
        {"prompt_ids": []},
        {"prompt_ids": [1, VOCAB]},
    ],
)
@pytest.mark.parametrize("function", [generate, generate_by_rerunning_prefix])
def test_bad_arguments_raise_user_error(model, function, arguments):
    arguments = {"prompt_ids": [1, 2], "length": 5, **arguments}
    with pytest.raises(UserError):
        function(model, **arguments)


def test_fit_reduces_the_loss_on_a_repeated_batch():
    keras.utils.set_random_seed(1)
    model = GruLanguageModel(VOCAB, embedding_dim=8, rnn_units=16, num_layers=2, dropout=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    sequence = tokens((8, 13), seed=7)
    history = model.fit(sequence[:, :-1], sequence[:, 1:], batch_size=8, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
