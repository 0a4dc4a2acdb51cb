"""StepBackup on a tiny model: the step it resumes at, both generations, torn files, and a resumed
epoch that ends where an uninterrupted one does."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigmodel_tf.training.resume import StepBackup, restore_agreed

STEPS_PER_EPOCH = 5
EPOCHS = 3


def batches(first_step: int = 0) -> tf.data.Dataset:
    """The same sequence of batches for every run, from `first_step` on."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EPOCHS * STEPS_PER_EPOCH * 4, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4).skip(first_step)


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at_step: int):
        super().__init__()
        self.at_step = at_step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.at_step:
            raise KeyboardInterrupt  # what a kill looks like to the backups: nothing more saved


def fit(model, backup, step=0, extra=()):
    return model.fit(
        batches(step),
        epochs=EPOCHS,
        initial_epoch=step // STEPS_PER_EPOCH,
        steps_per_epoch=STEPS_PER_EPOCH,
        callbacks=[backup, *extra],
        shuffle=False,
        verbose=0,
    )


def interrupted_run(backup_dir, at_step: int) -> StepBackup:
    backup = StepBackup(backup_dir, save_steps=2, steps_per_epoch=STEPS_PER_EPOCH)
    model = tiny_model()
    assert backup.restore(model) == 0
    with pytest.raises(KeyboardInterrupt):
        fit(model, backup, extra=[Interrupt(at_step)])
    return backup


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    straight = tiny_model()
    fit(straight, StepBackup(tmp_path / "straight", 2, STEPS_PER_EPOCH))
    assert not (tmp_path / "straight").exists()  # removed once training finished

    interrupted_run(tmp_path / "backup", at_step=7)  # backups at 2, 4, 5 (epoch end), 6
    metadata = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    assert metadata == {"epoch": 1, "batch": 0}  # step 6: epoch 1's first batch done

    model = tiny_model()
    backup = StepBackup(tmp_path / "backup", 2, STEPS_PER_EPOCH)
    step = restore_agreed(backup, model, tf.distribute.get_strategy())
    assert step == 6
    history = fit(model, backup, step)
    # The resumed epoch ran its 4 remaining steps and ended; then one full epoch.
    assert len(history.history["loss"]) == 2
    assert int(model.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    for resumed, uninterrupted in zip(model.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(resumed, uninterrupted)


def test_previous_generation_and_torn_files(tmp_path):
    interrupted_run(tmp_path / "a", at_step=7)
    assert StepBackup(tmp_path / "a", 2, STEPS_PER_EPOCH).restore(tiny_model(), previous=True) == 5

    interrupted_run(tmp_path / "b", at_step=7)
    (tmp_path / "b" / "training_metadata.json").write_text('{"epo')  # killed mid-write
    assert StepBackup(tmp_path / "b", 2, STEPS_PER_EPOCH).restore(tiny_model()) == 6

    (tmp_path / "b" / "latest.weights.h5").write_bytes(b"torn")  # killed mid-write
    assert StepBackup(tmp_path / "b", 2, STEPS_PER_EPOCH).restore(tiny_model()) == 5
