import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import data
from bigmodel_tf.families.language_model import data as text
from bigmodel_tf.io import read_json


def texts(*strings: str) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(list(strings))


@pytest.fixture(scope="module")
def shakespeare_spec(tmp_path_factory) -> text.CharSpec:
    return text.char_spec("shakespeare", tmp_path_factory.mktemp("run"), sequence_length=64)


def test_vocabulary_is_by_frequency_and_round_trips_through_its_file(tmp_path):
    vocabulary = text.build_vocabulary(texts("aab\nyx", "ba\n"))
    # a×3, b×2, \n×2, x×1, y×1: by count, ties in reverse codepoint order.
    assert vocabulary == [text.OOV_TOKEN, "a", "b", "\n", "y", "x"]
    path = tmp_path / "vocabulary.json"
    text.save_vocabulary(path, vocabulary)
    assert text.load_vocabulary(path) == vocabulary
    assert read_json(path)["oov_id"] == text.OOV_ID == vocabulary.index(text.OOV_TOKEN)


def test_char_lookup_needs_the_oov_token_first():
    with pytest.raises(ValueError, match="starts with"):
        text.char_lookup(["a", text.OOV_TOKEN])


def test_ids_and_text_round_trip():
    vocabulary = text.build_vocabulary(texts("To be, or not to be\n"))
    ids, unknown = text.text_to_ids("not to be, or\n", text.char_lookup(vocabulary))
    assert ids.dtype == np.int32 and len(ids) == 14 and text.OOV_ID not in ids
    assert unknown == []
    inverse = text.char_lookup(vocabulary, invert=True)
    assert text.ids_to_text(ids, inverse) == "not to be, or\n"
    assert text.ids_to_text(tf.constant(ids), inverse) == "not to be, or\n"


def test_unknown_characters_map_to_the_oov_id_and_are_reported():
    vocabulary = text.build_vocabulary(texts("abc"))
    ids, unknown = text.text_to_ids("aé€éb", text.char_lookup(vocabulary))
    a, b, oov = vocabulary.index("a"), vocabulary.index("b"), text.OOV_ID
    assert ids.tolist() == [a, oov, oov, oov, b]
    assert unknown == ["é", "€"]
    inverse = text.char_lookup(vocabulary, invert=True)
    assert text.ids_to_text(ids, inverse) == f"a{text.OOV_TOKEN * 3}b"


def test_windows_are_per_text_and_targets_are_inputs_shifted_by_one():
    strings = ("abcdefghij", "xy", "klmnop")
    vocabulary = text.build_vocabulary(texts(*strings))
    examples = text.lm_examples(texts(*strings), text.char_lookup(vocabulary), sequence_length=3)
    assert examples.element_spec == (tf.TensorSpec((3,), tf.int32), tf.TensorSpec((3,), tf.int32))
    inverse = text.char_lookup(vocabulary, invert=True)
    decoded = [
        (text.ids_to_text(inputs, inverse), text.ids_to_text(targets, inverse))
        for inputs, targets in examples.as_numpy_iterator()
    ]
    # Windows of 4 within each text, its incomplete last window dropped ("ij", "xy", "op").
    assert decoded == [("abc", "bcd"), ("efg", "fgh"), ("klm", "lmn")]


def test_spare_ids_carry_each_window_into_the_next():
    strings = ("abcdefghij", "xy", "klmnop")
    vocabulary = text.build_vocabulary(texts(*strings))
    lookup, inverse = text.char_lookup(vocabulary), text.char_lookup(vocabulary, invert=True)
    examples = text.lm_examples(texts(*strings), lookup, sequence_length=3, spare=2)
    decoded = [
        (text.ids_to_text(inputs, inverse), text.ids_to_text(targets, inverse))
        for inputs, targets in examples.as_numpy_iterator()
    ]
    # The same windows of 4 as without spare ids, each with the next 2 ids; "ijkl"'s window
    # lacks them (the text ends), so it is dropped, as "xy" is.
    assert decoded == [("abcde", "bcdef"), ("efghi", "fghij"), ("klmno", "lmnop")]
    with pytest.raises(ValueError, match="spare"):
        text.lm_examples(texts("abc"), lookup, sequence_length=3, spare=5)


def test_random_windows_cut_shifted_pairs_from_seeded_random_starts():
    rows = np.arange(64)[:, None] * 100 + np.arange(12)[None, :]  # row r: r*100 .. r*100+11
    inputs, targets = tf.constant(rows[:, :-1], tf.int32), tf.constant(rows[:, 1:], tf.int32)
    cut_inputs, cut_targets = text.random_windows(inputs, targets, sequence_length=8, seed=1)
    cut_inputs, cut_targets = cut_inputs.numpy(), cut_targets.numpy()
    assert cut_inputs.shape == cut_targets.shape == (64, 8)
    starts = cut_inputs[:, 0] - rows[:, 0]
    # Each row a contiguous piece of its own row, from any of the 4 possible starts.
    np.testing.assert_array_equal(cut_inputs, rows[:, :1] + starts[:, None] + np.arange(8))
    np.testing.assert_array_equal(cut_targets, cut_inputs + 1)
    assert set(starts) == {0, 1, 2, 3}
    # A function of the seed and the batch: the same batch is cut the same way again.
    again, _ = text.random_windows(inputs, targets, sequence_length=8, seed=1)
    other, _ = text.random_windows(inputs, targets, sequence_length=8, seed=2)
    np.testing.assert_array_equal(again.numpy(), cut_inputs)
    assert not np.array_equal(other.numpy(), cut_inputs)


def test_sequence_length_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        text.lm_examples(texts("abc"), text.char_lookup([text.OOV_TOKEN, "a"]), sequence_length=0)


def test_char_spec_builds_the_vocabulary_once_then_reads_it(shakespeare_spec, tmp_path):
    # 84 distinct characters in the training works (ASCII), plus the OOV token.
    assert shakespeare_spec.vocabulary_size == 85
    assert shakespeare_spec.vocabulary[:4] == (text.OOV_TOKEN, " ", "e", "t")
    assert shakespeare_spec.oov_id == text.OOV_ID and shakespeare_spec.sequence_length == 64
    text.save_vocabulary(tmp_path / text.VOCABULARY_FILE, [text.OOV_TOKEN, "a"])
    assert text.char_spec("shakespeare", tmp_path, 8).vocabulary == (text.OOV_TOKEN, "a")


def test_examples_are_deterministic_shifted_windows(shakespeare_spec):
    def first_batch() -> tuple[np.ndarray, np.ndarray]:
        examples = text.char_examples("shakespeare", "validation", shakespeare_spec)
        return next(examples.batch(32, drop_remainder=True).as_numpy_iterator())

    inputs, targets = first_batch()
    assert inputs.shape == targets.shape == (32, 64) and inputs.dtype == np.int32
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    # Windows (inputs plus their last target) tile the start of the first work: no overlap, no gap.
    inverse = text.char_lookup(shakespeare_spec.vocabulary, invert=True)
    windows = np.concatenate([inputs, targets[:, -1:]], axis=1)
    tiled = "".join(text.ids_to_text(window, inverse) for window in windows)
    work = next(data.load("shakespeare", "validation", as_supervised=False)[0].as_numpy_iterator())
    assert tiled == work["text"].decode()[: 32 * 65]
    again_inputs, again_targets = first_batch()
    np.testing.assert_array_equal(inputs, again_inputs)
    np.testing.assert_array_equal(targets, again_targets)


def test_streams_are_evenly_spaced_stretches_of_the_joined_works(shakespeare_spec):
    inputs, targets = text.char_streams("shakespeare", "test", shakespeare_spec, streams=4, steps=9)
    assert inputs.shape == targets.shape == (9, 4) and inputs.dtype == np.int32
    np.testing.assert_array_equal(inputs[1:], targets[:-1])  # time-major, shifted by one
    works = data.load("shakespeare", "test", as_supervised=False)[0].as_numpy_iterator()
    joined = "".join(work["text"].decode() for work in works)
    inverse = text.char_lookup(shakespeare_spec.vocabulary, invert=True)
    stride = len(joined) // 4
    for stream in range(4):
        stretch = text.ids_to_text(np.append(inputs[:, stream], targets[-1, stream]), inverse)
        assert stretch == joined[stream * stride : stream * stride + 10]


def test_a_split_too_short_for_the_streams_gives_as_many_as_fit(shakespeare_spec):
    inputs, _ = text.char_streams("shakespeare", "test", shakespeare_spec, streams=10**6, steps=200)
    works = data.load("shakespeare", "test", as_supervised=False)[0].as_numpy_iterator()
    characters = sum(len(work["text"].decode()) for work in works)
    assert inputs.shape == (200, characters // 201)
    inputs, _ = text.char_streams("shakespeare", "test", shakespeare_spec, streams=2, steps=10**7)
    assert inputs.shape == (characters - 1, 1)
