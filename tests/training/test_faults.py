"""Faults around a run: damaged files, preemption, two writers, a non-finite loss, a full disk,
unwritable places. Each is one line (exit 2, or 128 + the signal) and loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf import cli
from bigmodel_tf.data import own
from bigmodel_tf.errors import Interrupted, UserError
from bigmodel_tf.families.cnn.task import CnnTask
from bigmodel_tf.io import write_json
from bigmodel_tf.training import evaluate, make_config, train
from bigmodel_tf.training.faults import RunLock
from tests.helpers import TINY_CNN, write_texts

# 3 epochs of 12 steps, a backup every 4 steps, random augmentation and dropout (which a resumed
# run must draw as an uninterrupted one does): a few seconds a run.
SHORT_CNN = {
    **TINY_CNN,
    "model.augment": True,
    "train.epochs": 3,
    "train.max_steps_per_epoch": 12,
    "train.batch_size": 32,
    "train.backup_steps": 4,
}


def cli_error(capsys, argv: list[str], code: int = 2) -> str:
    """Runs the CLI in-process; asserts the exit code and returns stderr's last line, which must
    follow no traceback."""
    assert cli.main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


@pytest.fixture
def run_copy(trained_cnn, tmp_path):
    """A copy of the shared tiny CNN run, free to damage."""
    return shutil.copytree(trained_cnn, tmp_path / "run")


# --- Damaged files ----------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "not-a-zip"])
def test_a_damaged_best_checkpoint_is_named_with_what_to_do(capsys, run_copy, damage):
    best = run_copy / "checkpoints" / "best.keras"
    data = best.read_bytes()
    best.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"rubbish" * 100)
    line = cli_error(capsys, ["evaluate", run_copy])
    assert f"{best} is damaged" in line and "--overwrite" in line


@pytest.mark.parametrize("name", ["config.json", "metrics.json"])
def test_damaged_json_in_a_run_is_named(capsys, run_copy, name):
    (run_copy / name).write_text('{"family": "cnn", ')
    if name == "metrics.json":  # train reads it back for a finished run
        argv = ["train", "cnn", "--run-dir", run_copy, "--epochs", "1", *flags(TINY_CNN)]
        line = cli_error(capsys, argv)
    else:
        line = cli_error(capsys, ["evaluate", run_copy])
    assert f"{run_copy / name} is damaged (not valid JSON" in line


def flags(overrides: dict) -> list[str]:
    """`--set KEY=VALUE` for each override."""
    text = {
        k: ",".join(map(str, v)) if isinstance(v, tuple) else str(v) for k, v in overrides.items()
    }
    return [a for k, v in text.items() for a in ("--set", f"{k}={v}")]


def test_a_damaged_prepared_dataset_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(own, "_cache_root", lambda: tmp_path / "cache")
    texts = write_texts(tmp_path / "texts")
    dataset = f"text:{texts}"
    found = own.prepare(dataset)
    (record,) = [p for p in os.scandir(found.data_dir) if "train.tfrecord" in p.name]
    with open(record.path, "r+b") as f:
        f.truncate(os.path.getsize(record.path) // 2)
    argv = ["train", "gru-lm", "--dataset", dataset, "--run-dir", tmp_path / "run"]
    line = cli_error(capsys, [*argv, "--set", "model.sequence_length=16", "--batch-size", "4"])
    assert "prepared dataset" in line and "is damaged" in line and "delete" in line


# --- Preemption, exact resume -----------------------------------------------------------------


def signal_at(step: int, signum: int):
    """A `CnnTask.callbacks` replacement that sends this process `signum` after `step` steps,
    as a scheduler's SIGTERM (or a Ctrl-C) would arrive."""

    class Sender(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == step:
                os.kill(os.getpid(), signum)

    return lambda self, config, spec, run_dir: [Sender()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The `SHORT_CNN` run, trained without interruption: what every resumed run must equal."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    return run_dir, train(make_config("cnn", overrides=SHORT_CNN), run_dir, verbose=0)


def assert_same_run(run_dir, metrics, uninterrupted) -> None:
    reference_dir, reference = uninterrupted
    np.testing.assert_allclose(metrics["test"]["loss"], reference["test"]["loss"], rtol=1e-6)
    ours, theirs = (
        keras.saving.load_model(d / "checkpoints" / "best.keras").get_weights()
        for d in (run_dir, reference_dir)
    )
    for mine, reference_weights in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference_weights, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_backs_up_the_step_and_the_same_command_resumes_exactly(
    capsys, tmp_path, monkeypatch, uninterrupted, signum, code
):
    with monkeypatch.context() as patched:
        patched.setattr(CnnTask, "callbacks", signal_at(18, signum))
        argv = ["train", "cnn", "--run-dir", tmp_path / "run", "--quiet"]
        line = cli_error(capsys, [*argv, *flags(SHORT_CNN)], code=code)
    expected = f"at step 18: backup written to {tmp_path / 'run'}; resume with the same command"
    assert line.endswith(expected), line
    assert signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL)
    assert (tmp_path / "run" / "backup").is_dir()
    if signum == signal.SIGTERM:  # the same backup either way: resume once
        resumed = train(make_config("cnn", overrides=SHORT_CNN), tmp_path / "run", verbose=0)
        assert resumed["steps_trained_this_invocation"] == 36 - 18
        assert_same_run(tmp_path / "run", resumed, uninterrupted)


# --- One writer per run directory -------------------------------------------------------------


def test_a_run_directory_in_use_is_refused_with_the_other_process(tmp_path):
    config = make_config("cnn", overrides=SHORT_CNN)
    with RunLock(tmp_path / "run"), pytest.raises(UserError, match=f"process {os.getpid()} on"):
        train(config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import os
            from bigmodel_tf.training.faults import RunLock
            RunLock({str(tmp_path / "run")!r}).acquire()
            os._exit(9)  # killed: no release, the lock file stays
        """),
        ],
        capture_output=True,
        text=True,
    )
    assert holder.returncode == 9, holder.stderr
    assert (tmp_path / ".run.lock").read_text().startswith("process ")
    with RunLock(tmp_path / "run"):
        assert "taking over the lock of process" in capsys.readouterr().err
    assert not (tmp_path / ".run.lock").exists()


# --- A non-finite loss ------------------------------------------------------------------------


def test_a_non_finite_loss_stops_at_its_step_and_keeps_the_finite_backup(tmp_path, monkeypatch):
    batcher = CnnTask.batcher

    def poisoned(self, config, spec, batch_size):
        batches = batcher(self, config, spec, batch_size)

        def poison(n, batch):
            images, labels = batch
            # From the 7th batch on, NaN sample weights make the loss NaN (NaN pixels would not:
            # the ReLUs turn them into zeros).
            weight = tf.where(n >= 6, np.float32(np.nan), np.float32(1))
            return images, labels, tf.fill(tf.shape(labels), weight)

        return lambda examples: batches(examples).enumerate().map(poison)

    monkeypatch.setattr(CnnTask, "batcher", poisoned)
    config = make_config("cnn", overrides=SHORT_CNN)
    with pytest.raises(UserError, match=r"training loss became nan at step 7; the last backup"):
        train(config, tmp_path / "run", verbose=0)
    values = []

    def collect(name, item):  # visititems stops at the first callback that returns a value
        if isinstance(item, h5py.Dataset):
            values.append(item[()])

    with h5py.File(tmp_path / "run" / "backup" / "latest.weights.h5") as weights:
        weights.visititems(collect)
    floats = [v for v in values if np.asarray(v).dtype.kind == "f"]
    assert len(floats) > 4 and all(np.isfinite(v).all() for v in floats)


# --- A full disk ------------------------------------------------------------------------------


def run_with_file_size_limit(limit: int, *argv: str) -> subprocess.CompletedProcess:
    """`bigmodel-tf ARGV` in a subprocess that may write no file beyond `limit` bytes (a full
    disk, as the process sees it: writes fail with EFBIG)."""
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from bigmodel_tf import cli
        sys.exit(cli.main({list(map(str, argv))!r}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", code]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_a_full_disk_during_a_checkpoint_leaves_no_partial_file(tmp_path):
    run_dir = tmp_path / "run"
    # The tiny CNN's weights are ~0.2 MB and its backup (with Adam's moments) ~0.7 MB.
    argv = ["train", "cnn", "--run-dir", run_dir, "--quiet", *flags(SHORT_CNN)]
    done = run_with_file_size_limit(100_000, *argv)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot write" in last and "File too large" in last and "Traceback" not in done.stderr
    leftovers = [p.name for p in run_dir.rglob("*") if ".tmp" in p.name]
    assert not leftovers
    assert not (run_dir / "checkpoints" / "best.keras").exists()


def test_a_full_disk_during_export_leaves_no_version(trained_cnn, tmp_path):
    out = tmp_path / "export"
    argv = ["export", trained_cnn, "--out", out, "--quantize", "none"]
    done = run_with_file_size_limit(50_000, *argv)
    assert done.returncode == 2, done.stderr
    assert "cannot write" in done.stderr.strip().splitlines()[-1]
    assert not out.exists() and not list(tmp_path.glob(".export*"))


# --- Unwritable and unreadable places ---------------------------------------------------------


def test_a_run_directory_under_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    argv = ["train", "cnn", "--run-dir", tmp_path / "file" / "run", *flags(TINY_CNN)]
    argv += ["--epochs", "1"]
    line = cli_error(capsys, argv)
    assert str(tmp_path / "file") in line and ("Not a directory" in line or "File exists" in line)


def test_an_export_under_a_file_is_one_line(capsys, trained_cnn, tmp_path):
    (tmp_path / "file").write_text("")
    argv = ["export", trained_cnn, "--out", tmp_path / "file" / "v1", "--quantize", "none"]
    line = cli_error(capsys, argv)
    assert str(tmp_path / "file") in line and ("Not a directory" in line or "File exists" in line)


def test_a_file_given_as_a_run_directory_is_one_line(capsys, tmp_path):
    write_json(tmp_path / "config.json", {})
    assert "is not a run directory" in cli_error(capsys, ["evaluate", tmp_path / "config.json"])


def test_evaluate_of_a_run_without_checkpoint_says_train_it(capsys, run_copy):
    (run_copy / "checkpoints" / "best.keras").unlink()
    assert "train it first" in cli_error(capsys, ["evaluate", run_copy])


def test_evaluate_still_works_on_the_copy(run_copy, trained_cnn):
    assert evaluate(run_copy)["loss"] == pytest.approx(evaluate(trained_cnn)["loss"])


def preempted(run_dir, monkeypatch, step: int) -> Path:
    """`run_dir`, a `SHORT_CNN` run stopped by SIGTERM after `step` steps; returns its backup."""
    with monkeypatch.context() as patched:
        patched.setattr(CnnTask, "callbacks", signal_at(step, signal.SIGTERM))
        with pytest.raises(Interrupted):
            train(make_config("cnn", overrides=SHORT_CNN), run_dir, verbose=0)
    return run_dir / "backup"


def test_one_damaged_backup_generation_resumes_from_the_other(tmp_path, monkeypatch, uninterrupted):
    config = make_config("cnn", overrides=SHORT_CNN)
    latest = preempted(tmp_path / "run", monkeypatch, 18) / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:1000])
    # From the regular backup at step 16, as a run killed outright (SIGKILL) resumes.
    resumed = train(config, tmp_path / "run", verbose=0)
    assert resumed["steps_trained_this_invocation"] == 36 - 16
    assert_same_run(tmp_path / "run", resumed, uninterrupted)


def test_both_damaged_backup_generations_are_named(capsys, tmp_path, monkeypatch):
    config = make_config("cnn", overrides=SHORT_CNN)
    generations = sorted(preempted(tmp_path / "run", monkeypatch, 6).glob("*.h5*"))
    assert len(generations) == 2, generations
    for path in generations:
        path.write_bytes(b"\x89HDF\r\n\x1a\n broken")
    backups = sorted(p.name for p in (tmp_path / "run" / "backup").iterdir())
    with pytest.raises(UserError, match=r"the backup in .*backup is damaged .*--overwrite"):
        train(config, tmp_path / "run", verbose=0)
    assert backups  # nothing deleted for the user
    assert sorted(p.name for p in (tmp_path / "run" / "backup").iterdir()) == backups


def test_ctrl_c_outside_training_is_one_line_and_exit_130(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(CnnTask, "prepare", interrupted)
    argv = ["train", "cnn", "--run-dir", tmp_path / "run", *flags(TINY_CNN)]
    assert cli_error(capsys, argv, code=130) == "bigmodel-tf train: interrupted"


# --- Serving inputs ---------------------------------------------------------------------------


def test_a_100k_character_text_is_classified_with_a_warning(trained_transformer, capsys):
    from bigmodel_tf.training import classify

    (result,) = classify(trained_transformer, ["a witty, moving film. " * 4600])
    assert result["label"] in ("rotten", "fresh")
    assert "the model reads the first" in capsys.readouterr().err


def test_generation_from_an_empty_prompt_starts_a_line(trained_gru_lm):
    from bigmodel_tf.training import generate_text

    assert len(generate_text(trained_gru_lm, "", 20, seed=1)) == 20


def test_a_savedmodel_given_the_wrong_dtype_names_the_expected_spec(trained_cnn, tmp_path):
    from bigmodel_tf.export import write_saved_model
    from bigmodel_tf.registry import serving_for
    from bigmodel_tf.training.runs import load_trained

    _, _, spec, model = load_trained(trained_cnn)
    write_saved_model(model, serving_for("cnn").serving_endpoints(model, spec), tmp_path / "sm")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serve"]
    assert serve(images=tf.zeros((2, *spec.input_shape), tf.uint8))["probabilities"].shape == (
        2,
        10,
    )
    # Signature functions check their inputs: TensorFlow's error names what was expected.
    wrong = (TypeError, ValueError, tf.errors.InvalidArgumentError)
    with pytest.raises(wrong, match="expected to be a uint8 tensor but is a float tensor"):
        serve(images=tf.zeros((2, *spec.input_shape), tf.float32))
    with pytest.raises(wrong):
        serve(images=tf.zeros((2, 5, 5, 1), tf.uint8))
