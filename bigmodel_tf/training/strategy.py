"""One place that picks the tf.distribute strategy for every model family."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from bigmodel_tf.errors import UserError


def cluster_size() -> int:
    """Number of chief + worker tasks named by `TF_CONFIG` (1 when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return 1
    try:
        cluster = json.loads(raw)["cluster"]
        return sum(len(cluster.get(role, [])) for role in ("chief", "worker")) or 1
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"TF_CONFIG is malformed ({e}): expected {{'cluster': ..., 'task': ...}}"
        ) from None


def resolve_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns the strategy to build and train under.

    Args:
        name: str. `default` (one device), `mirrored` (all local GPUs, or the CPU),
            `multiworker` (the cluster in `TF_CONFIG`), or `auto`: multiworker when `TF_CONFIG`
            names several tasks, mirrored when there are several GPUs, else default.
            Defaults to `"auto"`.
    """
    if name == "auto":
        if cluster_size() > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        cluster_size()  # validates TF_CONFIG before TensorFlow starts its servers
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose auto, default, mirrored or multiworker")
