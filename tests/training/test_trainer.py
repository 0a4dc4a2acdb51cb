import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from bigmodel_tf import training
from bigmodel_tf.errors import UserError
from bigmodel_tf.training.trainer import make_optimizer
from tests.helpers import TINY_CNN, cli_args, run_cli


def test_short_training_run_beats_a_threshold_a_broken_pipeline_would_miss(tmp_path):
    # The default network, 3 epochs, fixed seed: ~0.97 measured; a pipeline that mislabels,
    # fails to normalise or leaks augmentation into evaluation stays far below 0.93.
    config = training.make_config("cnn", overrides={"train.epochs": 3})
    metrics = training.train(config, tmp_path / "run", verbose=0)
    assert metrics["test"]["accuracy"] >= 0.93
    # model.evaluate of the saved best checkpoint reproduces the recorded test metrics.
    again = training.evaluate(tmp_path / "run", "test")
    assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.json", "logs", "checkpoints", "history.csv"}
    assert not (run / "backup").exists()  # removed once training finished
    assert json.loads((run / "metrics.json").read_text())["test"] == metrics["test"]


def test_finished_run_is_not_trained_again_and_conflicting_runs_are_refused(trained_cnn):
    config = training.load_run(trained_cnn)
    before = (trained_cnn / "checkpoints" / "best.keras").stat().st_mtime_ns
    assert (
        training.train(config, trained_cnn)["test"]
        == json.loads((trained_cnn / "metrics.json").read_text())["test"]
    )
    assert (trained_cnn / "checkpoints" / "best.keras").stat().st_mtime_ns == before
    other = training.make_config("cnn", overrides={**TINY_CNN, "train.epochs": 2})
    with pytest.raises(UserError, match=r"different config \(train.epochs: 1 → 2\)"):
        training.train(other, trained_cnn)


def test_a_run_made_before_an_option_existed_is_still_the_same_run(trained_cnn, tmp_path):
    old_run = tmp_path / "old"
    old_run.mkdir()
    saved = json.loads((trained_cnn / "config.json").read_text())
    del saved["train"]["max_steps_per_epoch"]  # as a run made before the option was added
    (old_run / "config.json").write_text(json.dumps(saved))
    (old_run / "metrics.json").write_text((trained_cnn / "metrics.json").read_text())
    assert training.train(training.load_run(trained_cnn), old_run)["test"]


def weights_of(run_dir):
    model = keras.saving.load_model(run_dir / "checkpoints" / "last.keras", safe_mode=True)
    return model.get_weights()


# Slow: the default run tests the same guarantee with SIGTERM and with a resume from a regular
# backup (tests/training/test_faults.py); this one kills a separate process outright.
@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path):
    """SIGKILL mid-epoch, re-run the same command: same weights as an uninterrupted run."""
    overrides = {
        **TINY_CNN,
        "model.augment": True,
        "model.dropout": 0.3,
        "train.epochs": 3,
        "train.backup_steps": 10,
    }
    args = ["train", "cnn", *cli_args(overrides), "--quiet"]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "bigmodel_tf", *args, "--run-dir", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    # 28 steps an epoch: backups at steps 10, 20, 28 (epoch end), 30, 40, ...; kill mid-epoch 2.
    metadata = killed / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 300
    while backed_up(metadata).get("epoch") != 1 or backed_up(metadata)["batch"] == 0:
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no mid-epoch backup after 5 minutes"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists()

    resumed = run_cli(*args, "--run-dir", killed)
    assert resumed.returncode == 0, resumed.stderr
    step = re.search(r"Resuming \S+ at epoch 2 step (\d+)/28 \(global step (\d+)\)", resumed.stderr)
    assert step, resumed.stderr
    assert int(step[2]) in (30, 40, 50) and int(step[1]) == int(step[2]) - 28 + 1
    assert "Epoch 1/3" not in resumed.stdout  # it did not start again from scratch

    config = training.make_config("cnn", overrides=overrides)
    training.train(config, tmp_path / "straight", verbose=0)
    for resumed_w, straight_w in zip(
        weights_of(killed), weights_of(tmp_path / "straight"), strict=True
    ):
        np.testing.assert_array_equal(resumed_w, straight_w)
    history = (killed / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1", "2"]


def backed_up(metadata) -> dict:
    """A backup's training_metadata.json; {} while there is none or it is being written."""
    try:
        return json.loads(metadata.read_text())
    except (OSError, ValueError):
        return {}


def test_optimizer_warms_up_then_decays_to_its_final_fraction():
    train = training.TrainConfig(
        epochs=2,
        optimizer="adamw",
        learning_rate=2e-3,
        warmup_epochs=0.5,
        final_lr_fraction=0.1,
        adam_beta_2=0.99,
    )
    optimizer = make_optimizer(train, steps_per_epoch=10)
    schedule = optimizer._learning_rate  # the schedule; `learning_rate` is its current value
    assert optimizer.beta_2 == 0.99
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(2e-3)
    assert float(schedule(20)) == pytest.approx(2e-4)
