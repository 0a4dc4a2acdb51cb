"""A trained run's report: one self-contained page, `RUN_DIR/report.html`, to read rather than
a folder of logs.

    >>> from bigmodel_tf.training import report
    >>> report("runs/cnn/mnist5k-default-1a2b3c4d")   # → runs/cnn/.../report.html

The page holds the test metrics, the learning curves (every metric by epoch and by minute of
training), the family's own pictures (`TrainingTask.report_sections`: a classifier's confusion
matrix, a language model's samples, a Seq2Seq's attention), the run's exports (found under
`savedmodels/<family>/`, or given) and its resolved config. `train` writes it when a run ends,
with the pictures and config in TensorBoard too, and `export` writes it again with the new export;
a failure in either costs one warning line, never the run or the export. `BIGMODEL_TF_REPORT=0`
turns those automatic reports off (the test suite does, but for its shared runs).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from bigmodel_tf.bench.curves import plot_run_curves, read_curves
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_text
from bigmodel_tf.pictures import png_bytes, pyplot
from bigmodel_tf.report import html
from bigmodel_tf.report.sections import Block, Image, Section, Table, Text
from bigmodel_tf.report.tensorboard import flat_config, write_hparams, write_pictures

if TYPE_CHECKING:
    import keras

    from bigmodel_tf.training.config import RunConfig
    from bigmodel_tf.training.task import TrainingTask

REPORT_FILE = "report.html"
# Set to 0 to skip the reports `train` and `export` write when they finish.
ENVIRONMENT = "BIGMODEL_TF_REPORT"
# Where `bigmodel-tf export` writes versions unless given `--out`: `<root>/<family>/<version>`.
EXPORTS_ROOT = Path("savedmodels")

Result = TypeVar("Result")


def write_report(
    run_dir: Path | str,
    config: RunConfig,
    task: TrainingTask,
    spec: Any,
    model: keras.Model,
    *,
    exports: Sequence[Path | str] = (),
    family_sections: list[Section] | None = None,
) -> Path:
    """Writes `run_dir/report.html` (atomically) and returns its path.

    Args:
        run_dir: path. A trained run.
        config, task, spec, model: the run's, as `training.runs.load_trained` gives them.
        exports: paths. Export folders to show besides those `find_exports` finds.
            Defaults to none.
        family_sections: list of Section. The family's sections, if already made; None makes
            them (`task.report_sections`). Defaults to None.
    """
    run_dir = Path(run_dir)
    # Exports first: a folder that is not one fails before the family's slower pictures.
    export_sections = [export_section(d) for d in find_exports(run_dir, config.family, exports)]
    if family_sections is None:
        family_sections = task.report_sections(config, spec, model, run_dir)
    sections = [
        metrics_section(run_dir),
        curves_section(run_dir),
        *family_sections,
        *export_sections,
        config_section(run_dir),
    ]
    title = f"{config.family} on {config.dataset} ({config.preset})"
    subtitle = f"{run_dir}, report written {time.strftime('%Y-%m-%d %H:%M')}"
    path = run_dir / REPORT_FILE
    write_text(path, html.render(title, subtitle, sections))
    return path


def metrics_section(run_dir: Path) -> Section:
    """The best checkpoint's test and validation metrics and the facts of the run."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return Section("Metrics", note="No metrics.json: the run has not finished training.")
    metrics = read_json(path)
    test, validation = metrics.get("test", {}), metrics.get("validation", {})
    rows = [[name, value, validation.get(name, "")] for name, value in test.items()]
    facts = [
        [name.replace("_", " "), metrics[name]]
        for name in ("parameters", "replicas", "train_seconds_this_invocation")
        if name in metrics
    ]
    return Section(
        "Metrics",
        [
            Table("metrics", ["metric", "test", "validation"], rows),
            Table("run", ["run", ""], facts),
        ],
        note="The best checkpoint (checkpoints/best.keras) on the test and validation splits.",
    )


def curves_section(run_dir: Path) -> Section:
    """Every metric logged per epoch, by epoch and by minute of training."""
    curves = read_curves(run_dir)
    if not curves:
        return Section("Learning curves", note="No epoch was logged in logs/train and validation.")
    image = Image(
        "learning_curves",
        png_bytes(plot_run_curves(curves)),
        "Validation solid, training dashed; left by epoch, right by wall time.",
    )
    return Section("Learning curves", [image], tensorboard=False)


def config_section(run_dir: Path) -> Section:
    """config.json as a table of the dotted keys `--set` takes."""
    rows = sorted(flat_config(read_json(run_dir / "config.json")).items())
    return Section("Configuration", [Table("config", ["key", "value"], rows)], tensorboard=False)


def find_exports(run_dir: Path, family: str, extra: Sequence[Path | str] = ()) -> list[Path]:
    """`extra`, then the versions under `EXPORTS_ROOT/family` (relative to the working folder)
    whose `report.json` names `run_dir`; each once."""
    target = Path(run_dir).resolve()
    found = {Path(path).resolve(): Path(path) for path in extra}
    for report in sorted((EXPORTS_ROOT / family).glob("*/report.json"), key=_version):
        if Path(read_json(report).get("run_dir", "")).resolve() == target:
            found.setdefault(report.parent.resolve(), report.parent)
    return list(found.values())


def _version(report: Path) -> tuple[int, str]:
    """Versions in number order (10 after 9), other folder names after them."""
    name = report.parent.name
    return (int(name), "") if name.isdigit() else (sys.maxsize, name)


def export_section(export_dir: Path) -> Section:
    """An export's report.json: a table of its variants and bars of size, quality and latency."""
    path = Path(export_dir) / "report.json"
    if not path.is_file():
        raise UserError(f"{export_dir} is not an export (no report.json)")
    report = read_json(path)
    metric, rows = report["metric"], report["rows"]
    sizes = sorted({size for row in rows for size in row.get("latency_ms", {})}, key=int)
    header = ["variant", "file", "MB", metric, "top-1 agreement"]
    header += [f"latency {size} (ms)" for size in sizes]
    table = [
        [row["variant"], row["file"] or "", row["bytes"] / 1e6, row[metric], row["top1_agreement"]]
        + [row.get("latency_ms", {}).get(size, "") for size in sizes]
        for row in rows
    ]
    blocks: list[Block] = [Table("variants", header, table), _export_bars(rows, metric, sizes)]
    choice = report.get("recommendation")
    note = f"{report['test_examples']:,} test examples; {report.get('machine', '')}."
    if choice:
        note += f" The variant to ship: {choice['variant']} ({choice['file']})."
    return Section(f"Export {export_dir}", blocks, note=note, tensorboard=False)


def _export_bars(rows: list[dict], metric: str, sizes: list[str]) -> Image:
    panels = [
        ("size (MB)", [row["bytes"] / 1e6 for row in rows]),
        (metric, [r[metric] for r in rows]),
    ]
    if sizes:
        panels.append(
            (
                f"latency, {sizes[0]} example (ms)",
                [r.get("latency_ms", {}).get(sizes[0], np.nan) for r in rows],
            )
        )
    names = [row["variant"] for row in rows]
    figure, axes = pyplot().subplots(
        1, len(panels), figsize=(4 * len(panels), 0.4 * len(rows) + 1.2)
    )
    for axis, (label, values) in zip(axes, panels, strict=True):
        bars = axis.barh(names, values, color=[f"C{i}" for i in range(len(rows))])
        axis.bar_label(bars, fmt="%.4g", fontsize=8, padding=2)  # differences too small to see
        axis.margins(x=0.2)  # room for the labels
        axis.invert_yaxis()  # the report's row order, top to bottom
        axis.set_xlabel(label)
        axis.grid(axis="x", alpha=0.3)
    for axis in axes[1:]:
        axis.set_yticks([])
    figure.tight_layout()
    return Image("export", png_bytes(figure), "Each variant's size, quality and latency.")


def enabled() -> bool:
    """Whether `train` and `export` write reports when they finish (`BIGMODEL_TF_REPORT`)."""
    return os.environ.get(ENVIRONMENT, "1").strip() not in ("0", "false", "no", "off")


def _safely(run_dir: Path, action: Callable[[], Result]) -> Result | None:
    """`action()`, or None and one warning line: a report is a by-product of a run, and a
    failure to draw it must not lose the run (or an export) it describes."""
    try:
        return action()
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        print(
            f"warning: {run_dir / REPORT_FILE} not written: {type(e).__name__}: {reason}",
            file=sys.stderr,
        )
        return None


def report_after_training(
    run_dir: Path, config: RunConfig, task: TrainingTask, spec: Any, model: keras.Model
) -> Path | None:
    """What `train` calls when a run has finished (on the chief): the family's pictures and the
    run's config with its test metrics in TensorBoard, then `report.html`. Never raises."""
    if not enabled():
        return None

    def write() -> Path:
        sections = task.report_sections(config, spec, model, run_dir)
        step = config.train.epochs
        write_pictures(run_dir / "logs" / "report", sections, step)
        test = read_json(run_dir / "metrics.json")["test"]
        write_hparams(run_dir / "logs", config.to_dict(), test, run_dir.name, step)
        return write_report(run_dir, config, task, spec, model, family_sections=sections)

    return _safely(run_dir, write)


def report_after_export(
    run_dir: Path,
    export_dir: Path,
    config: RunConfig,
    task: TrainingTask,
    spec: Any,
    model: keras.Model,
) -> Path | None:
    """What `export` calls when an export is written: `report.html` again, with it. Never
    raises."""
    if not enabled():
        return None
    return _safely(
        run_dir, lambda: write_report(run_dir, config, task, spec, model, exports=[export_dir])
    )


__all__ = [
    "REPORT_FILE",
    "Image",
    "Section",
    "Table",
    "Text",
    "find_exports",
    "report_after_export",
    "report_after_training",
    "write_report",
]
