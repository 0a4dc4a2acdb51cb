"""Training: configs, the one trainer, evaluation and TensorBoard.

>>> from bigmodel_tf import training
>>> config = training.make_config("cnn", overrides={"train.epochs": 5})
>>> metrics = training.train(config)          # writes runs/cnn/mnist5k-default-<hash>/
>>> training.evaluate(metrics["run_dir"], "test")
>>> training.generate_text(gru_lm_run_dir, "ROMEO:", 300, seed=1)  # a gru-lm run's text
>>> training.launch(["train", "cnn", "--epochs", "5"], workers=2)  # 2 local worker processes
>>> training.classify(transformer_run_dir, ["A gorgeous, witty film."])  # labels of texts
>>> training.transduce(seq2seq_run_dir, ["hello"], beam_width=5)   # a seq2seq run's phonemes
>>> training.report(metrics["run_dir"])        # → its report.html: metrics, curves, pictures
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigmodel_tf.launch import launch
from bigmodel_tf.training.board import start_tensorboard
from bigmodel_tf.training.config import RunConfig, TrainConfig
from bigmodel_tf.training.runs import (
    default_run_dir,
    evaluate,
    load_run,
    load_trained,
    make_config,
)
from bigmodel_tf.training.trainer import train


def report(run_dir: Path | str, exports: Sequence[Path | str] = ()) -> Path:
    """Writes a trained run's `report.html` (see `bigmodel_tf.report`) and returns its path.

    Args:
        run_dir: path. A trained run.
        exports: paths. Export folders to show besides the run's own under `savedmodels/`.
            Defaults to none.
    """
    # Imported here: the report imports this package's config module.
    from bigmodel_tf.report import write_report

    config, task, spec, model = load_trained(run_dir)
    return write_report(run_dir, config, task, spec, model, exports=exports)


def __getattr__(name: str) -> Any:
    """The families' own entry points, imported on first use: the trainer's package imports no
    family (a family imports the trainer)."""
    if name == "classify":
        from bigmodel_tf.families.transformer.classification import classify

        return classify
    if name == "generate_text":
        from bigmodel_tf.families.language_model.sampling import generate_text

        return generate_text
    if name == "transduce":
        from bigmodel_tf.families.seq2seq.transduction import transduce

        return transduce
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RunConfig",
    "TrainConfig",
    "classify",
    "default_run_dir",
    "evaluate",
    "generate_text",
    "launch",
    "load_run",
    "make_config",
    "report",
    "start_tensorboard",
    "train",
    "transduce",
]
