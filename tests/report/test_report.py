"""A run's report: the page, the command, exports, failures that cost one warning line, and the
run's config and test metrics in TensorBoard's HParams tab."""

import shutil

import numpy as np
import pytest

from bigmodel_tf import cli, registry
from bigmodel_tf.io import read_json, write_json
from bigmodel_tf.pictures import png_bytes, pyplot
from bigmodel_tf.report import (
    Image,
    Section,
    Table,
    Text,
    report_after_export,
    report_after_training,
)
from bigmodel_tf.report.html import render
from bigmodel_tf.training.runs import make_config
from tests.helpers import assert_drawn, read_report, summaries


def _copy(run_dir, tmp_path):
    """A writable copy of a shared (read-only) run."""
    return shutil.copytree(run_dir, tmp_path / "run")


def test_the_page_escapes_text_and_embeds_its_images(tmp_path):
    figure, axes = pyplot().subplots()
    axes.plot([0, 1, 2], [2, 0, 1])
    sections = [
        Section("Samples <1>", [Text("a & b", "</pre><script>alert(1)</script>")], note="x < y"),
        Section("Numbers", [Table("t", ["name", "value"], [["pi", np.pi], ["n", 3]])]),
        Section("Picture", [Image("line", png_bytes(figure), "a line")]),
    ]
    (tmp_path / "report.html").write_text(render("Title & co", "sub", sections))
    page = read_report(tmp_path)
    assert page.sections == ["Samples <1>", "Numbers", "Picture"]
    assert page.headings == ["a & b"]
    assert "<script>" not in page.text and "&lt;/pre&gt;&lt;script&gt;" in page.text
    assert '<td class="number">3.142</td>' in page.text
    assert_drawn(page.images["line"], "line")


def _write_export(path, run_dir):
    """An export's report.json (as `export` writes it) of three variants, made from `run_dir`."""
    rows = [
        {"variant": name, "file": file, "bytes": size, "accuracy": accuracy,
         "top1_agreement": 1.0, "max_abs_diff": 0.0, "latency_ms": {"1": ms, "32": 8 * ms}}
        for name, file, size, accuracy, ms in [
            ("keras", "checkpoints/best.keras", 420_000, 0.91, 2.0),
            ("tflite float32", "model_float32.tflite", 400_000, 0.91, 0.3),
            ("tflite int8", "model_int8.tflite", 110_000, 0.90, 0.1),
        ]
    ]  # fmt: skip
    report = {"metric": "accuracy", "rows": rows, "test_examples": 1000, "machine": "2 CPUs"}
    write_json(path / "report.json", {**report, "run_dir": str(run_dir)})


def test_report_command_shows_the_runs_exports(trained_cnn, tmp_path, monkeypatch, capsys):
    run_dir = _copy(trained_cnn, tmp_path)
    monkeypatch.chdir(tmp_path)
    _write_export(tmp_path / "savedmodels/cnn/1", "run")
    _write_export(tmp_path / "savedmodels/cnn/2", "another")

    assert cli.main(["report", "run"]) == 0
    assert capsys.readouterr().out == "report: run/report.html\n"
    page = read_report(run_dir)
    assert "Export savedmodels/cnn/1" in page.sections
    assert "Export savedmodels/cnn/2" not in page.sections  # another run's
    assert "<td>tflite int8</td><td>model_int8.tflite</td>" in page.text
    for name in ("learning_curves", "confusion_matrix", "most_confidently_wrong", "export"):
        assert_drawn(page.images[name], name)
    assert [p.name for p in run_dir.glob(".report.html*")] == []  # no temporary file left

    # A folder that is not an export: one line, exit code 2.
    assert cli.main(["report", "run", "--export", "savedmodels/cnn"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bigmodel-tf report: error: savedmodels/cnn is not an export (no report.json)"
    ]


@pytest.mark.parametrize("hook", ["training", "export"])
def test_a_report_that_fails_is_one_warning_line_and_no_error(hook, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIGMODEL_TF_REPORT", "1")
    config, task = make_config("cnn"), registry.task_for("cnn")

    def fail(*args):
        raise RuntimeError("the pictures failed\nwith a second line")

    monkeypatch.setattr(type(task), "report_sections", fail)
    run_dir = tmp_path / "run"
    if hook == "training":
        assert report_after_training(run_dir, config, task, None, None) is None
    else:
        _write_export(tmp_path / "export", run_dir)
        assert report_after_export(run_dir, tmp_path / "export", config, task, None, None) is None
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"warning: {run_dir}/report.html not written: RuntimeError: the pictures failed"
    )
    assert not run_dir.exists()


def test_no_report_when_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("BIGMODEL_TF_REPORT", "0")
    task = registry.task_for("cnn")
    monkeypatch.setattr(type(task), "report_sections", None)  # fails if called
    run_dir = tmp_path / "run"
    assert report_after_training(run_dir, make_config("cnn"), task, None, None) is None
    assert not run_dir.exists()


def test_tensorboard_has_the_config_and_test_metrics_as_hparams(trained_cnn):
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = summaries(trained_cnn / "logs")
    plugin, content = found["_hparams_/session_start_info"]
    assert plugin == "hparams"
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {name: value.WhichOneof("kind") for name, value in start.hparams.items()}
    assert start.hparams["train.epochs"].number_value == 1
    assert start.hparams["model.filters"].string_value == "16, 32"
    assert start.hparams["family"].string_value == "cnn"
    assert hparams["model.augment"] == "bool_value"
    test = read_json(trained_cnn / "metrics.json")["test"]
    assert found["test/accuracy"] == ("scalars", pytest.approx(test["accuracy"]))
