"""Our MultiHeadAttention against Keras' with the same weights, and what its masks hide."""

import keras
import numpy as np
import pytest

from bigmodel_tf.layers import MultiHeadAttention
from tests.helpers import assert_keras_file_round_trip

BATCH, TIME, SOURCE, DIM, HEADS, KEY_DIM = 3, 7, 5, 12, 4, 6


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def padding(batch, length, lengths):
    """`(batch, length)` bool: the first `lengths[b]` positions of row b are real."""
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]


def twins(output_dim=None):
    """Our layer and Keras', built for cross-attention, with our weights copied into Keras'."""
    keras.utils.set_random_seed(1)
    ours = MultiHeadAttention(HEADS, KEY_DIM, output_dim=output_dim)
    ours.build((None, None, DIM), (None, None, DIM + 2))
    # Random biases too: zero-initialised ones would not show a misplaced bias.
    for seed, weight in enumerate(ours.weights):
        weight.assign(random(*weight.shape, seed=seed) * 0.3)
    theirs = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, output_shape=output_dim)
    theirs.build((None, None, DIM), (None, None, DIM + 2))
    for mine, keras_dense in [
        (ours.query_dense, theirs.query_dense),
        (ours.key_dense, theirs.key_dense),
        (ours.value_dense, theirs.value_dense),
    ]:  # Keras keeps the heads as separate axes: kernel (dim, heads, key_dim)
        keras_dense.kernel.assign(mine.kernel.numpy().reshape(keras_dense.kernel.shape))
        keras_dense.bias.assign(mine.bias.numpy().reshape(keras_dense.bias.shape))
    theirs.output_dense.kernel.assign(
        ours.output_dense.kernel.numpy().reshape(theirs.output_dense.kernel.shape)
    )
    theirs.output_dense.bias.assign(ours.output_dense.bias.numpy())
    return ours, theirs


MASKS = {
    "none": {},
    "padding": {"lengths": [SOURCE, 3, 1]},
    "causal": {"causal": True},
    "padding and causal": {"lengths": [SOURCE, 2, 4], "causal": True},
    "explicit": {"explicit": True},
    "all three": {"lengths": [4, SOURCE, 3], "causal": True, "explicit": True},
}


@pytest.mark.parametrize("case", MASKS)
@pytest.mark.parametrize("output_dim", [None, 10])
def test_equals_keras_multi_head_attention_with_the_same_weights(case, output_dim):
    ours, theirs = twins(output_dim)
    query, value = random(BATCH, TIME, DIM, seed=2), random(BATCH, SOURCE, DIM + 2, seed=3)
    options = MASKS[case]
    ours_kwargs, keras_mask = {}, np.ones((BATCH, TIME, SOURCE), bool)
    if "lengths" in options:
        ours_kwargs["padding_mask"] = padding(BATCH, SOURCE, options["lengths"])
        keras_mask &= ours_kwargs["padding_mask"][:, None, :]
    if options.get("explicit"):
        ours_kwargs["attention_mask"] = np.random.default_rng(4).random((BATCH, TIME, SOURCE)) > 0.3
        keras_mask &= ours_kwargs["attention_mask"]
    causal = options.get("causal", False)
    output, weights = ours(
        query, value, use_causal_mask=causal, return_attention_scores=True, **ours_kwargs
    )
    keras_kwargs = {
        "attention_mask": keras_mask if ours_kwargs else None,
        "use_causal_mask": causal,
    }
    explicit, explicit_weights = theirs(query, value, return_attention_scores=True, **keras_kwargs)
    fused = np.asarray(theirs(query, value, **keras_kwargs))
    assert output.shape == (BATCH, TIME, output_dim or DIM)
    assert weights.shape == (BATCH, HEADS, TIME, SOURCE)
    np.testing.assert_allclose(weights, explicit_weights, atol=1e-6)
    # Keras' two paths disagree on a query whose every key is masked ("all three" has one):
    # the explicit one (scores returned) zeroes its weights, as ours does; the fused one
    # attends uniformly. Every other query must match both.
    seen = np.tril(np.ones((TIME, SOURCE), bool)) if causal else np.ones((TIME, SOURCE), bool)
    has_a_key = (keras_mask & seen).any(-1)  # (batch, time)
    assert (case == "all three") == (not has_a_key.all())
    differences = [
        np.abs(np.asarray(output) - np.asarray(explicit)).max(),
        np.abs(np.asarray(output) - fused)[has_a_key].max(),
    ]
    assert max(differences) < 1e-5, differences


def test_self_attention_is_the_default():
    layer = MultiHeadAttention(2, 3)
    x = random(2, 4, 6)
    np.testing.assert_array_equal(layer(x), layer(x, x, x))


def test_a_masked_key_gets_no_weight_however_well_it_matches():
    """Padded keys change nothing: the output equals attention over the real keys alone, even
    when the padded key's score dwarfs every real one."""
    layer = MultiHeadAttention(2, 4)
    query, value = random(2, 3, 8, seed=5), random(2, 6, 8, seed=6)
    real = value[:, :4]
    value[:, 4:] = 1e3 * query[:, :1]  # huge scores for the padded keys
    mask = padding(2, 6, [4, 4])
    output, weights = layer(query, value, padding_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(output, layer(query, real), atol=1e-5)
    assert not np.any(weights[..., 4:])


def test_a_query_with_every_key_masked_attends_to_nothing():
    layer = MultiHeadAttention(2, 4)
    query = random(1, 2, 8, seed=12)
    mask = np.array([[[True, False, True], [False, False, False]]])  # (1, time, source)
    output, weights = layer(
        query, random(1, 3, 8), attention_mask=mask, return_attention_scores=True
    )
    assert not np.any(weights[0, :, 1])
    np.testing.assert_allclose(output[0, 1], layer.output_dense.bias.numpy(), atol=1e-6)


def test_causal_mask_hides_the_future():
    layer = MultiHeadAttention(2, 4)
    x = random(2, 6, 8, seed=7)
    changed = x.copy()
    changed[:, 4:] = random(2, 2, 8, seed=8)
    before, after = (np.asarray(layer(v, use_causal_mask=True)) for v in (x, changed))
    np.testing.assert_array_equal(before[:, :4], after[:, :4])
    assert not np.allclose(before[:, 4:], after[:, 4:])


def test_cached_decoding_equals_the_full_causal_pass():
    layer = MultiHeadAttention(HEADS, KEY_DIM)
    x = random(2, 6, DIM, seed=9)
    expected = np.asarray(layer(x, use_causal_mask=True))
    cache = np.zeros((2, 2, HEADS, 8, KEY_DIM), "float32")  # room for 8 positions
    output, cache = layer(x[:, :3], use_causal_mask=True, cache=cache, cache_index=0)
    steps = [np.asarray(output)]
    for index in range(3, 6):
        output, cache = layer(
            x[:, index : index + 1], use_causal_mask=True, cache=cache, cache_index=index
        )
        steps.append(np.asarray(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), expected, atol=1e-5)
    assert not np.any(np.asarray(cache)[:, :, :, 6:])  # nothing written past the last position


def test_a_shared_cache_changes_only_the_layers_own_slots():
    layer = MultiHeadAttention(HEADS, KEY_DIM)
    x = random(2, 3, DIM, seed=11)
    alone = np.zeros((2, 2, HEADS, 4, KEY_DIM), "float32")
    expected, expected_cache = layer(x, use_causal_mask=True, cache=alone, cache_index=0)
    shared = random(2, 6, HEADS, 4, KEY_DIM, seed=12)  # three layers' keys and values
    shared[:, 2:4] = 0.0
    output, cache = layer(x, use_causal_mask=True, cache=shared, cache_index=0, cache_slot=2)
    np.testing.assert_allclose(output, expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cache)[:, 2:4], expected_cache, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(cache)[:, [0, 1, 4, 5]], shared[:, [0, 1, 4, 5]])


def test_cache_needs_its_index():
    layer = MultiHeadAttention(2, 3)
    with pytest.raises(ValueError, match="go together"):
        layer(random(1, 2, 6), cache=np.zeros((1, 2, 2, 4, 3), "float32"))


def test_dropout_acts_on_the_weights_only_while_training():
    layer = MultiHeadAttention(2, 4, dropout=0.5)
    x = random(2, 5, 8, seed=10)
    np.testing.assert_array_equal(layer(x), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x))


def test_config_round_trip_and_keras_file(tmp_path):
    layer = MultiHeadAttention(4, 3, output_dim=5, dropout=0.1, use_bias=False)
    clone = MultiHeadAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert_keras_file_round_trip(layer, random(2, 6, 8, seed=11), tmp_path)
