"""The training side of a model family's task: what the one trainer asks of a family.

As Model Garden's `base_task.Task`: inputs (`prepare`, `examples`, `batcher`), the model, loss
and metrics, callbacks and what to monitor. How a family's runs are exported is its serving
side (`export.serving.ServingTask`); a family registers both (`registry.register`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from bigmodel_tf.data.pipeline import Batcher
from bigmodel_tf.training.config import RunConfig

if TYPE_CHECKING:
    from bigmodel_tf.report.sections import Section


class TrainingTask(abc.ABC):
    """One model family's training. Subclasses set the class attributes and implement the
    abstract methods."""

    family: str
    config_class: type
    presets: dict[str, dict]
    default_dataset: str
    # TrainConfig values that suit this family better than the generic defaults.
    train_defaults: dict[str, Any] = {}
    # The validation metric that picks the best checkpoint, and whether higher is better.
    # Loss, not accuracy: where accuracy saturates on a small validation split it stops telling
    # checkpoints apart and picks an early one.
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    # Whether the model outputs class probabilities, what `training.distill.Distiller` takes.
    distillable: bool = False
    # What `train.precision=auto` and `train.jit_compile=auto` choose for this family, from
    # `scripts/bench.py --only settings`: whether mixed_bfloat16 trains it faster where the
    # hardware has native bf16, and whether XLA does, per precision (absent: off).
    mixed_precision_pays: bool = False
    jit_pays: dict[str, bool] = {}

    def measured_settings(self, config: RunConfig) -> tuple[str, bool, dict[str, bool]]:
        """What `auto` decides a run of `config` on: the name of what was measured, whether
        mixed_bfloat16 pays and where XLA does. The family's (`mixed_precision_pays`,
        `jit_pays`) unless a task's presets differ too much in size for one measurement."""
        return self.family, self.mixed_precision_pays, self.jit_pays

    @abc.abstractmethod
    def prepare(self, config: RunConfig, run_dir: Path) -> Any:
        """Returns the data spec the model is built from (shapes, labels, vocabulary).

        Whatever the spec needs on disk (a vocabulary built from the training split) is written
        under `run_dir` on the first call and read back afterwards.
        """

    @abc.abstractmethod
    def examples(self, config: RunConfig, split: str, spec: Any) -> tf.data.Dataset:
        """Unbatched, cached `(inputs, targets)` examples of a split."""

    @abc.abstractmethod
    def batcher(self, config: RunConfig, spec: Any, batch_size: int) -> Batcher:
        """Turns examples into batches of `batch_size` (the global batch)."""

    @abc.abstractmethod
    def build_model(self, config: RunConfig, spec: Any) -> keras.Model:
        """A built (weights created) model; called inside the strategy scope."""

    @abc.abstractmethod
    def compile_args(self, config: RunConfig) -> dict[str, Any]:
        """`loss` and `metrics` for `model.compile`."""

    def callbacks(
        self, config: RunConfig, spec: Any, run_dir: Path
    ) -> list[keras.callbacks.Callback]:
        """Training callbacks of the family's own (e.g. TensorBoard samples); none by default."""
        return []

    def extra_metrics(
        self, config: RunConfig, spec: Any, model: keras.Model, split: str
    ) -> dict[str, float]:
        """Metrics of `split` beyond `model.evaluate`'s, which need the model run another way
        (e.g. decoding); the trainer adds them to the test metrics. None by default."""
        return {}

    def augment(self, config: RunConfig, spec: Any) -> Callable | None:
        """A map over training batches (not evaluation ones), applied before the model and a
        distillation teacher see them; None for none (in-model augmentation needs none)."""
        return None

    def teacher_inputs(self, spec: Any, teacher_spec: Any) -> keras.layers.Layer | None:
        """For distillation: a layer that makes a teacher's inputs (of `teacher_spec`) from a
        batch of the student's (of `spec`); None where the teacher reads the student's own."""
        return None

    def report_sections(
        self, config: RunConfig, spec: Any, model: keras.Model, run_dir: Path
    ) -> list[Section]:
        """The family's own sections of the run's report (`bigmodel_tf.report`), drawn from its
        best `model`: a classifier's confusion matrix, a language model's samples. The end of
        training also writes them to TensorBoard. None by default."""
        return []
