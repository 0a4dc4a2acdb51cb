from collections import Counter

import numpy as np
import pytest

from bigmodel_tf import data
from bigmodel_tf.data.builders import RottenTomatoes


@pytest.fixture(scope="module")
def splits() -> dict[str, list[tuple[str, int]]]:
    """{split: [(text, label), ...]} of the prepared dataset (prepared once, into the cache)."""
    loaded = {}
    for split in RottenTomatoes.SPLIT_SIZES:
        ds, _ = data.load("rotten_tomatoes", split)
        loaded[split] = [(text.decode(), int(label)) for text, label in ds.as_numpy_iterator()]
    return loaded


def test_split_sizes_are_as_documented(splits):
    info = data.builder("rotten_tomatoes").info
    for split, count in RottenTomatoes.SPLIT_SIZES.items():
        assert len(splits[split]) == count == info.splits[split].num_examples
    assert info.features["label"].names == ["rotten", "fresh"]
    assert info.supervised_keys == ("text", "label")


def test_labelled_splits_are_stratified_80_10_10(splits):
    counts = {split: Counter(label for _, label in splits[split]) for split in splits}
    assert sum(counts[s][1] for s in ("train", "validation", "test")) == 7368  # fresh
    assert sum(counts[s][0] for s in ("train", "validation", "test")) == 5383  # rotten
    for split in ("validation", "test"):
        assert counts[split] == {1: 737, 0: 538}
    rotten_share = [counts[s][0] / sum(counts[s].values()) for s in ("train", "validation")]
    assert np.ptp(rotten_share) < 0.001
    assert counts["unsupervised"] == {-1: 1083}


def test_no_text_is_in_two_splits_or_twice_in_one(splits):
    keys = [" ".join(text.lower().split()) for texts in splits.values() for text, _ in texts]
    assert len(set(keys)) == len(keys) == sum(RottenTomatoes.SPLIT_SIZES.values())
    assert all(text == text.strip() and text for texts in splits.values() for text, _ in texts)


def test_snippets_are_short_and_plot_summaries_long(splits):
    words = {split: np.mean([len(t.split()) for t, _ in texts]) for split, texts in splits.items()}
    assert 17 < words["train"] < 20  # the documented 18.5 words on average
    assert words["unsupervised"] > 80


@pytest.mark.parametrize(
    ("fragment", "label"),
    [
        ("rancid crème brûlée", "rotten"),  # non-ASCII text survives
        ("two of the year’s most accomplished and riveting film performances", "fresh"),
    ],
)
def test_known_snippet_has_its_label(splits, fragment, label):
    (found,) = [
        (text, value) for texts in splits.values() for text, value in texts if fragment in text
    ]
    assert RottenTomatoes.LABELS[found[1]] == label
