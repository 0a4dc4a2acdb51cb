"""How your own data is split: the options that shape the splits (`DataOptions`, which also
say which columns of a table to read and what to do with an image that cannot be decoded) and
the rules per kind, every draw seeded so that the same data and options give the same splits."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bigmodel_tf.config import option
from bigmodel_tf.errors import UserError

SPLITS = ("train", "validation", "test")


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


def split_with_given(
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


def whole_files(texts: dict[str, str], options: DataOptions) -> dict[str, list[tuple[str, str]]]:
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


def last_stretches(text: str, options: DataOptions) -> dict[str, str]:
    """`text` cut into train, validation and test, in that order; each cut moved to the next
    line start, if one is near, so that no line is split."""
    held = options.validation_fraction + options.test_fraction
    cuts = [_line_start(text, round(len(text) * f)) for f in (1 - held, 1 - options.test_fraction)]
    bounds = zip(SPLITS, (0, *cuts), (*cuts, len(text)), strict=True)
    return {split: text[start:stop] for split, start, stop in bounds}


def _line_start(text: str, at: int, reach: int = 200) -> int:
    newline = text.find("\n", at, at + reach)
    return at if newline < 0 else newline + 1


def pairs_split(source: str, options: DataOptions) -> str:
    """The split of a `pairs:` source, from its CRC-32 (the same whatever else the file holds,
    so adding lines never moves a source between splits)."""
    position = zlib.crc32(source.encode("utf-8")) / 2**32
    if position < options.test_fraction:
        return "test"
    if position < options.test_fraction + options.validation_fraction:
        return "validation"
    return "train"
