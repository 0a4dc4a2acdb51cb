"""Learning curves against wall time, read from training runs' TensorBoard logs and drawn with
matplotlib.

    >>> curve = read_curve(Path("runs/gru-lm/shakespeare-default-0123abcd"))
    >>> curve.minutes[-1], curve.validation[-1]  # when the last epoch ended, and its loss
    >>> plot_learning_curves({"GRU": curve}, Path("curves.png"), ylabel="nats/char")
    >>> plot_run_curves(read_curves(run_dir))  # one run: every metric by epoch and by minute
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json
from bigmodel_tf.pictures import pyplot, save_png

VALIDATION_STYLE, TRAIN_STYLE = "o-", "--"


@dataclass
class Curve:
    """A run's per-epoch values of one metric and when each epoch ended.

    Args:
        minutes: list of float. Wall time from the start of training to each epoch's end; a
            resumed run's includes the time it was stopped.
        train: list of float. Each epoch's mean training value.
        validation: list of float. The validation value after each epoch.
        test: float. The test value of the best checkpoint, or None if the run has none.
        epochs: list of int. The epochs' numbers, from 1.
    """

    minutes: list[float]
    train: list[float]
    validation: list[float]
    test: float | None = None
    epochs: list[int] = field(default_factory=list)


def read_curves(run_dir: Path) -> dict[str, Curve]:
    """Every metric a training run logged per epoch for both training and validation (`loss`
    first, then the others by name), from its `logs/train` and `logs/validation` TensorBoard
    events, with the test values from its `metrics.json`; empty for a run without epochs."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    run_dir = Path(run_dir)
    start = None
    # split -> metric -> epoch -> (wall time, value)
    values: dict[str, dict[str, dict[int, tuple[float, float]]]] = {"train": {}, "validation": {}}
    for split, by_metric in values.items():
        for path in sorted((run_dir / "logs" / split).glob("events.out.tfevents.*")):
            for event in EventFileLoader(str(path)).Load():
                if split == "train" and event.WhichOneof("what") == "file_version":
                    # The writer opens as training starts: the curves' origin.
                    start = event.wall_time if start is None else min(start, event.wall_time)
                for value in event.summary.value:
                    if value.tag.startswith("epoch_"):
                        number = float(tensor_util.make_ndarray(value.tensor))
                        by_epoch = by_metric.setdefault(value.tag.removeprefix("epoch_"), {})
                        by_epoch[event.step] = (event.wall_time, number)  # a redone epoch wins
    metrics_file = run_dir / "metrics.json"
    tests = read_json(metrics_file)["test"] if metrics_file.is_file() else {}
    curves = {}
    for metric, train in values["train"].items():
        validation = values["validation"].get(metric, {})
        epochs = sorted(set(train) & set(validation))
        if start is None or not epochs:
            continue  # logged for training only (the learning rate)
        curves[metric] = Curve(
            minutes=[(validation[e][0] - start) / 60 for e in epochs],
            train=[train[e][1] for e in epochs],
            validation=[validation[e][1] for e in epochs],
            test=tests.get(metric),
            epochs=[e + 1 for e in epochs],
        )
    return dict(sorted(curves.items(), key=lambda item: (item[0] != "loss", item[0])))


def read_curve(run_dir: Path, metric: str = "loss") -> Curve:
    """The per-epoch `metric` of a training run (see `read_curves`)."""
    curves = read_curves(run_dir)
    if metric not in curves:
        raise UserError(f"{run_dir} has no epoch_{metric} in logs/train and logs/validation")
    return curves[metric]


def _draw(axes: Any, x: list[float], curve: Curve, color: str, label: str) -> None:
    """One curve's validation values (solid, a dot per epoch) and training values (dashed)."""
    axes.plot(x, curve.validation, VALIDATION_STYLE, color=color, label=label)
    axes.plot(x, curve.train, TRAIN_STYLE, marker=".", color=color, alpha=0.5)
    axes.grid(alpha=0.3)


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
        _draw(axes, curve.minutes, curve, color, f"{label}{test}")
        if curve.test is not None:
            axes.plot(curve.minutes[-1], curve.test, "*", color=color, markersize=12)
    if target is not None:
        axes.axhline(target, color="grey", linewidth=0.8, linestyle=":")
        axes.annotate(f"target {target}", (0, target), xytext=(2, 3), textcoords="offset points")
    axes.set_xlabel("minutes of training (wall time)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.set_xlim(left=0)
    axes.legend(title="validation (solid), training (dashed), test (star)", fontsize=9)
    figure.tight_layout()
    return save_png(figure, path)


def plot_run_curves(curves: dict[str, Curve]) -> Any:
    """One run's metrics, a row each: against the epoch (left) and against minutes of training
    (right), validation solid and training dashed. Returns the matplotlib figure."""
    if not curves:
        raise UserError("no metric was logged for both training and validation")
    figure, axes = pyplot().subplots(
        len(curves), 2, figsize=(9, 2.8 * len(curves)), dpi=100, squeeze=False
    )
    for row, (metric, curve) in zip(axes, curves.items(), strict=True):
        _draw(row[0], curve.epochs, curve, "C0", "validation")
        _draw(row[1], curve.minutes, curve, "C0", "validation")
        row[0].set_xlabel("epoch")
        if len(curve.epochs) <= 12:  # whole epochs, not matplotlib's fractional ticks
            row[0].set_xticks(curve.epochs)
        row[1].set_xlabel("minutes of training (wall time)")
        row[1].set_xlim(left=0)
        row[0].set_ylabel(metric)
    axes[0][0].legend(["validation", "training"], fontsize=9)
    figure.tight_layout()
    return figure
