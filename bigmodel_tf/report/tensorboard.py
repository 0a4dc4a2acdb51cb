"""A finished run's pictures and settings in TensorBoard: the report's images (the Images tab)
and texts and tables (the Text tab) under `logs/report`, and the config with the test metrics in
the HParams tab, so that `tensorboard --logdir runs/` compares runs side by side."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigmodel_tf.report.sections import Image, Section, Table, Text, format_value
from bigmodel_tf.training.config import flatten


def _tag(*names: str) -> str:
    """A summary tag from titles: TensorBoard groups tags by the part before the first `/`."""
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") for name in names)


def _markdown(block: Table | Text) -> str:
    """The Text tab renders Markdown: a table as a table, a text as an indented (verbatim)
    block that keeps its line breaks."""
    if isinstance(block, Text):
        return "\n".join("    " + line for line in block.text.split("\n"))
    lines = ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
    for row in block.rows:
        cells = (format_value(value).replace("|", "\\|").replace("\n", " ") for value in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_pictures(log_dir: Path, sections: Sequence[Section], step: int) -> None:
    """Writes the blocks of `sections` that ask for TensorBoard (`Section.tensorboard`) as image
    and text summaries at `step` into `log_dir` (a run's `logs/report`)."""
    shown = [section for section in sections if section.tensorboard and section.blocks]
    if not shown:
        return
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for section in shown:
            for block in section.blocks:
                tag = _tag(section.title, block.name)
                if isinstance(block, Image):
                    pixels = tf.image.decode_png(block.png, channels=3)[None]
                    tf.summary.image(tag, pixels, step, description=block.caption or None)
                else:
                    tf.summary.text(tag, _markdown(block), step)
    writer.close()


def flat_config(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """`config.json` as `{"model.filters": "16, 32", "train.epochs": 30, ...}`: the dotted keys
    `--set` takes, each value one the HParams tab can show (a bool, number or string)."""
    return {
        key: value if isinstance(value, (bool, int, float, str)) else format_value(value)
        for key, value in flatten(config).items()
    }


def write_hparams(
    log_dir: Path, config: dict[str, Any], test: dict[str, float], trial: str, step: int
) -> None:
    """Writes the run's config as its hyperparameters and its test metrics as `test/<name>`
    scalars into `log_dir` (a run's `logs/`): the HParams tab finds a run's metrics in the folder
    of its hyperparameters and below it (the epochs' `train/` and `validation/` scalars)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp.hparams(flat_config(config), trial_id=trial)
        for name, value in test.items():
            tf.summary.scalar(f"test/{name}", value, step)
    writer.close()
