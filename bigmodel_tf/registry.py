"""The model families, looked up by name: each family's task module registers its tasks.

The core (trainer, export, bench harness, CLI) finds a family here and never imports one:
`bigmodel_tf.families` lists the families and the module that registers each, and importing
that module adds its tasks to the registry.

>>> from bigmodel_tf import registry
>>> registry.family_names()           # no TensorFlow import
('cnn', 'gru-lm', 'transformer', 'transformer-mlm', 'transformer-lm', 'seq2seq')
>>> registry.task_for("cnn").default_dataset
'mnist5k'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bigmodel_tf.errors import UserError

if TYPE_CHECKING:
    from bigmodel_tf.export.serving import ServingTask
    from bigmodel_tf.training.task import TrainingTask

_TASKS: dict[str, TrainingTask] = {}
_SERVING: dict[str, ServingTask | str] = {}


def register(task: TrainingTask, serving: ServingTask | str) -> None:
    """Adds a family: its training task and how its runs are served (exported), or a one-line
    reason why they are not."""
    _TASKS[task.family] = task
    _SERVING[task.family] = serving


def _index() -> dict[str, str]:
    from bigmodel_tf import families  # names only: no TensorFlow

    return families.TASK_MODULES


def family_names() -> tuple[str, ...]:
    """Every family's name (`bigmodel-tf train NAME`), in the order `--help` lists them."""
    return tuple(_index())


def task_for(family: str) -> TrainingTask:
    """The training task of `family`; an unknown name is a `UserError` listing the known ones."""
    index = _index()
    if family not in index:
        raise UserError(f"unknown model {family!r}; choose one of: {', '.join(index)}")
    if family not in _TASKS:
        importlib.import_module(index[family])
    return _TASKS[family]


def serving_for(family: str) -> ServingTask:
    """The serving side of `family`'s task; a `UserError` for a family that is not exported."""
    task_for(family)
    serving = _SERVING[family]
    if isinstance(serving, str):
        raise UserError(serving)
    return serving


def tasks() -> dict[str, TrainingTask]:
    """Every family's training task, by name."""
    return {family: task_for(family) for family in family_names()}


def bench_entries() -> list[Any]:
    """Every family's benchmark entries (`bench.harness.Family`), from each family package's
    `bench` module, in the families' order."""
    packages = dict.fromkeys(module.rpartition(".")[0] for module in _index().values())
    return [entry for p in packages for entry in importlib.import_module(f"{p}.bench").ENTRIES]
