"""The command line: subprocess smoke tests, TensorBoard over HTTP, and one-line errors."""

import json
import re
import shutil
import time
import urllib.request

import pytest

from bigmodel_tf import cli
from bigmodel_tf.data.builders import Mnist5k
from bigmodel_tf.io import write_json
from bigmodel_tf.registry import tasks
from bigmodel_tf.training import classify, generate_text
from tests.helpers import TINY_CNN, cli_args, run_cli, tensorboard


def test_cli_families_match_the_tasks():
    assert set(cli.FAMILIES) == set(tasks())


def test_train_evaluate_export_from_the_command_line(tmp_path, capsys, monkeypatch):
    # In-process (`bigmodel-tf` is `cli.main`): a subprocess per command would spend ~6 s each
    # importing TensorFlow; test_datasets_lists_splits_and_sizes runs the real executable.
    def run(*argv) -> str:
        assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    trained = run(
        "train", "cnn", "--epochs", "1", *cli_args(TINY_CNN), "--run-dir", run_dir, "--quiet"
    )
    assert f"run directory: {run_dir}" in trained
    accuracy = float(re.search(r"test: accuracy ([0-9.]+)", trained).group(1))
    assert accuracy > 0.8

    evaluated = run("evaluate", run_dir, "--split", "test")
    assert json.loads(evaluated)["accuracy"] == pytest.approx(accuracy, abs=1e-4)

    exported = run("export", run_dir, "--quantize", "int8")
    assert "exported to savedmodels/cnn/1" in exported
    assert "| tflite int8 | model_int8.tflite |" in exported  # the report is printed
    assert (tmp_path / "savedmodels/cnn/1/saved_model/saved_model.pb").is_file()

    assert "all artefacts reproduce their report" in run("verify", "savedmodels/cnn/1")


def test_datasets_lists_splits_and_sizes():
    listed = run_cli("datasets")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"mnist5k\s+train 3,500, validation 500, test 1,000", listed.stdout)
    assert re.search(
        r"rotten_tomatoes train 10,201, validation 1,275, test 1,275, unsupervised 1,083",
        listed.stdout,
    )
    for kind in ("images", "text", "csv", "pairs"):
        assert re.search(rf"^{kind}:PATH +yours: ", listed.stdout, re.MULTILINE), kind


def test_train_help_for_a_family_lists_its_keys_and_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "transformer-lm", "--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "transformer-lm config keys (--set KEY=VALUE) and their default values:" in lines
    expected = [
        ["model.hidden_dim", "192", "[>= 1, <= 8192]"],  # the family's default,
        ["train.learning_rate", "0.002", "[>= 0.0, <= 10.0]"],  # its train_defaults,
        ["train.optimizer", "adamw", "[adam|adamw|sgd]"],
        ["data.bad_images", "fail", "[fail|skip]"],  # and the own-data options
    ]
    for row in expected:
        assert any(line.split(maxsplit=2) == row for line in lines), row


def test_tensorboard_serves_the_runs_scalars(trained_cnn):
    with tensorboard(trained_cnn) as url:
        deadline = time.monotonic() + 60
        while True:  # TensorBoard loads event files in the background
            with urllib.request.urlopen(url + "data/plugin/scalars/tags", timeout=10) as response:
                tags = json.load(response)
            if {"train", "validation"} <= set(tags) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert "epoch_accuracy" in tags["validation"] and "epoch_loss" in tags["train"]


def one_error_line(capsys, argv) -> str:
    """Runs the CLI in-process; asserts exit code 2 and exactly one line on stderr."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "rnn"], "invalid choice: 'rnn'"),
        (["train", "cnn", "--dataset", "mnist6k", "--epochs", "1"], "unknown dataset 'mnist6k'"),
        (["train", "cnn", "--set", "train.epochs"], "expected key=value"),
        (["train", "cnn", "--set", "train.epoch=2"], "unknown config key 'train.epoch'"),
        (["train", "cnn", "--epochs", "0"], "train.epochs=0: must be >= 1"),
        (["train", "cnn", "--epochs", "-3"], "train.epochs=-3: must be >= 1"),
        (["evaluate", "/nonexistent/run"], "is not a run directory"),
        (["export", "/nonexistent/run", "--quantize", "int4"], "unknown quantization int4"),
        (["export", "/nonexistent/run", "--calibration-batches", "0"], "must be >= 1, got 0"),
        (["export", "/nonexistent/run"], "is not a run directory"),
        (["verify", "/nonexistent/export"], "is not an export"),
        (["generate", "/nonexistent/run"], "is not a run directory"),
        (["generate", "/nonexistent/run", "--top-k", "40", "--top-p", "0.9"], "not allowed with"),
        (["generate", "{trained_cnn}"], "is a 'cnn' run; text comes from a language model"),
        (["generate", "{trained_gru_lm}", "--length", "0"], "length=0: must be between 1 and"),
        (["generate", "{trained_gru_lm}", "--length", "1000000"], "length=1000000: must be"),
        (["generate", "{trained_gru_lm}", "--temperature", "0"], "temperature=0.0: must be > 0"),
        (["generate", "{trained_gru_lm}", "--top-k", "0"], "top_k=0: must be between 1 and"),
        (["generate", "{trained_gru_lm}", "--top-p", "1.5"], "top_p=1.5: must be in (0, 1]"),
        (["generate", "{trained_gru_lm}", "--seed", "-1"], "seed=-1: must be between 0"),
        (["classify", "/nonexistent/run", "x"], "is not a run directory"),
        (["classify", "{trained_cnn}", "x"], "is a 'cnn' run; classify takes a 'transformer'"),
        (["classify", "{trained_transformer}", "fine", ""], "text 2 is empty"),
        (["classify", "{trained_transformer}", "fine", " \t\n"], "text 2 is empty"),
        (["classify", "{trained_transformer}", "caf\udce9"], "text 1 is not valid UTF-8"),
        (["transduce", "{trained_seq2seq}", "h3llo"], "'h3llo': '3' not in the model's"),
        (["transduce", "{trained_seq2seq}", "don't!"], "'!' not in the model's characters"),
        (["transduce", "{trained_seq2seq}", "привет"], "not in the model's characters"),
        (["transduce", "{trained_seq2seq}", "a" * 200], "has 200 characters; the model takes"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_code_2(capsys, request, argv, message):
    # "{fixture}" stands for a trained run's directory; only the cases that name one train it.
    argv = [str(request.getfixturevalue(arg[1:-1])) if arg.startswith("{") else arg for arg in argv]
    assert message in one_error_line(capsys, argv)


def test_generate_prints_the_prompt_and_its_continuation(trained_gru_lm):
    args = ["--prompt", "ROMEO: ☃", "--length", "60", "--temperature", "0.9", "--seed", "7"]
    result = run_cli("generate", trained_gru_lm, *args, "--top-p", "0.9")
    assert result.returncode == 0, result.stderr
    (warning,) = result.stderr.strip().splitlines()
    assert "'☃' are not in the vocabulary" in warning
    text = generate_text(trained_gru_lm, "ROMEO: ☃", 60, 0.9, top_p=0.9, seed=7)
    assert result.stdout == "ROMEO: ☃" + text + "\n"  # the same text in another process


def test_classify_prints_label_probability_and_text_per_line(trained_transformer):
    texts = ["A triumph: moving, funny and wise.", "Dull, lifeless and far too long."]
    result = run_cli("classify", trained_transformer, *texts)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    expected = classify(trained_transformer, texts)
    assert [(label, text) for label, _, text in lines] == [
        (r["label"], r["text"]) for r in expected
    ]
    for (_, probability, _), row in zip(lines, expected, strict=True):
        assert float(probability) == pytest.approx(row["probability"], abs=1e-4)


def test_existing_export_target_is_not_overwritten(capsys, trained_cnn, tmp_path):
    target = tmp_path / "v1"
    target.mkdir()
    (target / "keep").write_text("x")
    line = one_error_line(capsys, ["export", str(trained_cnn), "--out", str(target)])
    assert "already exists; pass --force" in line
    assert [p.name for p in target.iterdir()] == ["keep"]


def test_run_dir_holding_another_model_is_refused(capsys, tmp_path):
    write_json(tmp_path / "config.json", {"family": "gru_lm", "dataset": "shakespeare"})
    line = one_error_line(capsys, ["train", "cnn", "--epochs", "1", "--run-dir", str(tmp_path)])
    assert "holds a 'gru_lm' run, not 'cnn'" in line
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_corrupted_cached_archive_is_reported_in_one_line(tmp_path):
    from bigmodel_tf.data.archives import fetch

    cache = tmp_path / "cache"
    (cache / "archives").mkdir(parents=True)
    cached = cache / "archives" / Mnist5k.ARCHIVE.filename
    shutil.copy(fetch(Mnist5k.ARCHIVE), cached)
    with open(cached, "r+b") as f:
        f.write(b"not a zip")
    result = run_cli(
        "train", "cnn", "--epochs", "1", "--run-dir", tmp_path / "run",
        env={"BIGMODEL_TF_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sha256" in lines[0] and "deleted" in lines[0], result.stderr
    assert not cached.exists()
