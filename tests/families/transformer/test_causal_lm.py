"""The decoder-only Transformer language model: causality, the key/value cache, generation."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.families.language_model.generation import generate, generate_by_rerunning_prefix
from bigmodel_tf.families.transformer import (
    TransformerBackbone,
    TransformerLanguageModel,
    TransformerLmConfig,
    build_language_model,
)
from tests.helpers import assert_keras_file_round_trip

VOCAB, CONTEXT = 11, 16


def tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, shape).astype("int32")


def tiny_model(positions: str, **options) -> TransformerLanguageModel:
    keras.utils.set_random_seed(0)
    config = TransformerLmConfig(
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        positions=positions,
        sequence_length=CONTEXT,
        **options,
    )
    return build_language_model(config, VOCAB)


# GPT-2's arrangement: one matrix for input embeddings and output logits, its initialisation.
GPT2 = {"tie_embeddings": True, "init_std": 0.02, "scale_embeddings": False}


@pytest.fixture(scope="module")
def model():
    return tiny_model("learned")


@pytest.fixture(scope="module", params=["learned", "sinusoidal", "tied"])
def either(request):
    """The model with each kind of positions, and with tied embeddings, for what they could
    break."""
    if request.param == "tied":
        return tiny_model("learned", **GPT2)
    return tiny_model(request.param)


def test_logits_depend_on_the_past_only(either):
    sequence = tokens((2, 10), seed=1)
    changed = sequence.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB
    before, after = np.asarray(either(sequence)), np.asarray(either(changed))
    assert before.shape == (2, 10, VOCAB)
    np.testing.assert_allclose(before[:, :6], after[:, :6], atol=1e-6)
    assert not np.allclose(before[:, 6:], after[:, 6:])


@pytest.mark.parametrize("prefix", [1, 5])
def test_cached_steps_equal_the_uncached_forward_pass(either, prefix):
    sequence = tokens((3, CONTEXT), seed=2)
    expected = np.asarray(either(sequence))  # (3, CONTEXT, vocab)
    logits, state = either(sequence[:, :prefix], return_state=True)
    np.testing.assert_allclose(logits, expected[:, :prefix], atol=1e-4)
    for position in range(prefix, CONTEXT):
        logits, state = either.step(sequence[:, position], state)
        np.testing.assert_allclose(logits, expected[:, position], atol=1e-4)


def test_a_full_window_slides_to_its_last_half(either):
    """Past the context, a step sees the last half window, re-read as positions 0.. of a fresh
    cache: the logits of a forward pass over exactly those tokens."""
    sequence = tokens((2, CONTEXT + 3), seed=3)
    _, state = either(sequence[:, :CONTEXT], return_state=True)
    for position in range(CONTEXT, CONTEXT + 3):
        logits, state = either.step(sequence[:, position], state)
        kept = sequence[:, CONTEXT // 2 + 1 : position + 1]
        assert kept.shape[1] == CONTEXT // 2 + position - CONTEXT
        np.testing.assert_allclose(logits, np.asarray(either(kept))[:, -1], atol=1e-4)


def test_compiled_steps_equal_the_uncached_pass_across_slides(either):
    """The step as generation runs it (XLA-compiled), 40 tokens through a 16-token context:
    every step's logits are those of one uncached pass over the tokens its window holds, the
    last half window after each slide."""
    sequence = tokens((2, 41), seed=10)
    step = tf.function(either.step, jit_compile=True)
    _, state = either(sequence[:, :1], return_state=True)
    seen = sequence[:, :1]
    for position in range(1, sequence.shape[1]):
        logits, state = step(sequence[:, position], state)
        seen = sequence[:, position - seen.shape[1] : position + 1]
        if seen.shape[1] > CONTEXT:  # the window slides
            seen = seen[:, -(CONTEXT // 2) :]
        np.testing.assert_allclose(logits, np.asarray(either(seen))[:, -1], atol=1e-4)


def test_longer_inputs_are_read_through_their_last_window(model):
    sequence = tokens((1, CONTEXT + 5), seed=4)
    np.testing.assert_allclose(model(sequence), model(sequence[:, 5:]), atol=1e-6)


@pytest.mark.parametrize("sampling", [{"top_k": 1}, {"temperature": 2.0, "seed": 5}])
def test_cached_generation_equals_rerunning_the_prefix_within_the_context(model, sampling):
    prompt = tokens((2, 4), seed=6)
    np.testing.assert_array_equal(
        generate(model, prompt, CONTEXT - 4, **sampling),
        generate_by_rerunning_prefix(model, prompt, CONTEXT - 4, **sampling),
    )


def test_generation_runs_past_the_context(model):
    ids = np.asarray(generate(model, tokens((7,), seed=7), 3 * CONTEXT, temperature=1.5, seed=1))
    assert ids.shape == (3 * CONTEXT,) and ids.min() >= 0 and ids.max() < VOCAB
    assert len(np.unique(ids)) > 1


def test_generation_inside_a_tf_function_with_tensor_arguments(model):
    @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int32)])
    def exported(prompt, seed):
        return generate(model, prompt, 20, temperature=1.0, seed=seed)

    np.testing.assert_array_equal(
        exported(tf.constant([1, 2, 3]), 4), generate(model, [1, 2, 3], 20, seed=4)
    )


def test_a_language_model_needs_a_causal_backbone():
    with pytest.raises(ValueError, match="causal backbone"):
        TransformerLanguageModel(TransformerBackbone(VOCAB, 8, 1, 2, 8, 16))


def test_config_round_trip_and_keras_file(model, tmp_path):
    clone = TransformerLanguageModel.from_config(model.get_config())
    clone.build((None, None))
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
    assert_keras_file_round_trip(model, tokens((2, 9), seed=8), tmp_path)


def test_tied_logits_read_the_token_embeddings(tmp_path):
    tied = tiny_model("learned", **GPT2)
    assert not any("logits" in w.path for w in tied.weights)
    sequence = tokens((2, 7), seed=3)
    features = np.asarray(tied.backbone(sequence))
    embeddings = tied.backbone.token_embedding.embeddings.numpy()
    expected = features @ embeddings.T + tied.logit_bias.numpy()
    np.testing.assert_allclose(tied(sequence), expected, atol=1e-5)
    assert tied.count_params() == tiny_model("learned").count_params() - 8 * VOCAB
    assert_keras_file_round_trip(tied, sequence, tmp_path)


def test_gpt2_initialisation_shrinks_the_residual_projections():
    keras.utils.set_random_seed(0)
    config = TransformerLmConfig(
        num_layers=8, hidden_dim=64, intermediate_dim=256, sequence_length=64, init_std=0.02
    )
    backbone = build_language_model(config, 50).backbone
    block = backbone.blocks[3]
    for variable in (block.attention.query_dense.kernel, block.intermediate.kernel):
        assert np.std(variable.numpy()) == pytest.approx(0.02, rel=0.05)
    for variable in (block.attention.output_dense.kernel, block.output_dense.kernel):
        assert np.std(variable.numpy()) == pytest.approx(0.02 / 4, rel=0.05)  # 1/√(2·8)
    assert np.std(backbone.token_embedding.embeddings.numpy()) == pytest.approx(0.02, rel=0.1)
    assert not np.any(block.intermediate.bias.numpy())


def test_config_can_keep_dropout_off_the_attention_weights():
    backbone = tiny_model("learned", dropout=0.1, attention_dropout=False).backbone
    (block, *_) = backbone.blocks
    assert (block.attention.dropout, block.dropout_layer.rate) == (0.0, 0.1)
    assert backbone.embedding_dropout.rate == 0.1
    with_it = tiny_model("learned", dropout=0.1, attention_dropout=True).backbone
    assert with_it.blocks[0].attention.dropout == 0.1


def test_fit_reduces_the_loss_on_a_repeated_batch():
    keras.utils.set_random_seed(1)
    config = dataclasses.replace(
        TransformerLmConfig(), num_layers=1, hidden_dim=16, intermediate_dim=32, sequence_length=12
    )
    model = build_language_model(config, VOCAB)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    sequence = tokens((8, 13), seed=9)
    history = model.fit(sequence[:, :-1], sequence[:, 1:], batch_size=8, epochs=10, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]
