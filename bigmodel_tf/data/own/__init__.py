"""Your own data: `images:DIR`, `text:PATH`, `csv:PATH` and `pairs:PATH`, prepared as TFDS datasets.

A source is read, checked and split in one pass (a `Plan`, `own.kinds`, from the files as
`own.files` reads them and the rules of `own.splits`), then written as TFRecords by a TFDS
builder, as the embedded sets are, under `<cache>/tfds/own/<kind>-<digest>/`. The digest covers
every file's bytes and the `DataOptions` that shape the splits, so a changed file re-prepares
and an unchanged one loads at once. Bad data is a `UserError` naming the file (and its line or
byte) raised before anything is written, in the cache or in a run directory.

>>> found = prepare("csv:reviews.csv", DataOptions(label_column="stars"))
>>> found.as_dataset(split="train")
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from bigmodel_tf.data.own.files import Progress, read_file, source_files
from bigmodel_tf.data.own.kinds import PLANNERS, Plan, read_pairs
from bigmodel_tf.data.own.splits import SPLITS, DataOptions, pairs_split, stratified_splits
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

# What each kind is and which families read it, as `bigmodel-tf datasets` lists them.
KINDS = {
    "images": "a folder with one sub-folder of PNG/JPEG/BMP/GIF images per class, or "
    "train/, validation/, test/ folders of such sub-folders (cnn)",
    "text": "a UTF-8 .txt file or a folder of them (gru-lm, transformer-lm, transformer-mlm)",
    "csv": "a .csv, .tsv or .jsonl table with a text and a label column "
    "(transformer, transformer-pretrained, transformer-student)",
    "pairs": "a UTF-8 file of source<TAB>target lines (seq2seq)",
}
# Where a prepared source keeps what TFDS does not: its kind, the images' usual size.
SOURCE_FILE = "source.json"


def parse(name: str) -> tuple[str, Path] | None:
    """`("images", Path(DIR))` for `"images:DIR"`; None for a name that is not own data."""
    kind, sep, path = name.partition(":")
    if sep and kind in KINDS and path:
        return kind, Path(path).expanduser()
    return None


class OwnData(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes a `Plan` as a TFDS dataset (reading it back needs no plan: `prepare`)."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, plan: Plan, **kwargs):
        self._plan = plan
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Your own {self._plan.kind} data ({KINDS[self._plan.kind]}).",
            features=self._plan.features,
            supervised_keys=self._plan.supervised_keys,
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(items) for split, items in self._plan.splits.items()}

    def _generate_examples(self, items):
        for index, item in enumerate(items):
            yield index, self._plan.example(item)


def prepare(name: str, options: DataOptions | None = None) -> tfds.core.DatasetBuilder:
    """The prepared TFDS builder of own data `name` (`KIND:PATH`), preparing it if its files or
    the options changed since it was last prepared."""
    parsed = parse(name)
    if parsed is None:
        kinds = ", ".join(f"{kind}:PATH" for kind in KINDS)
        raise UserError(f"{name!r} is not own data; use one of {kinds}")
    kind, path = parsed
    options = options or DataOptions()
    files = source_files(kind, path)
    digest = _digest(kind, path, files, options)
    root = _cache_root() / f"{kind}-{digest}"
    built = root / "own_data" / str(OwnData.VERSION)
    if not (root / SOURCE_FILE).is_file():
        plan = PLANNERS[kind](path, files, options)
        # TFDS' own banner and progress bars would bury our lines; one summary line instead.
        chatter = io.StringIO()
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            OwnData(plan, data_dir=str(root)).download_and_prepare()
        write_json(root / SOURCE_FILE, {"kind": kind, "path": str(path), **plan.extra})
        sizes = ", ".join(f"{split} {len(items):,}" for split, items in plan.splits.items())
        print(f"prepared {name} ({len(files):,} files): {sizes}", file=sys.stderr)
    return tfds.builder_from_directory(str(built))


def source_info(name: str, options: DataOptions | None = None) -> dict[str, Any]:
    """What a prepared source records besides its features (`{"kind", "path", ...}`; images add
    `"image_size"`, their most common `[height, width]`)."""
    found = prepare(name, options)
    return read_json(Path(found.data_dir).parent.parent / SOURCE_FILE)


def _cache_root() -> Path:
    from bigmodel_tf.data.archives import cache_dir

    return cache_dir() / "tfds" / "own"


# A run asks for its source many times (spec, then each split); within one process the files are
# hashed again only when one's size or modification time changed.
_DIGESTS: dict[tuple, str] = {}


def _digest(kind: str, path: Path, files: list[Path], options: DataOptions) -> str:
    """sha256 over the files' contents and relative names and the options, 16 hex digits."""
    try:
        stats = tuple((str(f), *_size_and_time(f)) for f in files)
    except OSError:
        stats = None  # read_file names the file
    key = (kind, str(path), json.dumps(asdict(options)), stats)
    if stats is not None and key in _DIGESTS:
        return _DIGESTS[key]
    _DIGESTS[key] = _hash_files(kind, path, files, options)
    return _DIGESTS[key]


def _size_and_time(file: Path) -> tuple[int, int]:
    found = file.stat()
    return found.st_size, found.st_mtime_ns


def _hash_files(kind: str, path: Path, files: list[Path], options: DataOptions) -> str:
    digest = hashlib.sha256(json.dumps([kind, asdict(options)]).encode())
    progress = Progress(f"reading {kind}:{path}", len(files))
    for number, file in enumerate(files, 1):
        name = file.relative_to(path) if file != path else file.name
        digest.update(f"\0{name}\0".encode())
        digest.update(hashlib.sha256(read_file(file)).digest())
        progress(number)
    return digest.hexdigest()[:16]


__all__ = [
    "KINDS",
    "PLANNERS",
    "SPLITS",
    "DataOptions",
    "OwnData",
    "Plan",
    "pairs_split",
    "parse",
    "prepare",
    "read_pairs",
    "source_info",
    "stratified_splits",
]
