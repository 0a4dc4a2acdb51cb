import re

import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.data.builders import Cmudict
from bigmodel_tf.data.own import SPLITS
from bigmodel_tf.errors import UserError
from bigmodel_tf.families.seq2seq import data as transduction


@pytest.fixture(scope="module")
def words() -> dict[str, dict[str, list[str]]]:
    """{split: {word: pronunciations}} of the prepared dataset (prepared once, into the cache)."""
    loaded = {}
    for split in Cmudict.SPLIT_SIZES:
        loaded[split] = {}
        # In large batches: one Python step per example would take ~20 s for 125k words.
        for words, pronunciations in transduction.references("cmudict", split).ragged_batch(16384):
            for word, ps in zip(words.numpy(), pronunciations.to_list(), strict=True):
                loaded[split][word.decode()] = [p.decode() for p in ps]
    return loaded


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> transduction.Seq2SeqSpec:
    return transduction.transduction_spec("cmudict", tmp_path_factory.mktemp("run"), 32, 32)


def test_split_sizes_are_as_documented_and_split_by_word(words):
    for split, count in Cmudict.SPLIT_SIZES.items():
        assert len(words[split]) == count
    assert sum(len(p) for split in words.values() for p in split.values()) == 133_973
    held_out = [set(words["validation"]), set(words["test"])]
    assert not set(words["train"]) & held_out[0] and not set(words["train"]) & held_out[1]
    assert not held_out[0] & held_out[1]


def test_alternates_comments_and_characters(words):
    everything = {word: p for split in words.values() for word, p in split.items()}
    assert everything["read"] == ["R EH1 D", "R IY1 D"]  # read, read(2)
    assert everything["tomato"] == ["T AH0 M EY1 T OW2", "T AH0 M AA1 T OW2"]
    assert everything["aalborg"] == ["AO1 L B AO0 R G", "AA1 L B AO0 R G"]  # "# place, danish"
    assert everything["'bout"] == ["B AW1 T"]
    assert not {"a.", "able-bodied", "read(2)"} & set(everything)
    assert all(re.fullmatch(r"[a-z']+", word) for word in everything)
    phoneme = re.compile(r"[A-Z]+[0-2]?")
    assert all(
        phoneme.fullmatch(p) for ps in everything.values() for text in ps for p in text.split()
    )


def test_vocabularies_put_the_special_tokens_first(spec):
    assert spec.source_vocabulary[:2] == ("", "[UNK]")
    assert sorted(spec.source_vocabulary[2:]) == ["'", *"abcdefghijklmnopqrstuvwxyz"]
    assert spec.target_vocabulary[:4] == ("", "[UNK]", "<s>", "</s>")
    assert len(spec.target_vocabulary) == 4 + 69  # 39 phonemes, vowels with 3 stress levels
    assert spec.lowercase


def test_examples_are_shifted_teacher_forcing_pairs(spec):
    examples = transduction.transduction_examples("cmudict", "validation", spec)
    vocabulary = np.array(spec.target_vocabulary)
    count = 0
    for (source, decoder_inputs), targets in examples.as_numpy_iterator():
        assert decoder_inputs[0] == transduction.START_ID and targets[-1] == transduction.END_ID
        np.testing.assert_array_equal(decoder_inputs[1:], targets[:-1])
        assert transduction.OOV_ID not in targets and transduction.PAD_ID not in source
        count += 1
    assert count == 6_702  # one example per pronunciation
    word = "".join(spec.source_vocabulary[i] for i in source)
    assert (
        " ".join(vocabulary[targets[:-1]])
        in dict(
            (w.decode(), [p.decode() for p in ps])
            for w, ps in transduction.references("cmudict", "validation").as_numpy_iterator()
        )[word]
    )


def test_batches_are_padded_per_length_bucket(spec):
    examples = transduction.transduction_examples("cmudict", "validation", spec)
    batches = list(transduction.transduction_batcher(64)(examples).as_numpy_iterator())
    assert sum(len(targets) for _, targets in batches) == 6_702
    for (source, decoder_inputs), targets in batches:
        assert decoder_inputs.shape == targets.shape
        # Padding to the batch's longest, not the corpus': every batch has a full row.
        assert np.any(source[:, -1] != 0) and np.any(targets[:, -1] != 0)


def test_stress_can_be_stripped():
    assert transduction.strip_stress("T AH0 M EY1 T OW2") == "T AH M EY T OW"
    tokens = transduction.split_target(tf.constant(["T AH0 M EY1"]), stress=False)
    assert tokens.to_list() == [[b"T", b"AH", b"M", b"EY"]]


@pytest.mark.slow  # a second vocabulary over the whole training split (~25 s)
def test_a_vocabulary_without_stress_has_the_39_phonemes(tmp_path):
    spec = transduction.transduction_spec("cmudict", tmp_path, 32, 32, stress=False)
    assert len(spec.target_vocabulary) == 4 + 39
    assert not any(re.search(r"\d", token) for token in spec.target_vocabulary)


def test_decode_targets_stops_at_the_end_token(spec):
    ids = spec.target_vocabulary.index
    row = [ids("HH"), ids("AH0"), transduction.END_ID, ids("L"), 0]
    assert transduction.decode_targets(np.array([row, [0] * 5]), spec) == ["HH AH0", ""]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "no words given"),
        (["cat", ""], "an empty word"),
        (["x" * 33], "has 33 characters; the model takes at most 32"),
        (["naïve-ish"], "'-ï' not in the model's characters"),
    ],
)
def test_bad_words_are_refused(spec, words, message):
    with pytest.raises(UserError, match=re.escape(message)):
        transduction.encode_sources(words, spec)


def test_words_are_lowercased_and_padded(spec):
    ids = transduction.encode_sources(["Cat", "a"], spec)
    lookup = spec.source_vocabulary.index
    np.testing.assert_array_equal(
        ids, [[lookup("c"), lookup("a"), lookup("t")], [lookup("a"), 0, 0]]
    )


def test_pairs_files_split_by_source_and_keep_every_target(tmp_path):
    lines = [f"word{i}\ttarget {i}\tattribution #{i}" for i in range(400)]
    (tmp_path / "pairs.tsv").write_text("\n".join(["go\tve", "go\tvete", "", *lines]) + "\n")
    dataset = f"pairs:{tmp_path / 'pairs.tsv'}"
    splits = {
        split: {
            s.decode(): [t.decode() for t in ts]
            for s, ts in transduction.references(dataset, split).as_numpy_iterator()
        }
        for split in SPLITS
    }
    assert sum(map(len, splits.values())) == 401
    # 10% each held out by default, drawn by a hash of the source.
    assert all(20 < len(splits[split]) < 60 for split in ("validation", "test"))
    everything = {s: ts for split in splits.values() for s, ts in split.items()}
    assert everything["go"] == ["ve", "vete"] and everything["word7"] == ["target 7"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("a\tb\nno tab here\n", "line 2: no tab"), ("a\tb\n\tx\n", "line 2: empty source")],
)
def test_bad_pairs_lines_are_named(tmp_path, text, message):
    (tmp_path / "bad.tsv").write_text(text)
    with pytest.raises(UserError, match=message):
        transduction.references(f"pairs:{tmp_path / 'bad.tsv'}", "train")
