import re

import pytest

from bigmodel_tf import data
from bigmodel_tf.data.builders import Shakespeare


@pytest.fixture(scope="module")
def works() -> dict[str, dict[str, str]]:
    """{split: {title: text}} of the prepared dataset (prepared once, into the cache)."""
    loaded = {}
    for split in Shakespeare.SPLIT_SIZES:
        ds, _ = data.load("shakespeare", split, as_supervised=False)
        loaded[split] = {
            example["title"].decode(): example["text"].decode()
            for example in ds.as_numpy_iterator()
        }
    return loaded


def test_split_sizes_are_as_documented(works):
    info = data.builder("shakespeare").info
    for split, count in Shakespeare.SPLIT_SIZES.items():
        assert len(works[split]) == count
        assert info.splits[split].num_examples == count
    assert sum(Shakespeare.SPLIT_SIZES.values()) == 42


def test_held_out_splits_are_whole_works_of_about_five_percent(works):
    characters = {split: sum(map(len, texts.values())) for split, texts in works.items()}
    total = sum(characters.values())
    assert 5_000_000 < total < 5_100_000
    for split in ("validation", "test"):
        assert 0.045 <= characters[split] / total <= 0.06, split
    titles = [title for texts in works.values() for title in texts]
    assert len(set(titles)) == len(titles) == 42
    assert set(works["validation"]) == {
        "TWELFTH NIGHT; OR, WHAT YOU WILL",
        "THE TRAGEDY OF KING RICHARD THE SECOND",
    }
    assert set(works["test"]) == {"A MIDSUMMER NIGHT'S DREAM", "OTHELLO, THE MOOR OF VENICE"}


@pytest.mark.parametrize(
    "split, title, line",
    [
        ("train", "HAMLET, PRINCE OF DENMARK", "To be, or not to be,--that is the question:--\n"),
        ("train", "THE SONNETS", "Shall I compare thee to a summer's day?\n"),
        ("validation", "TWELFTH NIGHT; OR, WHAT YOU WILL", "If music be the food of love"),
        ("validation", "THE TRAGEDY OF KING RICHARD THE SECOND", "This royal throne of kings"),
        ("test", "OTHELLO, THE MOOR OF VENICE", "Put out the light, and then put out the light:"),
        ("test", "A MIDSUMMER NIGHT'S DREAM", "The course of true love never did run smooth:"),
    ],
)
def test_known_line_is_in_its_work_and_split(works, split, title, line):
    assert line in works[split][title]
    other_splits = [texts for name, texts in works.items() if name != split]
    assert not any(line in text for texts in other_splits for text in texts.values())


def test_texts_are_the_works_without_header_or_boilerplate(works):
    texts = {title: text for split in works.values() for title, text in split.items()}
    hamlet = texts["HAMLET, PRINCE OF DENMARK"]
    assert hamlet.startswith("PERSONS REPRESENTED.\n\nClaudius, King of Denmark.\n")
    assert hamlet.endswith("bodies; after the which a peal of\nordnance is shot off.]")
    assert texts["THE SONNETS"].startswith("I\n\nFrom fairest creatures we desire increase,\n")
    boilerplate = re.compile(
        r"\b(gutenberg|e-?books?|etexts?|copyright)\b|\*\*\*|by William Shakespeare", re.IGNORECASE
    )
    for title, text in texts.items():
        assert text == text.strip("\n") and "\r" not in text, title
        assert not boilerplate.search(text), (title, boilerplate.search(text))
