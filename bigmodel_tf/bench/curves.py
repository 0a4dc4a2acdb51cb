"""Learning curves against wall time, read from training runs' TensorBoard logs and drawn with
matplotlib.

    >>> curve = read_curve(Path("runs/gru-lm/shakespeare-default-0123abcd"))
    >>> curve.minutes[-1], curve.validation[-1]  # when the last epoch ended, and its loss
    >>> plot_learning_curves({"GRU": curve}, Path("curves.png"), ylabel="nats/char")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json
from bigmodel_tf.pictures import pyplot, save_png


@dataclass
class Curve:
    """A run's per-epoch losses and when each epoch ended.

    Args:
        minutes: list of float. Wall time from the start of training to each epoch's end; a
            resumed run's includes the time it was stopped.
        train: list of float. Each epoch's mean training value.
        validation: list of float. The validation value after each epoch.
        test: float. The test value of the best checkpoint, or None if the run has none.
    """

    minutes: list[float]
    train: list[float]
    validation: list[float]
    test: float | None = None


def read_curve(run_dir: Path, metric: str = "loss") -> Curve:
    """The per-epoch `metric` of a training run, from its `logs/train` and `logs/validation`
    TensorBoard events, and the test value from its `metrics.json`."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    run_dir = Path(run_dir)
    start = None
    values: dict[str, dict[int, tuple[float, float]]] = {"train": {}, "validation": {}}
    for split, by_epoch in values.items():
        for path in sorted((run_dir / "logs" / split).glob("events.out.tfevents.*")):
            for event in EventFileLoader(str(path)).Load():
                if split == "train" and event.WhichOneof("what") == "file_version":
                    # The writer opens as training starts: the curve's origin.
                    start = event.wall_time if start is None else min(start, event.wall_time)
                for value in event.summary.value:
                    if value.tag == f"epoch_{metric}":
                        number = float(tensor_util.make_ndarray(value.tensor))
                        by_epoch[event.step] = (event.wall_time, number)  # a redone epoch wins
    epochs = sorted(set(values["train"]) & set(values["validation"]))
    if start is None or not epochs:
        raise UserError(f"{run_dir} has no epoch_{metric} in logs/train and logs/validation")
    metrics_file = run_dir / "metrics.json"
    test = read_json(metrics_file)["test"].get(metric) if metrics_file.is_file() else None
    return Curve(
        minutes=[(values["validation"][e][0] - start) / 60 for e in epochs],
        train=[values["train"][e][1] for e in epochs],
        validation=[values["validation"][e][1] for e in epochs],
        test=test,
    )


def plot_learning_curves(
    curves: dict[str, Curve],
    path: Path,
    *,
    ylabel: str,
    title: str = "",
    target: float | None = None,
) -> Path:
    """Draws each labelled curve's validation (solid, one dot per epoch) and training (dashed)
    values against minutes of training, its test value as a star at its last epoch, and
    `target` as a horizontal line; writes a PNG at `path` atomically and returns `path`."""
    figure, axes = pyplot().subplots(figsize=(7, 4.2), dpi=110)
    for index, (label, curve) in enumerate(curves.items()):
        color = f"C{index}"
        test = f", test {curve.test:.3f}" if curve.test is not None else ""
        axes.plot(curve.minutes, curve.validation, "o-", color=color, label=f"{label}{test}")
        axes.plot(curve.minutes, curve.train, "--", color=color, alpha=0.5)
        if curve.test is not None:
            axes.plot(curve.minutes[-1], curve.test, "*", color=color, markersize=12)
    if target is not None:
        axes.axhline(target, color="grey", linewidth=0.8, linestyle=":")
        axes.annotate(f"target {target}", (0, target), xytext=(2, 3), textcoords="offset points")
    axes.set_xlabel("minutes of training (wall time)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(title="validation (solid), training (dashed), test (star)", fontsize=9)
    figure.tight_layout()
    return save_png(figure, path)
