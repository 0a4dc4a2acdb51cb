"""The keras#20585 patches: fail loudly when Keras changes under them; prove the bug they fix."""

import os
import socket
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

from bigmodel_tf.launch import tf_config
from bigmodel_tf.training import keras_patches


def test_keras_is_still_the_code_the_patches_were_written_for():
    # If this fails, Keras changed a function bigmodel_tf patches for MultiWorkerMirroredStrategy:
    # check whether keras-team/keras#20585 is fixed (-m slow runs
    # test_unpatched_keras_still_fails_under_multiworker), then update or delete
    # bigmodel_tf/training/keras_patches.py and its FINGERPRINTS.
    assert keras_patches.changed() == [], f"Keras {keras.__version__}"


def test_apply_is_idempotent_and_refuses_unknown_keras(monkeypatch):
    # Undone after the test: other tests see Keras unpatched.
    monkeypatch.setattr(tf_trainer, "reduce_per_replica", tf_trainer.reduce_per_replica)
    monkeypatch.setattr(
        tf_trainer.TensorFlowTrainer,
        "_maybe_symbolic_build",
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build,
    )
    keras_patches.apply()
    keras_patches.apply()
    assert tf_trainer.reduce_per_replica is keras_patches._reduce_per_replica
    assert tf_trainer.TensorFlowTrainer._maybe_symbolic_build is keras_patches._maybe_symbolic_build
    # Off a multi-worker cluster, the patched reduction is the original.
    strategy = tf.distribute.get_strategy()
    logs = {"loss": tf.constant(1.5)}
    assert float(tf_trainer.reduce_per_replica(logs, strategy, "auto")["loss"]) == 1.5

    monkeypatch.setattr(
        tf_trainer, "reduce_per_replica", keras_patches.ORIGINALS["reduce_per_replica"]
    )
    monkeypatch.setitem(keras_patches.FINGERPRINTS, "reduce_per_replica", "0" * 64)
    with pytest.raises(RuntimeError, match=r"changed reduce_per_replica, .*keras#20585"):
        keras_patches.apply()


# A two-worker fit without the patches: the failure keras_patches exists for.
UNPATCHED_FIT = """
import numpy as np, keras, tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
model.fit(x, y, batch_size=4, epochs=1, verbose=0)
print("fit finished")
"""


@pytest.mark.slow
def test_unpatched_keras_still_fails_under_multiworker():
    # When this fails, Keras has fixed keras#20585: remove bigmodel_tf/training/keras_patches.py.
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", UNPATCHED_FIT],
            env={**os.environ, "TF_CONFIG": tf_config(ports, i), "TF_CPP_MIN_LOG_LEVEL": "3"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=180) for w in workers]
    finally:
        for w in workers:
            w.kill()
            w.wait()
    assert all(w.returncode != 0 for w in workers)
    assert any("PerReplica" in err or "Invalid reduction dimension" in err for _, err in outputs), (
        outputs[0][1][-2000:]
    )
