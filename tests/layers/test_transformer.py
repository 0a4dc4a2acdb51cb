import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.layers import TransformerDecoderBlock, TransformerEncoderBlock
from tests.helpers import assert_keras_file_round_trip

DIM = 8


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


BLOCKS = [
    pytest.param({"norm_first": True, "activation": "gelu"}, id="pre-norm gelu"),
    pytest.param({"norm_first": False, "activation": "relu"}, id="post-norm relu"),
]


@pytest.mark.parametrize("options", BLOCKS)
def test_padded_positions_change_nothing_at_real_ones(options):
    block = TransformerEncoderBlock(2, 16, **options)
    x = random(2, 6, DIM, seed=1)
    mask = np.arange(6)[None, :] < np.array([[6], [3]])
    changed = x.copy()
    changed[1, 3:] = random(3, DIM, seed=2) * 10
    before, after = (np.asarray(block(v, padding_mask=mask)) for v in (x, changed))
    np.testing.assert_allclose(before[1, :3], after[1, :3], atol=1e-6)
    np.testing.assert_array_equal(before[0], after[0])


def test_encoder_attends_both_ways_and_decoder_only_backwards():
    x = random(1, 5, DIM, seed=3)
    changed = x.copy()
    changed[:, 4] = random(1, DIM, seed=7)  # not a constant shift, which LayerNorm removes
    encoder, decoder = TransformerEncoderBlock(2, 16), TransformerDecoderBlock(2, 16)
    assert not np.allclose(encoder(x)[:, 0], encoder(changed)[:, 0])
    np.testing.assert_array_equal(decoder(x)[:, :4], decoder(changed)[:, :4])


@pytest.mark.parametrize("options", BLOCKS)
def test_decoder_cache_equals_the_full_pass(options):
    block = TransformerDecoderBlock(2, 16, **options)
    x = random(2, 5, DIM, seed=4)
    expected = np.asarray(block(x))
    cache = np.zeros((2, 2, 2, 5, DIM // 2), "float32")
    steps = []
    for index in range(5):
        output, cache = block(x[:, index : index + 1], cache=cache, cache_index=index)
        steps.append(np.asarray(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), expected, atol=1e-5)


def test_width_must_split_into_heads():
    with pytest.raises(ValueError, match="multiple of num_heads=3"):
        TransformerEncoderBlock(3, 16)(random(1, 2, DIM))


def test_dropout_only_while_training():
    block = TransformerEncoderBlock(2, 16, dropout=0.3)
    x = random(2, 4, DIM, seed=5)
    np.testing.assert_array_equal(block(x), block(x, training=False))
    assert not np.allclose(block(x, training=True), block(x))


def test_attention_dropout_apart_from_the_branches_dropout():
    default = TransformerEncoderBlock(2, 16, dropout=0.3)
    apart = TransformerEncoderBlock(2, 16, dropout=0.3, attention_dropout=0.0)
    for block in (default, apart):
        block.build((2, 4, DIM))
    assert default.attention.dropout == 0.3
    assert (apart.attention.dropout, apart.dropout_layer.rate) == (0.0, 0.3)


@pytest.mark.parametrize("block_class", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_config_round_trip_and_keras_file(block_class, tmp_path):
    block = block_class(
        4,
        12,
        dropout=0.1,
        attention_dropout=0.05,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-6,
    )
    clone = block_class.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    assert_keras_file_round_trip(block, random(2, 3, DIM, seed=6), tmp_path)


@pytest.mark.parametrize("options", BLOCKS)
def test_training_pass_computes_what_inference_does(options):
    # Without dropout the two differ only in how: compiled GELU and layer norms while training.
    block = TransformerDecoderBlock(2, 16, **options)
    x = tf.constant(random(2, 5, DIM, seed=6))
    outputs, grads = [], []
    for training in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = block(x, training=training)
            loss = tf.reduce_sum(y * tf.sin(y))
        outputs.append(y)
        grads.append(tape.gradient(loss, [x, *block.trainable_weights]))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for trained, inferred in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(trained, inferred, rtol=1e-4, atol=1e-4)
