import dataclasses

import keras
import numpy as np
import pytest

from bigmodel_tf.families.transformer import (
    TransformerBackbone,
    TransformerClassifier,
    TransformerClassifierConfig,
    TransformerMaskedLM,
    TransformerMlmConfig,
    build_classifier,
    build_masked_lm,
)
from bigmodel_tf.families.transformer.classifier import PRESETS
from bigmodel_tf.training import make_config

VOCAB = 50


def tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(1, VOCAB, shape).astype("int32")


def tiny_backbone(**options):
    options = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, **options}
    return TransformerBackbone(VOCAB, 12, **options)


@pytest.fixture(scope="module", params=["sinusoidal", "learned"])
def classifier(request):
    keras.utils.set_random_seed(0)
    model = TransformerClassifier(tiny_backbone(positions=request.param), 3, dropout=0.1)
    model.build((None, None))
    return model


def test_probabilities_per_text(classifier):
    probabilities = np.asarray(classifier(tokens((4, 7))))
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_padding_changes_no_texts_probabilities(pooling):
    model = TransformerClassifier(tiny_backbone(), 2, pooling=pooling)
    text = tokens((1, 5), seed=1)
    padded = np.concatenate([text, np.zeros((1, 7), "int32")], axis=1)
    np.testing.assert_allclose(model(padded), model(text), atol=1e-6)


def test_every_token_counts():
    model = TransformerClassifier(tiny_backbone(), 2)
    text = tokens((1, 5), seed=2)
    changed = text.copy()
    changed[0, 4] = (changed[0, 4] % (VOCAB - 1)) + 1
    assert not np.allclose(model(text), model(changed))


def test_a_classifier_needs_a_bidirectional_backbone():
    with pytest.raises(ValueError, match="non-causal backbone"):
        TransformerClassifier(tiny_backbone(causal=True), 2)


def test_config_round_trip(classifier):
    clone = TransformerClassifier.from_config(classifier.get_config())
    clone.build((None, None))
    assert clone.get_config() == classifier.get_config()
    assert clone.count_params() == classifier.count_params()


def test_presets_build_and_count_their_weights():
    for name in PRESETS:
        config = make_config("transformer", preset=name).model
        vocabulary = config.vocabulary_size
        model = build_classifier(config, vocabulary_size=vocabulary, num_classes=2)
        hidden, inner = config.hidden_dim, config.intermediate_dim
        block = 4 * (hidden * hidden + hidden) + 2 * hidden * inner + inner + hidden + 4 * hidden
        learned = config.positions == "learned"
        positions = (config.max_positions or config.sequence_length) * hidden if learned else 0
        embeddings = vocabulary * hidden + positions + config.token_types * hidden
        norms = 2 * hidden * (config.norm_first + config.embedding_norm)  # final, embeddings
        expected = embeddings + config.num_layers * block + norms + 2 * hidden + 2
        assert model.count_params() == expected, name
    minilm = make_config("transformer", preset="minilm").model
    assert build_classifier(minilm, 30522, 2).count_params() == 22_566_146


def test_fit_reduces_the_loss_on_a_repeated_batch():
    keras.utils.set_random_seed(1)
    model = build_classifier(
        dataclasses.replace(TransformerClassifierConfig(), hidden_dim=16, num_layers=1),
        vocabulary_size=VOCAB,
        num_classes=2,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    ids, labels = tokens((16, 6), seed=4), np.arange(16) % 2
    history = model.fit(ids, labels, batch_size=16, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


def test_masked_lm_predicts_the_given_positions_from_both_sides():
    model = TransformerMaskedLM(tiny_backbone())
    ids, positions = tokens((2, 6), seed=5), np.array([[1, 3], [0, 5]], "int32")
    logits = np.asarray(model({"token_ids": ids, "mask_positions": positions}))
    assert logits.shape == (2, 2, VOCAB)
    everywhere = np.asarray(
        model({"token_ids": ids, "mask_positions": np.tile(np.arange(6, dtype="int32"), (2, 1))})
    )
    np.testing.assert_allclose(
        logits, np.take_along_axis(everywhere, positions[..., None], 1), atol=1e-5
    )
    changed = ids.copy()
    changed[:, 5] = (changed[:, 5] % (VOCAB - 1)) + 1
    after = np.asarray(model({"token_ids": changed, "mask_positions": positions}))
    assert not np.allclose(after[0, 0], logits[0, 0])  # the future counts too


def test_masked_lm_config_round_trip_and_keras_file(tmp_path):
    model = build_masked_lm(
        dataclasses.replace(TransformerMlmConfig(), hidden_dim=8, num_heads=2, num_layers=1),
        vocabulary_size=VOCAB,
    )
    clone = TransformerMaskedLM.from_config(model.get_config())
    clone.build({"token_ids": (None, None), "mask_positions": (None, None)})
    assert clone.get_config() == model.get_config()
    inputs = {"token_ids": tokens((2, 5), seed=6), "mask_positions": np.array([[1], [4]], "int32")}
    model.save(tmp_path / "mlm.keras")
    loaded = keras.saving.load_model(tmp_path / "mlm.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded(inputs), model(inputs))
