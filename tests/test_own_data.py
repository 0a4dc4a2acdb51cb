"""Each kind of own data end to end: `--dataset KIND:PATH` trains, evaluates and exports, with
its class names in the export; bad data exits 2 with one line and leaves no run directory."""

from __future__ import annotations

import pytest

from bigmodel_tf import cli
from bigmodel_tf.data import own
from bigmodel_tf.export import export
from bigmodel_tf.io import read_json
from bigmodel_tf.training import evaluate, make_config, train
from tests.helpers import (
    TINY_CNN,
    TINY_GRU_LM,
    TINY_SEQ2SEQ,
    TINY_TRANSFORMER,
    write_images,
    write_pairs,
    write_table,
    write_texts,
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(own, "_cache_root", lambda: tmp_path / "cache")


SMALL = {"train.epochs": 1, "train.batch_size": 8}
CASES = {
    "images": ("cnn", lambda p: write_images(p / "shapes"), {**TINY_CNN, "model.image_size": 12}),
    "text": (
        "gru-lm",
        lambda p: write_texts(p / "texts"),
        {**TINY_GRU_LM, "model.sequence_length": 32},
    ),
    "csv": (
        "transformer",
        lambda p: write_table(p / "topics.csv"),
        {**TINY_TRANSFORMER, "model.vocabulary_size": 300, "model.sequence_length": 16},
    ),
    "pairs": ("seq2seq", lambda p: write_pairs(p / "spelling.tsv", 200), TINY_SEQ2SEQ),
}
CLASSES = {"images": ["across", "corner", "down"], "csv": ["food", "music", "sport"]}


@pytest.mark.parametrize("kind", CASES)
def test_train_evaluate_and_export(tmp_path, kind):
    family, write, overrides = CASES[kind]
    dataset = f"{kind}:{write(tmp_path)}"
    config = make_config(family, dataset=dataset, overrides={**overrides, **SMALL})
    metrics = train(config, tmp_path / "run", verbose=0)
    again = evaluate(tmp_path / "run")
    assert again["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-4)

    out = export(
        tmp_path / "run", tmp_path / "export", quantize=("none",), test_batches=1, rounds=1
    )
    metadata = read_json(out / "metadata.json")
    assert metadata["config"]["dataset"] == dataset
    if kind in CLASSES:
        assert metadata["labels"] == CLASSES[kind]
    if kind == "csv":  # and `classify` names them
        from bigmodel_tf.training import classify

        (result,) = classify(tmp_path / "run", ["goal team win score"])
        assert set(result["probabilities"]) == set(CLASSES["csv"])
        assert result["label"] in CLASSES["csv"]
    if kind == "images":  # resized to the model's input, grey and colour alike to RGB
        assert metadata["inputs"]["images"]["shape"] == [None, 12, 12, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cnn", "--dataset", "images:{tmp}/missing"], "no such file or folder"),
        # Read and split, vocabulary written, then too little validation text for one batch
        # (~19 windows of 101 characters in each file, 2 files to train on): what was written
        # goes with the run directory.
        (
            ["gru-lm", "--dataset", "text:{texts}", "--set", "train.batch_size=30"],
            "the validation split of text:",
        ),
    ],
)
def test_bad_data_exits_2_with_one_line_and_no_run_directory(tmp_path, capsys, args, message):
    texts = write_texts(tmp_path / "texts")
    run_dir = tmp_path / "run"
    argv = [a.format(tmp=tmp_path, texts=texts) for a in args]
    assert cli.main(["train", *argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    *_, line = err.strip().splitlines()  # after what was prepared, if anything
    assert line.startswith("bigmodel-tf train: error: ") and message in line
    assert "Traceback" not in err
    assert not run_dir.exists()
