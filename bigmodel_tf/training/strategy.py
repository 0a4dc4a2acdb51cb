"""One place that picks the tf.distribute strategy for every model family, and what workers share.

A cluster of worker processes is described by `TF_CONFIG` (set by `bigmodel-tf launch`, by the
Kubeflow training operator's TFJob, or by hand) or, when that is unset, by the Slurm job step the
process runs in (`SlurmClusterResolver`). Every worker runs the same `train` call; worker 0 (or
the `chief` task) is the chief, the only one that writes the run directory.

Environment:
    BIGMODEL_TF_CLUSTER_TIMEOUT  seconds to wait for every worker to join (default 300); then a
                                 watchdog kills the process, naming the peers it cannot reach.
    BIGMODEL_TF_CPU_REPLICAS     split the CPU into N logical devices, so that `mirrored` runs N
                                 replicas without GPUs (tests the multi-replica path; no speed-up).
    BIGMODEL_TF_SLURM_PORT       first port of the workers in a Slurm job step (default 8888).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.training import keras_patches
from bigmodel_tf.training.config import STRATEGIES

CLUSTER_TIMEOUT_ENV = "BIGMODEL_TF_CLUSTER_TIMEOUT"
CPU_REPLICAS_ENV = "BIGMODEL_TF_CPU_REPLICAS"
SLURM_PORT_ENV = "BIGMODEL_TF_SLURM_PORT"
# MultiWorkerMirroredStrategy's roles; parameter servers and evaluators need other strategies.
WORKER_ROLES = ("chief", "worker")
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
)

ClusterResolver = tf.distribute.cluster_resolver.ClusterResolver


def _malformed(reason: str) -> UserError:
    return UserError(f"TF_CONFIG is malformed: {reason}; expected e.g. {TF_CONFIG_EXAMPLE}")


def _check_tf_config(raw: str) -> None:
    """Validates `TF_CONFIG` before TensorFlow reads it (it would fail later and less clearly)."""
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise _malformed(f"not JSON ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise _malformed("no 'cluster' mapping")
    cluster = spec["cluster"]
    unknown = sorted(set(cluster) - set(WORKER_ROLES))
    if unknown:
        raise _malformed(f"unsupported role(s) {', '.join(unknown)} (use chief and worker)")
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise _malformed(f"cluster.{role} must be a non-empty list of 'host:port'")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise _malformed(f"cluster.{role} address {address!r} is not 'host:port'")
    if len(cluster.get("chief", [])) > 1:
        raise _malformed("more than one chief")
    task = spec.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise _malformed(f"'task' must name a role of the cluster ({', '.join(cluster)})")
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _malformed("task.index must be an integer")
    if not 0 <= index < len(cluster[task["type"]]):
        raise _malformed(
            f"task.index {index} is out of range for {len(cluster[task['type']])} "
            f"{task['type']} task(s)"
        )


def cluster_resolver() -> ClusterResolver | None:
    """The cluster this process belongs to: from `TF_CONFIG`, else a Slurm job step of several
    tasks, else None (a single process). A malformed `TF_CONFIG` raises `UserError`."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if raw:
        _check_tf_config(raw)
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "1")
    if tasks.isdigit() and int(tasks) > 1:
        try:
            # GPU binding is left to Slurm (--gpus-per-task); the GPU arguments only let the
            # resolver lay out one port per task on nodes running up to `tasks` tasks.
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
                port_base=int(os.environ.get(SLURM_PORT_ENV, "8888")),
                gpus_per_node=int(tasks),
                gpus_per_task=1,
                auto_set_gpu=False,
            )
            resolver.cluster_spec()  # resolves this task's type and index
        except (RuntimeError, ValueError) as e:
            raise UserError(f"cannot read the Slurm job step's layout: {e}") from None
        return resolver
    return None


def _tasks(resolver: ClusterResolver | None) -> int:
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(role, [])) for role in WORKER_ROLES)


def _split_cpu() -> None:
    """Splits the CPU into `BIGMODEL_TF_CPU_REPLICAS` logical devices (once, before TF starts)."""
    requested = os.environ.get(CPU_REPLICAS_ENV, "")
    if not requested:
        return
    if not requested.isdigit() or int(requested) < 1:
        raise UserError(f"{CPU_REPLICAS_ENV}={requested!r}: expected a positive integer")
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * int(requested)
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) == len(wanted):
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise UserError(
            f"{CPU_REPLICAS_ENV} must be set before TensorFlow starts (in the environment of a "
            "fresh process)"
        ) from None


def _local_devices() -> list[str]:
    """The local devices a MirroredStrategy replicates over: the GPUs, else the logical CPUs."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def resolve_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns the strategy to build and train under.

    Args:
        name: str. `default` (one device), `mirrored` (all local GPUs, or the logical CPUs of
            `BIGMODEL_TF_CPU_REPLICAS`), `multiworker` (the cluster of `TF_CONFIG` or Slurm;
            returns once every worker has joined), `tpu` (the TPU named by `TPU_NAME`, or this
            TPU VM's), or `auto`: multiworker when the cluster has several tasks, tpu when
            `TPU_NAME` is set, mirrored when there are several local devices, else default.
            Defaults to `"auto"`.
    """
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    _split_cpu()
    resolver = cluster_resolver()
    tasks = _tasks(resolver)
    if tasks > 1 and name not in ("auto", "multiworker"):
        raise UserError(
            f"this process is one of {tasks} cluster tasks (TF_CONFIG or Slurm), but "
            f"train.strategy={name} would train each alone; use auto or multiworker"
        )
    if name == "auto":
        if tasks > 1:
            name = "multiworker"
        elif os.environ.get("TPU_NAME"):
            name = "tpu"
        elif len(_local_devices()) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(_local_devices())
    if name == "tpu":
        return _tpu_strategy()
    if resolver is None:
        raise UserError(
            "train.strategy=multiworker needs a cluster: set TF_CONFIG (see `bigmodel-tf launch`) "
            "or run in a Slurm job step of several tasks"
        )
    return _multiworker_strategy(resolver)


def _tpu_strategy() -> tf.distribute.TPUStrategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            os.environ.get("TPU_NAME", "local")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise UserError(f"no TPU found: {str(e).strip().splitlines()[0]}") from None
    return tf.distribute.TPUStrategy(resolver)


def _multiworker_strategy(resolver: ClusterResolver) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy once every worker has joined, or the process ends within the
    timeout, killed by `bigmodel_tf.watchdog` (TensorFlow itself did not give up within minutes)."""
    keras_patches.apply()
    raw_timeout = os.environ.get(CLUSTER_TIMEOUT_ENV, "300")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        raise UserError(f"{CLUSTER_TIMEOUT_ENV}={raw_timeout!r}: expected seconds") from None
    me = (resolver.task_type, resolver.task_id)
    peers = [
        f"{role}/{index}/{address}"
        for role, addresses in resolver.cluster_spec().as_dict().items()
        for index, address in enumerate(addresses)
        if (role, index) != me
    ]
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "bigmodel_tf.watchdog", str(os.getpid()), f"{timeout:g}", *peers],
        stdin=subprocess.PIPE,
    )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        barrier(strategy)
    except tf.errors.OpError as e:
        address = resolver.cluster_spec().task_address(*me)
        raise UserError(f"cannot start {me[0]} {me[1]} at {address}: {e.message}") from None
    finally:
        watchdog.stdin.close()  # the watchdog's signal to stand down
        watchdog.wait()
    return strategy


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and _tasks(strategy.cluster_resolver) > 1
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (the chief, or the only process)."""
    return strategy.extended.should_checkpoint


def task_name(strategy: tf.distribute.Strategy) -> str:
    """`worker 1`, `chief 0`, ...; `main` for a single process."""
    if not is_multiworker(strategy):
        return "main"
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id}"


def describe(strategy: tf.distribute.Strategy) -> str:
    """`MultiWorkerMirroredStrategy (worker 1): 2 replicas`, for the log."""
    # By public name: MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    kinds = {
        "MultiWorkerMirroredStrategy": tf.distribute.MultiWorkerMirroredStrategy,
        "MirroredStrategy": tf.distribute.MirroredStrategy,
        "TPUStrategy": tf.distribute.TPUStrategy,
    }
    kind = next((n for n, k in kinds.items() if isinstance(strategy, k)), type(strategy).__name__)
    return f"{kind} ({task_name(strategy)}): {strategy.num_replicas_in_sync} replicas"


def gather_rows(strategy: tf.distribute.Strategy, row: Sequence[float]) -> np.ndarray:
    """Every worker's `row`, as an array `(replicas, len(row))` that all of them receive (a
    worker with several local replicas appears once per replica).

    Under MultiWorkerMirroredStrategy this is a collective: every worker must call it at the same
    point. Elsewhere there is one process and the result is its own row.
    """
    value = tf.constant([row], tf.float64)  # (1, n)
    if not is_multiworker(strategy):
        return value.numpy()
    return _gather_function(strategy)(value).numpy()


@functools.cache
def _gather_function(strategy: tf.distribute.Strategy):
    # Traced once per row length: eager `strategy.gather` traces a new function at every call.
    @tf.function(reduce_retracing=True)
    def gather(value):
        per_replica = strategy.experimental_distribute_values_from_function(lambda _: value)
        return strategy.gather(per_replica, axis=0)

    return gather


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker has reached this point (no-op for a single process)."""
    gather_rows(strategy, [0.0])


def from_chief(strategy: tf.distribute.Strategy, value: float) -> float:
    """The chief's `value`, on every worker (a collective under MultiWorkerMirroredStrategy)."""
    rows = gather_rows(strategy, [float(is_chief(strategy)), value])
    return float(rows[rows[:, 0] == 1.0][0, 1])
