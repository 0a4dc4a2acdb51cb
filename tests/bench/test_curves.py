"""Learning curves read from a run's TensorBoard logs and drawn against wall time."""

import numpy as np
import pytest

from bigmodel_tf.bench.curves import plot_learning_curves, plot_run_curves, read_curve, read_curves
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json
from bigmodel_tf.pictures import pyplot


def test_a_runs_curve_is_its_epochs_losses_against_minutes(trained_gru_lm, tmp_path):
    curve = read_curve(trained_gru_lm)
    history = np.genfromtxt(trained_gru_lm / "history.csv", delimiter=",", names=True)
    assert len(curve.minutes) == history.size == 1
    np.testing.assert_allclose(curve.validation, np.atleast_1d(history["val_loss"]), rtol=1e-5)
    np.testing.assert_allclose(curve.train, np.atleast_1d(history["loss"]), rtol=1e-5)
    seconds = read_json(trained_gru_lm / "metrics.json")["train_seconds_this_invocation"]
    # The writer opens after the clock starts but stamps whole seconds (up to 1 s early); the
    # clock stops only after the callbacks that follow the epoch's validation (samples, backup).
    assert 0 < curve.minutes[0] < (seconds + 1) / 60
    assert curve.test == read_json(trained_gru_lm / "metrics.json")["test"]["loss"]

    path = plot_learning_curves({"GRU": curve}, tmp_path / "curves.png", ylabel="nats", target=2)
    from matplotlib import image

    pixels = image.imread(path)
    assert pixels.shape[0] > 300 and pixels[..., :3].std() > 0.05  # drawn, not blank
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no partial file left


def test_a_run_without_logs_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no epoch_loss"):
        read_curve(tmp_path)


def test_every_metric_logged_for_both_splits_has_a_curve_and_a_panel(trained_cnn):
    curves = read_curves(trained_cnn)
    assert set(curves) == {"loss", "accuracy"}  # not the learning rate, logged for training only
    test = read_json(trained_cnn / "metrics.json")["test"]
    for name, curve in curves.items():
        assert curve.epochs == [1] and curve.test == test[name]
    figure = plot_run_curves(curves)
    assert figure.axes[0].get_ylabel() == "loss" and len(figure.axes) == 4
    pyplot().close(figure)
