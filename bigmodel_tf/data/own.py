"""Your own data: `images:DIR`, `text:PATH`, `csv:PATH` and `pairs:PATH`, prepared as TFDS datasets.

A source is read, checked and split in one pass (`plan`), then written as TFRecords by a TFDS
builder, as the embedded sets are, under `<cache>/tfds/own/<kind>-<digest>/`. The digest covers
every file's bytes and the `DataOptions` that shape the splits, so a changed file re-prepares
and an unchanged one loads at once. Bad data is a `UserError` naming the file (and its line or
byte) raised before anything is written, in the cache or in a run directory.

>>> found = prepare("csv:reviews.csv", DataOptions(label_column="stars"))
>>> found.as_dataset(split="train")
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from bigmodel_tf.config import option
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json

SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
# What each kind is and which families read it, as `bigmodel-tf datasets` lists them.
KINDS = {
    "images": "a folder with one sub-folder of PNG/JPEG/BMP/GIF images per class, or "
    "train/, validation/, test/ folders of such sub-folders (cnn)",
    "text": "a UTF-8 .txt file or a folder of them (gru-lm, transformer-lm, transformer-mlm)",
    "csv": "a .csv, .tsv or .jsonl table with a text and a label column "
    "(transformer, transformer-pretrained, transformer-student)",
    "pairs": "a UTF-8 file of source<TAB>target lines (seq2seq)",
}
# Greyscale PIL modes; every other mode (RGB, RGBA, CMYK, a colour palette) makes 3 channels.
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
# Inputs larger than this get a progress line every few seconds.
PROGRESS_EVERY_S = 3.0
# Where a prepared source keeps what TFDS does not: its kind, the images' usual size.
SOURCE_FILE = "source.json"


@dataclass
class DataOptions:
    """How your own data is read and split (`--set data.KEY=VALUE`); embedded sets ignore it."""

    # Held out of training, as fractions: stratified by class for images and tables (at least
    # one example of each class in each split), by whole file for a folder of three or more
    # texts, else the last stretch of each text, and by source (a hash of it) for pairs.
    validation_fraction: float = option(0.1, min=0.01, max=0.5)
    test_fraction: float = option(0.1, min=0.01, max=0.5)
    # Seeds the shuffles that draw the held-out examples; the same seed gives the same splits.
    split_seed: int = option(0, min=0, max=2**31 - 1)
    # Columns (or JSON Lines fields) of a table.
    text_column: str = option("text")
    label_column: str = option("label")
    # Names each row's split (train, validation or test) when the table has it; "" ignores it.
    split_column: str = option("split")
    # An image that cannot be decoded (truncated, not an image): stop with its name (`fail`),
    # or leave it out with a warning naming it (`skip`).
    bad_images: str = option("fail", choices=("fail", "skip"))


def parse(name: str) -> tuple[str, Path] | None:
    """`("images", Path(DIR))` for `"images:DIR"`; None for a name that is not own data."""
    kind, sep, path = name.partition(":")
    if sep and kind in KINDS and path:
        return kind, Path(path).expanduser()
    return None


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
    files = _source_files(kind, path)
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


# --- Reading files -------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    """The bytes of `path`, or a `UserError` that says why not (a dangling or looping link, a
    folder where a file should be, no permission)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            target = os.readlink(path)
            raise UserError(
                f"{path} is a symbolic link to {target}, which does not exist"
            ) from None
        raise UserError(f"{path} does not exist") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def _utf8(path: Path, data: bytes) -> str:
    """`data` decoded as UTF-8 (a byte-order mark dropped, line ends made "\\n")."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 4]
        raise UserError(f"{path} is not UTF-8 text: byte offset {e.start:,} ({bad!r})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _walk(root: Path, keep: Callable[[Path], bool]) -> list[Path]:
    """Files under `root` that `keep` accepts, sorted; linked files are read, linked folders not
    entered (so that a link can never loop)."""
    found = []
    for folder, _, names in os.walk(root, onerror=_walk_error):
        found += [Path(folder) / n for n in names if keep(Path(folder) / n)]
    return sorted(found)


def _walk_error(error: OSError) -> None:
    raise UserError(f"cannot list {error.filename}: {error.strerror or error}")


def _source_files(kind: str, path: Path) -> list[Path]:
    """The files a source is made of, checked to exist (the planners read them)."""
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{kind}:{path}: no such file or folder")
    if kind == "images":
        if not path.is_dir():
            raise UserError(f"images:{path} must be a folder of class folders")
        files = _walk(path, lambda p: p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"images:{path} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        return files
    if kind == "text" and path.is_dir():
        files = _walk(path, lambda p: p.suffix.lower() == ".txt")
        if not files:
            raise UserError(f"text:{path} holds no .txt files")
        return files
    if path.is_dir():
        raise UserError(f"{kind}:{path} is a folder; {kind} data is one file")
    return [path]


class _Progress:
    """A line on stderr every few seconds while a long pass runs; silent for small inputs."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.start = what, total, time.monotonic()
        self.last = self.start

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"{self.what}: {done:,}/{self.total:,} files", file=sys.stderr, flush=True)


# A run asks for its source many times (spec, then each split); within one process the files are
# hashed again only when one's size or modification time changed.
_DIGESTS: dict[tuple, str] = {}


def _digest(kind: str, path: Path, files: list[Path], options: DataOptions) -> str:
    """sha256 over the files' contents and relative names and the options, 16 hex digits."""
    try:
        stats = tuple((str(f), *_size_and_time(f)) for f in files)
    except OSError:
        stats = None  # _read names the file
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
    progress = _Progress(f"reading {kind}:{path}", len(files))
    for number, file in enumerate(files, 1):
        name = file.relative_to(path) if file != path else file.name
        digest.update(f"\0{name}\0".encode())
        digest.update(hashlib.sha256(_read(file)).digest())
        progress(number)
    return digest.hexdigest()[:16]


# --- Splits ---------------------------------------------------------------------------------


def stratified_splits(
    labels: Sequence[int],
    names: Sequence[str],
    options: DataOptions,
    held_out: Sequence[str] = ("validation", "test"),
    what: str = "examples",
) -> dict[str, list[int]]:
    """Indices of each split, drawn within each class: the class's items are shuffled with
    `options.split_seed`, then `test` and `validation` take their fraction of them (rounded, at
    least one each) and `train` the rest. Only the `held_out` splits are drawn; `train` is
    always returned."""
    fractions = {"test": options.test_fraction, "validation": options.validation_fraction}
    rng = np.random.default_rng(options.split_seed)
    splits: dict[str, list[int]] = {split: [] for split in ("train", *held_out)}
    for label, name in enumerate(names):
        members = rng.permutation([i for i, value in enumerate(labels) if value == label])
        counts = [max(1, round(fractions[s] * len(members))) for s in held_out]
        if len(members) - sum(counts) < 1:
            raise UserError(
                f"class {name!r} has {len(members)} {what}: too few for a training split "
                f"and {' and '.join(held_out)} (needs {sum(counts) + 1})"
            )
        start = 0
        for split, count in zip(held_out, counts, strict=True):
            splits[split] += members[start : start + count].tolist()
            start += count
        splits["train"] += members[start:].tolist()
    return {split: sorted(indices) for split, indices in splits.items()}


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


def _plan_images(root: Path, files: list[Path], options: DataOptions) -> Plan:
    from PIL import Image

    fixed = {p.name for p in root.iterdir() if p.is_dir()}
    fixed_splits = "train" in fixed and fixed <= set(SPLITS)
    items, labels, given, modes, sizes, skipped = [], [], [], [], Counter(), []
    progress = _Progress(f"checking images:{root}", len(files))
    for number, file in enumerate(files, 1):
        parts = file.relative_to(root).parts
        split, parts = (parts[0], parts[1:]) if fixed_splits else (None, parts)
        if len(parts) < 2:
            raise UserError(
                f"{file} is not in a class folder: images:DIR wants DIR/<class>/<image> "
                "(or DIR/train/<class>/<image>)"
            )
        try:
            mode, (width, height), grey_palette = _image(file)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
            if options.bad_images == "fail":
                raise UserError(
                    f"cannot decode image {file}: {e} (--set data.bad_images=skip leaves such "
                    "images out)"
                ) from None
            skipped.append(file)
            print(f"warning: skipping {file}: {e}", file=sys.stderr)
            continue
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
    splits = _split_with_given(ids, given, names, options, "images")
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


def _split_with_given(
    ids: list[int], given: list[str | None], names: list[str], options: DataOptions, what: str
) -> dict[str, list[int]]:
    """Splits as the data names them (a split folder or column), the missing held-out ones
    drawn from `train` by `stratified_splits`; all drawn when the data names none."""
    named = {split: [i for i, g in enumerate(given) if g == split] for split in SPLITS}
    pool = [i for i, g in enumerate(given) if g in (None, "train")]
    missing = [split for split in ("validation", "test") if not named[split]]
    drawn = stratified_splits([ids[i] for i in pool], names, options, missing, what)
    splits = {split: [pool[j] for j in drawn[split]] for split in drawn}
    for split in missing:
        named[split] = splits[split]
    named["train"] = splits["train"]
    return {split: sorted(indices) for split, indices in named.items()}


# --- text:PATH ------------------------------------------------------------------------------


def _plan_text(root: Path, files: list[Path], options: DataOptions) -> Plan:
    texts = {}
    for file in files:
        text = _utf8(file, _read(file))
        if not text.strip():
            raise UserError(f"{file} is empty")
        texts[str(file.relative_to(root)) if root.is_dir() else file.name] = text
    if len(texts) >= 3:
        splits = _whole_files(texts, options)
    else:
        splits = {split: [] for split in SPLITS}
        for title, text in texts.items():
            for split, part in _last_stretches(text, options).items():
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


def _whole_files(texts: dict[str, str], options: DataOptions) -> dict[str, list[tuple[str, str]]]:
    """Whole files, shuffled with the seed, to `test` then `validation` until each holds its
    fraction of the characters (at least one file each), the rest to `train`."""
    order = list(np.random.default_rng(options.split_seed).permutation(sorted(texts)))
    total = sum(map(len, texts.values()))
    splits: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    held_out = (("test", options.test_fraction), ("validation", options.validation_fraction))
    for index, (split, fraction) in enumerate(held_out):
        size, later = 0, len(held_out) - 1 - index
        # Leave a file for each split still to fill (`later` of them) and one for train.
        while len(order) > later + 1 and (not splits[split] or size < fraction * total):
            title = order.pop(0)
            splits[split].append((title, texts[title]))
            size += len(texts[title])
    splits["train"] = [(title, texts[title]) for title in sorted(order)]
    return {split: sorted(items) for split, items in splits.items()}


def _last_stretches(text: str, options: DataOptions) -> dict[str, str]:
    """`text` cut into train, validation and test, in that order; each cut moved to the next
    line start, if one is near, so that no line is split."""
    held = options.validation_fraction + options.test_fraction
    cuts = [_line_start(text, round(len(text) * f)) for f in (1 - held, 1 - options.test_fraction)]
    bounds = zip(SPLITS, (0, *cuts), (*cuts, len(text)), strict=True)
    return {split: text[start:stop] for split, start, stop in bounds}


def _line_start(text: str, at: int, reach: int = 200) -> int:
    newline = text.find("\n", at, at + reach)
    return at if newline < 0 else newline + 1


# --- csv:PATH (and .tsv, .jsonl) ------------------------------------------------------------


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(line number, row)` of a .csv, .tsv or .jsonl file; blank lines skipped."""
    suffix = path.suffix.lower()
    text = _utf8(path, _read(path))
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
    splits = _split_with_given(ids, given, names, options, "rows")
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
    for number, line in enumerate(_utf8(path, _read(path)).split("\n"), 1):
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


def pairs_split(source: str, options: DataOptions) -> str:
    """The split of a `pairs:` source, from its CRC-32 (the same whatever else the file holds,
    so adding lines never moves a source between splits)."""
    position = zlib.crc32(source.encode("utf-8")) / 2**32
    if position < options.test_fraction:
        return "test"
    if position < options.test_fraction + options.validation_fraction:
        return "validation"
    return "train"


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
