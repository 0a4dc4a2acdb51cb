"""Own data (`images:`, `text:`, `csv:`, `pairs:`): read, split, cached by content, and every
kind of bad data refused with one line naming what is wrong."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bigmodel_tf.data import DataOptions, check_name, load, own
from bigmodel_tf.errors import UserError
from tests.helpers import write_images, write_pairs, write_table, write_texts


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Prepared sources in a fresh folder: every test prepares its own."""
    root = tmp_path / "cache"
    monkeypatch.setattr(own, "_cache_root", lambda: root)
    return root


def split_sizes(name: str, options: DataOptions | None = None) -> dict[str, int]:
    found = own.prepare(name, options)
    return {split: info.num_examples for split, info in found.info.splits.items()}


def labels_of(name: str, split: str) -> list[int]:
    return [int(label) for _, label in load(name, split)[0].as_numpy_iterator()]


def test_images_split_stratified_with_names_sizes_and_channels(tmp_path):
    name = f"images:{write_images(tmp_path / 'shapes')}"
    check_name(name)
    assert split_sizes(name) == {"train": 24, "validation": 3, "test": 3}
    found = own.prepare(name)
    assert found.info.features["label"].names == ["across", "corner", "down"]
    assert found.info.features["image"].shape == (None, None, 3)  # some images have colour
    for split in ("validation", "test"):
        assert sorted(labels_of(name, split)) == [0, 1, 2]
    # 6 of each class's 10 images are 16 x 16, 4 are 12 high and 20 wide.
    assert own.source_info(name)["image_size"] == [16, 16]
    shapes = {image.shape for image, _ in load(name, "train")[0].as_numpy_iterator()}
    assert shapes == {(16, 16, 3), (12, 20, 3)}


def test_grey_images_make_one_channel(tmp_path):
    from PIL import Image

    root = tmp_path / "grey"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for n in range(5):
            Image.fromarray(np.full((8, 8), 40 * n, np.uint8)).save(root / label / f"{n}.png")
    assert own.prepare(f"images:{root}").info.features["image"].shape == (None, None, 1)


def test_images_keep_the_users_fixed_splits(tmp_path):
    source = write_images(tmp_path / "flat")
    root = tmp_path / "fixed"
    for label in ("across", "corner", "down"):
        for n, image in enumerate(sorted((source / label).iterdir())):
            split = "test" if n < 2 else "train"
            (root / split / label).mkdir(parents=True, exist_ok=True)
            image.rename(root / split / label / image.name)
    # test as given (2 per class); validation drawn from train's 8 per class (1 each).
    assert split_sizes(f"images:{root}") == {"train": 21, "validation": 3, "test": 6}


def test_preparation_is_cached_by_content(tmp_path, own_cache, monkeypatch):
    root = write_images(tmp_path / "shapes")
    first = own.prepare(f"images:{root}").data_dir
    planned, hashed, hash_files = [], [], own._hash_files
    monkeypatch.setitem(own.PLANNERS, "images", lambda *a: planned.append(a) or 1 / 0)
    monkeypatch.setattr(own, "_hash_files", lambda *a: hashed.append(a) or hash_files(*a))
    assert own.prepare(f"images:{root}").data_dir == first  # nothing re-read or re-planned
    assert not planned and not hashed
    (root / "down" / "0.png").write_bytes((root / "across" / "0.png").read_bytes())
    with pytest.raises(ZeroDivisionError):  # a changed file is hashed and planned again
        own.prepare(f"images:{root}")
    assert len(planned) == 1 and len(hashed) == 1
    # The split options are part of the key too.
    with pytest.raises(ZeroDivisionError):
        own.prepare(f"images:{root}", DataOptions(split_seed=7))


def test_a_folder_of_texts_is_held_out_by_whole_file(tmp_path):
    root = write_texts(tmp_path / "texts", files=5)
    titles = {
        split: [
            row["title"].decode()
            for row in load(f"text:{root}", split, as_supervised=False)[0].as_numpy_iterator()
        ]
        for split in own.SPLITS
    }
    assert all(titles.values())
    every = sorted(title for split in titles.values() for title in split)
    assert every == [f"part{n}.txt" for n in range(5)]


def test_one_text_is_cut_at_the_end_on_line_boundaries(tmp_path):
    path = write_texts(tmp_path / "texts", files=1, lines=200) / "part0.txt"
    text = path.read_text(encoding="utf-8")
    parts = {
        split: [
            row["text"].decode()
            for row in load(f"text:{path}", split, as_supervised=False)[0].as_numpy_iterator()
        ]
        for split in own.SPLITS
    }
    assert "".join(part for split in own.SPLITS for part in parts[split]) == text
    (train,), (validation,), (test,) = (parts[split] for split in own.SPLITS)
    # Each cut moved to the next line start: at most one line (~50 characters) of 10,000 later.
    assert abs(len(test) / len(text) - 0.1) < 0.01 and abs(len(validation) / len(text) - 0.1) < 0.01
    assert train.endswith("\n") and validation.endswith("\n")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_tables_of_any_number_of_classes(tmp_path, suffix):
    csv_path = write_table(tmp_path / "table.csv")
    path = tmp_path / f"table{suffix}"
    if suffix == ".tsv":
        path.write_text(csv_path.read_text().replace('"', "").replace(",", "\t"))
    elif suffix == ".jsonl":
        rows = [line.split(",") for line in csv_path.read_text().split("\n")[1:] if line]
        path.write_text(
            "".join(json.dumps({"text": t.strip('"'), "label": lab}) + "\n" for t, lab in rows)
        )
    name = f"csv:{path}"
    assert split_sizes(name) == {"train": 48, "validation": 6, "test": 6}
    assert own.prepare(name).info.features["label"].names == ["food", "music", "sport"]
    assert sorted(labels_of(name, "test")) == [0, 0, 1, 1, 2, 2]


def test_table_columns_and_split_column_are_options(tmp_path):
    path = tmp_path / "t.csv"
    rows = ["review,stars,part"] + [
        f"text {n},{1 + n % 2},{'test' if n < 4 else 'train'}" for n in range(20)
    ]
    path.write_text("\n".join(rows) + "\n")
    options = DataOptions(text_column="review", label_column="stars", split_column="part")
    assert split_sizes(f"csv:{path}", options) == {"train": 14, "validation": 2, "test": 4}
    assert own.prepare(f"csv:{path}", options).info.features["label"].names == ["1", "2"]


def test_pairs_split_by_source_with_the_fractions(tmp_path):
    name = f"pairs:{write_pairs(tmp_path / 'pairs.tsv', 2000)}"
    sizes = split_sizes(name, DataOptions(validation_fraction=0.2, test_fraction=0.1))
    total = sum(sizes.values())
    assert abs(sizes["validation"] / total - 0.2) < 0.04 and abs(sizes["test"] / total - 0.1) < 0.03


def image_folder_with(tmp_path, name: str, data: bytes):
    root = write_images(tmp_path / "shapes")
    (root / "down" / name).write_bytes(data)
    return root


def test_a_bad_image_fails_by_name_or_is_skipped(tmp_path, capsys):
    root = image_folder_with(tmp_path, "broken.png", b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(
        UserError, match=r"cannot decode image .*broken\.png.*data\.bad_images=skip"
    ):
        own.prepare(f"images:{root}")
    found = own.prepare(f"images:{root}", DataOptions(bad_images="skip"))
    assert sum(split.num_examples for split in found.info.splits.values()) == 30
    assert "skipping" in capsys.readouterr().err


def test_a_truncated_image_is_named(tmp_path):
    from PIL import Image

    whole = tmp_path / "whole.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(whole)
    root = image_folder_with(tmp_path, "cut.jpg", whole.read_bytes()[:300])
    with pytest.raises(UserError, match=r"cannot decode image .*cut\.jpg"):
        own.prepare(f"images:{root}")


def bad_text(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fine line\ncaf\xe9\n".encode("latin-1"))
    return f"text:{path}"


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return f"images:{tmp_path / 'empty'}"


def one_class(tmp_path):
    root = write_images(tmp_path / "shapes")
    for name in ("corner", "down"):
        for image in (root / name).iterdir():
            image.unlink()
        (root / name).rmdir()
    return f"images:{root}"


def too_few(tmp_path):
    root = write_images(tmp_path / "shapes")
    for image in sorted((root / "corner").iterdir())[2:]:
        image.unlink()
    return f"images:{root}"


def table(tmp_path, text: str, suffix: str = ".csv"):
    path = tmp_path / f"table{suffix}"
    path.write_text(text)
    return f"csv:{path}"


def dangling_link(tmp_path):
    root = write_images(tmp_path / "shapes")
    os.symlink(tmp_path / "elsewhere" / "gone.png", root / "down" / "linked.png")
    return f"images:{root}"


def link_to_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    os.symlink(tmp_path / "folder", tmp_path / "data.csv")
    return f"csv:{tmp_path / 'data.csv'}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: f"images:{p / 'missing'}", "no such file or folder"),
        (empty_folder, "holds no .png"),
        (one_class, r"one class \('across'\)"),
        (too_few, "class 'corner' has 2 images: too few"),
        (bad_text, r"latin1\.txt is not UTF-8 text: byte offset 13"),
        (lambda p: table(p, "text,stars\nhello,1\nbye,2\n"), "no 'label' column"),
        (lambda p: table(p, "text,label\nhello,a\nbye,b,extra\n"), "line 3: 3 fields where"),
        (lambda p: table(p, "text,label\nhello,a\n  ,b\n"), "line 3: empty text"),
        (lambda p: table(p, "text,label\nhello,a\nbye,a\n"), r"one class \('a'\)"),
        (
            lambda p: table(p, '{"text": "a", "label": "x"}\n[1]\n', ".jsonl"),
            "line 2: not a JSON object",
        ),
        (lambda p: table(p, "text,label\n"), "has no rows"),
        (lambda p: table(p, "a\tb\n", ".txt"), "expected a .csv, .tsv or .jsonl file"),
        (dangling_link, r"linked\.png is a symbolic link to .*gone\.png, which does not exist"),
        (link_to_folder, "is a folder"),
    ],
    ids=[
        "missing",
        "empty-folder",
        "one-class",
        "too-few",
        "not-utf8",
        "missing-column",
        "ragged",
        "empty-text",
        "one-label",
        "bad-jsonl",
        "no-rows",
        "bad-suffix",
        "dangling-link",
        "link-to-folder",
    ],
)
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, own_cache, make, message):
    name = make(tmp_path)
    with pytest.raises(UserError, match=message) as error:
        own.prepare(name)
    assert "\n" not in str(error.value)
    assert not own_cache.exists() or not any(own_cache.iterdir())
