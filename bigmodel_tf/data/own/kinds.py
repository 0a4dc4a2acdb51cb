"""Each kind of your own data read, checked and split into a `Plan`, what the TFDS builder
writes: `images:DIR`, `text:PATH`, `csv:PATH` (and .tsv, .jsonl) and `pairs:PATH`."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from bigmodel_tf.data.own.files import Progress, read_file, utf8
from bigmodel_tf.data.own.splits import (
    SPLITS,
    DataOptions,
    last_stretches,
    pairs_split,
    split_with_given,
    whole_files,
)
from bigmodel_tf.errors import UserError

TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
# Greyscale PIL modes; every other mode (RGB, RGBA, CMYK, a colour palette) makes 3 channels.
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass
class Plan:
    """A source read, checked and split: what the builder writes."""

    kind: str
    features: Any
    splits: dict[str, list[Any]]
    # Turns one planned item into `(key, example)`.
    example: Callable[[Any], dict[str, Any]]
    supervised_keys: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _class_names(values: Sequence[str], where: str) -> list[str]:
    """The distinct labels, in numeric order if all are integers, else alphabetical."""
    names = sorted(set(values))
    if all(v.lstrip("-").isdigit() for v in names):
        names.sort(key=int)
    if len(names) < 2:
        raise UserError(f"{where} has one class ({names[0]!r}): a classifier needs two or more")
    return names


# --- images:DIR -----------------------------------------------------------------------------


def _image(path: Path, channels: int | None = None):
    """The image in `path` decoded with Pillow (all of it, so that truncation shows), converted
    to `channels` if given; raises Pillow's error for a file it cannot decode."""
    from PIL import Image

    with Image.open(io.BytesIO(path.read_bytes())) as image:
        image.load()
        if channels is None:
            return image.mode, image.size, _palette_is_grey(image)
        converted = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(converted, np.uint8)
    return array[..., None] if channels == 1 else array


def _palette_is_grey(image) -> bool:
    palette = image.getpalette() if image.mode == "P" else None
    if not palette:
        return False
    rgb = np.asarray(palette).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def _decoded(file: Path, options: DataOptions) -> tuple | None:
    """`_image(file)`: its mode, size and whether its palette is grey; None for an image that
    cannot be decoded when `options.bad_images` is `skip` (with a warning naming it)."""
    from PIL import Image

    try:
        return _image(file)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        if options.bad_images == "fail":
            raise UserError(
                f"cannot decode image {file}: {e} (--set data.bad_images=skip leaves such "
                "images out)"
            ) from None
        print(f"warning: skipping {file}: {e}", file=sys.stderr)
        return None


def _plan_images(root: Path, files: list[Path], options: DataOptions) -> Plan:
    fixed = {p.name for p in root.iterdir() if p.is_dir()}
    fixed_splits = "train" in fixed and fixed <= set(SPLITS)
    items, labels, given, modes, sizes, skipped = [], [], [], [], Counter(), []
    progress = Progress(f"checking images:{root}", len(files))
    for number, file in enumerate(files, 1):
        parts = file.relative_to(root).parts
        split, parts = (parts[0], parts[1:]) if fixed_splits else (None, parts)
        if len(parts) < 2:
            raise UserError(
                f"{file} is not in a class folder: images:DIR wants DIR/<class>/<image> "
                "(or DIR/train/<class>/<image>)"
            )
        decoded = _decoded(file, options)
        if decoded is None:
            skipped.append(file)
            continue
        mode, (width, height), grey_palette = decoded
        items.append(file)
        labels.append(parts[0])
        given.append(split)
        modes.append(mode in GREY_MODES or grey_palette)
        sizes[(height, width)] += 1
        progress(number)
    if not items:
        raise UserError(f"images:{root}: none of its {len(files):,} images could be decoded")
    pairs = list(zip(labels, given, strict=True))
    train_classes = {label for label, split in pairs if split in (None, "train")}
    names = _class_names(sorted(train_classes), f"images:{root}")
    for label, split in pairs:
        if label not in train_classes:
            raise UserError(f"images:{root}: class {label!r} of {split}/ has no training images")
    ids = [names.index(label) for label in labels]
    splits = split_with_given(ids, given, names, options, "images")
    channels = 1 if all(modes) else 3
    (common_size, _), *_ = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))

    def example(index: int) -> dict[str, Any]:
        return {"image": _image(items[index], channels), "label": ids[index]}

    return Plan(
        kind="images",
        features=tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=(None, None, channels)),
                "label": tfds.features.ClassLabel(names=names),
            }
        ),
        splits=splits,
        example=example,
        supervised_keys=("image", "label"),
        extra={"image_size": list(common_size), "skipped": [str(p) for p in skipped]},
    )


# --- text:PATH ------------------------------------------------------------------------------


def _plan_text(root: Path, files: list[Path], options: DataOptions) -> Plan:
    texts = {}
    for file in files:
        text = utf8(file, read_file(file))
        if not text.strip():
            raise UserError(f"{file} is empty")
        texts[str(file.relative_to(root)) if root.is_dir() else file.name] = text
    if len(texts) >= 3:
        splits = whole_files(texts, options)
    else:
        splits = {split: [] for split in SPLITS}
        for title, text in texts.items():
            for split, part in last_stretches(text, options).items():
                if not part.strip():
                    raise UserError(f"{title} is too short to hold out {split} text from it")
                splits[split].append((f"{title} ({split})", part))
    return Plan(
        kind="text",
        features=tfds.features.FeaturesDict(
            {"title": tfds.features.Text(), "text": tfds.features.Text()}
        ),
        splits=splits,
        example=lambda item: {"title": item[0], "text": item[1]},
    )


# --- csv:PATH (and .tsv, .jsonl) ------------------------------------------------------------


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(line number, row)` of a .csv, .tsv or .jsonl file; blank lines skipped."""
    suffix = path.suffix.lower()
    text = utf8(path, read_file(path))
    if suffix == ".jsonl":
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise UserError(f"{path} line {number}: not JSON: {e}") from None
            if not isinstance(row, dict):
                raise UserError(f"{path} line {number}: not a JSON object")
            yield number, row
        return
    if suffix not in TABLE_DELIMITERS:
        found = repr(suffix) if suffix else "a file without a suffix"
        raise UserError(f"csv:{path}: expected a .csv, .tsv or .jsonl file, not {found}")
    reader = csv.reader(io.StringIO(text), delimiter=TABLE_DELIMITERS[suffix])
    try:
        header = next(reader)
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise UserError(
                    f"{path} line {reader.line_num}: {len(fields)} fields where the header has "
                    f"{len(header)}"
                )
            yield reader.line_num, dict(zip(header, fields, strict=True))
    except StopIteration:
        raise UserError(f"{path} is empty") from None
    except csv.Error as e:
        raise UserError(f"{path} line {reader.line_num}: {e}") from None


def _plan_table(path: Path, files: list[Path], options: DataOptions) -> Plan:
    texts, labels, given = [], [], []
    for number, row in _rows(path):
        for column in (options.text_column, options.label_column):
            if column not in row:
                known = ", ".join(map(repr, row))
                raise UserError(
                    f"{path} line {number}: no {column!r} column (it has {known}; "
                    f"--set data.text_column=... / data.label_column=... pick others)"
                )
        text, label = row[options.text_column], row[options.label_column]
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{path} line {number}: empty text in column {options.text_column!r}")
        if label is None or str(label).strip() == "":
            raise UserError(f"{path} line {number}: empty label in column {options.label_column!r}")
        split = row.get(options.split_column) if options.split_column else None
        if split is not None and split not in SPLITS:
            raise UserError(
                f"{path} line {number}: split {split!r} in column {options.split_column!r} is "
                f"none of {', '.join(SPLITS)}"
            )
        texts.append(text.strip())
        labels.append(str(label).strip())
        given.append(split)
    if not texts:
        raise UserError(f"{path} has no rows")
    names = _class_names(labels, f"column {options.label_column!r} of {path}")
    ids = [names.index(label) for label in labels]
    splits = split_with_given(ids, given, names, options, "rows")
    return Plan(
        kind="csv",
        features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=names)}
        ),
        splits=splits,
        example=lambda i: {"text": texts[i], "label": ids[i]},
        supervised_keys=("text", "label"),
    )


# --- pairs:PATH -----------------------------------------------------------------------------


def read_pairs(path: Path) -> dict[str, list[str]]:
    """`{source: [target, ...]}` of a UTF-8 file of `source<TAB>target` lines, in file order.

    The format of the Tatoeba/Anki sentence pairs (`eng<TAB>spa<TAB>attribution`): columns
    after the second are ignored; blank lines are skipped; a source on several lines has all
    their targets. A line without a tab, or with an empty source or target, is a `UserError`
    naming its line number.
    """
    pairs: dict[str, list[str]] = {}
    for number, line in enumerate(utf8(path, read_file(path)).split("\n"), 1):
        if not line.strip():
            continue
        source, tab, rest = line.partition("\t")
        target = rest.split("\t")[0].strip()
        if not tab:
            raise UserError(f"{path} line {number}: no tab between source and target")
        if not source.strip() or not target:
            raise UserError(f"{path} line {number}: empty source or target")
        pairs.setdefault(source.strip(), []).append(target)
    return pairs


def _plan_pairs(path: Path, files: list[Path], options: DataOptions) -> Plan:
    pairs = read_pairs(path)
    splits: dict[str, list[tuple[str, list[str]]]] = {split: [] for split in SPLITS}
    for source, targets in pairs.items():
        splits[pairs_split(source, options)].append((source, targets))
    for split, items in splits.items():
        if not items:
            raise UserError(
                f"pairs:{path} has no {split} pairs ({len(pairs):,} sources): it needs more lines"
            )
    return Plan(
        kind="pairs",
        features=tfds.features.FeaturesDict(
            {
                "source": tfds.features.Text(),
                "targets": tfds.features.Sequence(tfds.features.Text()),
            }
        ),
        splits=splits,
        example=lambda item: {"source": item[0], "targets": item[1]},
    )


PLANNERS: dict[str, Callable[[Path, list[Path], DataOptions], Plan]] = {
    "images": _plan_images,
    "text": _plan_text,
    "csv": _plan_table,
    "pairs": _plan_pairs,
}
