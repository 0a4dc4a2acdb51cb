"""Keras 3.15's `model.fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585), patched.

Unpatched, `fit` fails on a cluster of two or more workers in two places of Keras' TensorFlow
trainer: `_maybe_symbolic_build` reduces the first batch across replicas, which fails on
MultiWorkerMirroredStrategy's per-replica values ("Attempt to convert a value (PerReplica:...)
with an unsupported type"); then `reduce_per_replica` averages the step's logs over axis 0, which
scalar logs don't have ("Invalid reduction dimension 0 for input with 0 dimensions").

The route is a patch, not a custom training loop: with it, every family keeps the one `fit`
path with its callbacks (checkpoints, CSV history, TensorBoard, the family's own, and Keras'
`BackupAndRestore`, the fault-tolerance mechanism to use rather than rewrite); a custom loop would
be a second trainer for every family to keep equal to the first. Each patch wraps the original
function and changes only what fails:

- the symbolic build takes one replica's share of the first batch (the build needs only shapes
  and dtypes; averaging labels across replicas was never meaningful);
- logs are averaged across replicas only (`axis=None`), which is what `reduce_per_replica`
  does for every other strategy.

The patches are applied only when a MultiWorkerMirroredStrategy is created, and only to the Keras
source they were written against: `apply` compares a fingerprint of each patched function (and of
the helper the patch reuses) and refuses to run on any other, and
tests/training/test_keras_patches.py fails when Keras changes under them. Remove this module when
Keras fixes the issue.
"""

from __future__ import annotations

import hashlib
import inspect

import keras
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

# sha256 of the source of each function the patches replace or reuse, in Keras 3.15.1.
FINGERPRINTS = {
    "TensorFlowTrainer._maybe_symbolic_build": (
        "92a504f5eba9b29f81f1bf26180bdd5bf5186b06b7bda426534b90d2d02bc1c2"
    ),
    "reduce_per_replica": "2e7d54b1e6edc29a8c6a7e6b66cd4c8be3ba7842412c93753ac3afe169fa7fb8",
    "_collective_all_reduce_multi_worker": (
        "0302369d850e6694978fa7691c0e97b79cd0cf83a6bbef7caed8738e1f1a5c24"
    ),
}
ORIGINALS = {
    "TensorFlowTrainer._maybe_symbolic_build": tf_trainer.TensorFlowTrainer._maybe_symbolic_build,
    "reduce_per_replica": tf_trainer.reduce_per_replica,
    "_collective_all_reduce_multi_worker": tf_trainer._collective_all_reduce_multi_worker,
}


def fingerprint(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def changed() -> list[str]:
    """The patched or reused Keras functions whose source is not the one the patches know."""
    return [name for name, f in ORIGINALS.items() if fingerprint(f) != FINGERPRINTS[name]]


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Builds from the first replica's share of the first batch, instead of a batch reduced
    across replicas."""
    if iterator is not None and self._distribute_strategy is not None:
        strategy = self._distribute_strategy
        for _, _, batches in iterator:
            data_batch = tree.map_structure(
                lambda x: strategy.experimental_local_results(x)[0], next(batches)
            )
            break
        iterator = None
    return ORIGINALS["TensorFlowTrainer._maybe_symbolic_build"](self, iterator, data_batch)


def _reduce_per_replica(values, strategy, reduction):
    """Averages a multi-worker step's logs across replicas only (`axis=None`), not along axis 0."""
    if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
        return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
    return ORIGINALS["reduce_per_replica"](values, strategy, reduction)


def apply() -> None:
    """Patches Keras' TensorFlow trainer (idempotent); raises if Keras is not the known one."""
    if tf_trainer.reduce_per_replica is _reduce_per_replica:
        return
    stale = changed()
    if stale:
        raise RuntimeError(
            f"Keras {keras.__version__} changed {', '.join(stale)}, which bigmodel_tf patches for "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585); check whether the issue is "
            "fixed and update bigmodel_tf/training/keras_patches.py"
        )
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = _reduce_per_replica
