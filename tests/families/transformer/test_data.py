import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.families.transformer import data as subwords
from bigmodel_tf.families.transformer.masking import (
    drop_tokens,
    mask_tokens,
    replace_words,
    sample_spans,
)

VOCABULARY = (*subwords.RESERVED_TOKENS, "a", "good", "film", "bad", "##s", "!", "the")


def encode(*texts, sequence_length=8):
    tokenizer = subwords.wordpiece_tokenizer(VOCABULARY)

    @tf.function  # encode() runs in graph mode, as in tf.data and the exported signature
    def run(texts):
        return subwords.encode(texts, tokenizer, sequence_length)

    return run(tf.constant(texts)).to_list()


def test_texts_start_with_cls_and_are_lowercased_and_split_into_subwords():
    (ids,) = encode("The GOOD films!")
    tokens = [VOCABULARY[i] for i in ids]
    assert tokens == ["[CLS]", "the", "good", "film", "##s", "!"]


def test_long_texts_are_truncated_to_the_sequence_length():
    (ids,) = encode("good " * 50, sequence_length=8)
    assert len(ids) == 8 and ids[0] == subwords.CLS_ID


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"", ["[CLS]"]),
        (b"good \xff\xfe film", ["[CLS]", "good", "[UNK]", "film"]),
        (b"[CLS] film", ["[CLS]", "[UNK]", "[UNK]", "[UNK]", "film"]),  # typed, not special
    ],
)
def test_odd_texts_are_encoded_not_refused(text, expected):
    (ids,) = encode(text)
    assert [VOCABULARY[i] for i in ids] == expected


def test_vocabulary_is_learnt_from_the_texts_with_the_reserved_tokens_first():
    texts = tf.data.Dataset.from_tensor_slices(["Good film", "bad films", "good good film"] * 50)
    vocabulary = subwords.compute_vocabulary(texts, 100)
    assert tuple(vocabulary[:5]) == subwords.RESERVED_TOKENS
    assert {"good", "film"} <= set(vocabulary) and "Good" not in vocabulary


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    directory = tmp_path_factory.mktemp("run")
    return directory, subwords.subword_spec("rotten_tomatoes", directory, 2000, 32)


def test_spec_keeps_the_training_vocabulary_in_the_run_directory(spec):
    directory, first = spec
    assert (directory / subwords.WORDPIECE_FILE).is_file()
    assert 1000 < first.vocabulary_size <= 2000 and first.labels == ("rotten", "fresh")
    again = subwords.subword_spec("rotten_tomatoes", directory, 500, 32)
    assert again.vocabulary == first.vocabulary  # read back, not recomputed


def test_examples_are_ids_and_labels_and_batches_pad_with_zeros(spec):
    _, found = spec
    examples = subwords.subword_examples("rotten_tomatoes", "validation", found)
    lengths, labels = [], []
    for ids, label in examples.as_numpy_iterator():
        assert ids.dtype == np.int32 and ids[0] == subwords.CLS_ID and 0 not in ids
        lengths.append(len(ids))
        labels.append(label)
    assert len(labels) == 1275 and set(labels) == {0, 1} and max(lengths) <= 32
    batches = list(subwords.token_batcher(100)(examples).as_numpy_iterator())
    assert sum(len(labels) for _, labels in batches) == 1275
    padding = sum(int((ids == 0).sum()) for ids, _ in batches)
    assert padding < 0.2 * sum(lengths)  # batched by length, little padding
    # Few batch shapes (each one an XLA compile): the longest text rounded up to 16 tokens.
    for ids, _ in batches:
        longest = int((ids != 0).sum(axis=1).max())
        assert ids.shape[1] % subwords.PAD_MULTIPLE == 0
        assert longest <= ids.shape[1] < longest + subwords.PAD_MULTIPLE


def test_a_dataset_without_text_is_refused():
    with pytest.raises(UserError, match="mnist5k has no text feature"):
        subwords.subword_spec("mnist5k", "/nonexistent", 100, 8)


def test_masking_follows_bert_and_depends_on_the_batch_not_on_state():
    ids = np.random.default_rng(0).integers(5, 1000, (64, 40)).astype("int32")
    ids[:, 0] = subwords.CLS_ID
    ids[:, 30:] = subwords.PAD_ID
    inputs, targets, weights = mask_tokens(ids, 0.15, 1000, 7)
    masked, positions = inputs["token_ids"].numpy(), inputs["mask_positions"].numpy()
    assert positions.shape == targets.shape == weights.shape == (64, 12)  # ceil(2 x 0.15 x 40)
    np.testing.assert_array_equal(targets, np.take_along_axis(ids, positions, axis=1))
    scored = np.zeros(ids.shape, bool)
    np.put_along_axis(scored, positions, weights.numpy() == 1.0, axis=1)
    assert not scored[:, 0].any() and not scored[:, 30:].any()
    assert 0.12 < scored[:, 1:30].mean() < 0.18
    np.testing.assert_array_equal(masked[~scored], ids[~scored])  # the rest is untouched
    replaced = masked[scored]
    assert 0.7 < np.mean(replaced == subwords.MASK_ID) < 0.9
    assert np.mean(replaced == ids[scored]) > 0.05  # ~10% stay as they are
    again, _, _ = mask_tokens(ids, 0.15, 1000, 7)
    np.testing.assert_array_equal(again["token_ids"], masked)
    other_seed, _, _ = mask_tokens(ids, 0.15, 1000, 8)
    other_batch, _, _ = mask_tokens(ids[::-1], 0.15, 1000, 7)
    assert not np.array_equal(other_seed["token_ids"], masked)
    assert not np.array_equal(np.asarray(other_batch["token_ids"])[::-1], masked)


# BERT's layout: its own ids for the special tokens, and [SEP] at the end of every text.
BERT_LIKE = ("[PAD]", "the", "good", "film", "##s", "!", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
             "fi", "##lm", "goo", "##d", "a")  # fmt: skip


def test_texts_end_with_sep_where_the_vocabulary_asks_for_it():
    spec = subwords.SubwordSpec(BERT_LIKE, (), 5, end_token=True)
    assert (spec.cls_id, spec.sep_id) == (7, 8)
    tokenizer = subwords.wordpiece_tokenizer(spec.vocabulary)
    run = tf.function(lambda t: subwords.encode(t, tokenizer, 5, spec.cls_id, spec.sep_id))
    short, long, empty = run(tf.constant(["Good films!", "the the the the the", ""])).to_list()
    assert [BERT_LIKE[i] for i in short] == ["[CLS]", "good", "film", "##s", "[SEP]"]
    assert [BERT_LIKE[i] for i in long] == ["[CLS]", "the", "the", "the", "[SEP]"]
    assert [BERT_LIKE[i] for i in empty] == ["[CLS]", "[SEP]"]


def test_retokenizer_reads_one_vocabulary_into_another(tmp_path):
    from tests.helpers import assert_keras_file_round_trip

    texts = tf.constant(["The GOOD films!", "a good fil", "good good the film"])
    source_tokenizer = subwords.wordpiece_tokenizer(VOCABULARY)
    target = subwords.SubwordSpec(BERT_LIKE, (), 16, end_token=True)
    target_tokenizer = subwords.wordpiece_tokenizer(BERT_LIKE)
    retokenizer = subwords.Retokenizer(VOCABULARY, BERT_LIKE, 16, end_token=True)

    @tf.function
    def run(texts):
        source = subwords.encode(texts, source_tokenizer, 16).to_tensor(subwords.PAD_ID)
        direct = subwords.encode(texts, target_tokenizer, 16, target.cls_id, target.sep_id)
        return retokenizer(source), direct.to_tensor(subwords.PAD_ID), source

    converted, direct, source = run(texts)
    # "fil" is [UNK] in the source vocabulary and spells nothing; elsewhere, the same ids.
    np.testing.assert_array_equal(converted[0], direct[0])
    np.testing.assert_array_equal(converted[2], direct[2])
    assert [BERT_LIKE[i] for i in converted[1] if i] == ["[CLS]", "a", "good", "[SEP]"]
    assert_keras_file_round_trip(retokenizer, source.numpy(), tmp_path)


def test_word_dropout_drops_inner_subwords_alike_for_alike_batches():
    ids = tf.constant([[1, 5, 6, 7, 8, 9, 2, 0, 0], [1, 5, 6, 2, 0, 0, 0, 0, 0]] * 200)
    dropped = drop_tokens(ids, 0.3, seed=7).numpy()
    kept = ids.numpy()
    # [CLS], the last token and padding stay; every other token may become padding.
    np.testing.assert_array_equal(dropped[:, 0], kept[:, 0])
    np.testing.assert_array_equal(dropped[0::2, 6], kept[0::2, 6])
    assert not dropped[:, 7:].any()
    changed = dropped != kept
    assert set(dropped[changed]) == {subwords.PAD_ID}
    assert changed[0::2, 1:6].mean() == pytest.approx(0.3, abs=0.05)
    np.testing.assert_array_equal(drop_tokens(ids, 0.3, seed=7), dropped)
    assert (drop_tokens(ids, 0.3, seed=8).numpy() != dropped).any()


def test_span_sampling_keeps_runs_of_whole_words_at_the_front():
    vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "b", "##x", "c", "d", "##y"]
    word_starts = tf.constant([not token.startswith("##") for token in vocabulary])
    # Words: a, bx, c, dy (between [CLS] and [SEP]); a row of one word; a row of none.
    rows = [[1, 5, 6, 7, 8, 9, 10, 2, 0], [1, 8, 2, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0, 0]]
    ids = tf.constant(rows * 300)
    words = {"a": [5], "bx": [6, 7], "c": [8], "dy": [9, 10]}
    order = ["a", "bx", "c", "dy"]
    cut = sample_spans(ids, 0.5, word_starts, max_words=2, seed=7).numpy()
    assert cut.shape == ids.shape
    spans = set()
    for row, out in zip(ids.numpy(), cut, strict=True):
        kept = [int(i) for i in out if i]
        assert out[: len(kept)].tolist() == kept  # closed up, padding after
        assert kept[0] == 1 and kept[-1] == 2  # [CLS] and [SEP] stay
        if row[3] == 0:  # one word or none: nothing to cut
            assert kept == [int(i) for i in row if i]
            continue
        inner = kept[1:-1]
        # One or two consecutive whole words, or the whole text.
        runs = {
            tuple(piece for word in order[i : i + n] for piece in words[word])
            for n in (1, 2)
            for i in range(len(order) - n + 1)
        }
        assert tuple(inner) in runs | {tuple(row[1:7])}
        spans.add(tuple(inner))
    assert len(spans) == len(order) + len(order) - 1 + 1  # every run appears, and whole texts
    whole = np.mean([(out[1:7] == ids.numpy()[0, 1:7]).all() for out in cut[0::3]])
    assert whole == pytest.approx(0.5, abs=0.1)
    np.testing.assert_array_equal(sample_spans(ids, 0.5, word_starts, 2, seed=7), cut)
    unchanged = sample_spans(ids, 0.0, word_starts, 2, seed=7)
    np.testing.assert_array_equal(unchanged, ids)


def test_word_replacement_swaps_one_subword_words_for_words():
    vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "b", "##x", "c", "d", "e"]
    word_starts = tf.constant([not token.startswith("##") for token in vocabulary])
    ids = tf.constant([[1, 5, 6, 7, 8, 9, 10, 2, 0]] * 500)  # [CLS] a bx c d e [SEP]
    replaced = replace_words(ids, 0.3, word_starts, seed=7).numpy()
    kept = ids.numpy()
    changed = replaced != kept
    # [CLS], [SEP], padding and the two pieces of "bx" stay; "a", "c", "d", "e" may change.
    assert not changed[:, [0, 2, 3, 7, 8]].any()
    assert changed[:, [1, 4, 5, 6]].mean() == pytest.approx(0.3 * 4 / 5, abs=0.05)
    # Into words only (never a special token or a "##" piece), each about equally often.
    assert set(replaced[changed]) <= {5, 6, 8, 9, 10}
    np.testing.assert_array_equal(replace_words(ids, 0.3, word_starts, seed=7), replaced)
    assert (replace_words(ids, 0.3, word_starts, seed=8).numpy() != replaced).any()
