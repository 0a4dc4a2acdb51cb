"""What `train.precision=auto` and `train.jit_compile=auto` choose, and the dtype policy a model is
built under.

bf16 pays only where the hardware computes it natively: on an x86 CPU with AMX or AVX512-BF16
(`/proc/cpuinfo` flags, not the CPU's name) oneDNN runs bf16 matmuls and convolutions at 2-4x
the fp32 rate; without them every bf16 op is emulated and only slows training down. Even with
them, small models can lose: the casts and the float32 norms, softmaxes and recurrent states
that mixed precision keeps cost as much as the matmuls save. So `auto` asks two questions, the
hardware's and the family's (`TrainingTask.mixed_precision_pays`, set from the bench's
`settings` figures), and XLA is decided per family and precision the same way
(`TrainingTask.jit_pays`): XLA on CPU runs bf16 dots through Eigen, not oneDNN, which is why a
family may want XLA in float32 and not under bf16.

Logits, losses and metrics stay float32 under `mixed_bfloat16`: every family's output layer is
float32, and the variables (hence the checkpoints and exports) are float32 too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.machine import cpu

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
JIT_CHOICES = ("auto", "true", "false")
# /proc/cpuinfo flags of native bf16 arithmetic, and how a reason names them.
BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def native_bf16() -> str:
    """What computes bf16 natively here ("AMX-BF16, AVX512-BF16", a GPU's name), or "" if
    nothing does. `BIGMODEL_TF_NATIVE_BF16=0` answers "" (a run, or a test suite, that must
    not depend on the CPU), any other value answers that value."""
    override = os.environ.get("BIGMODEL_TF_NATIVE_BF16")
    if override is not None:
        return "" if override in ("", "0") else override
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        if details.get("compute_capability", (0, 0)) >= (8, 0):  # Ampere and later
            return details.get("device_name", gpu.name)
    _, flags = cpu()
    return ", ".join(label for flag, label in BF16_FLAGS.items() if flag in flags)


@dataclass(frozen=True)
class Settings:
    """The precision and XLA setting a run uses, and why (what `settings.json` records)."""

    precision: str
    jit_compile: bool
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(
    precision: str,
    jit_compile: str,
    *,
    family: str,
    mixed_pays: bool,
    jit_pays: dict[str, bool],
    distilling: bool = False,
) -> Settings:
    """The settings of `train.precision` and `train.jit_compile` (`auto` or explicit) for a
    family whose measured preferences are `mixed_pays` and `jit_pays` (precision → XLA on).
    `auto` leaves XLA off while `distilling`: a teacher may read the student's batches through
    string ops (a re-tokeniser), which XLA cannot compile."""
    reasons = []
    if precision == "auto":
        hardware = native_bf16()
        if not hardware:
            precision = "float32"
            reasons.append("float32: no native bf16 here (no AMX-BF16 or AVX512-BF16)")
        elif not mixed_pays:
            precision = "float32"
            reasons.append(f"float32: {hardware} here, but bf16 does not speed up {family}")
        else:
            precision = "mixed_bfloat16"
            reasons.append(f"mixed_bfloat16: {hardware} here")
    else:
        reasons.append(f"{precision}: set")
    if jit_compile == "auto" and distilling:
        jit = False
        reasons.append("XLA off: distilling (the teacher's inputs may need ops XLA lacks)")
    elif jit_compile == "auto":
        jit = jit_pays.get(precision, False)
        reasons.append(
            f"XLA {'on' if jit else 'off'}: measured {'faster' if jit else 'no faster'}"
            f" for {family} in {precision}"
        )
    else:
        jit = jit_compile == "true"
        reasons.append(f"XLA {'on' if jit else 'off'}: set")
    return Settings(precision, jit, "; ".join(reasons))


def settings_for(config: Any, task: Any) -> Settings:
    """The settings a run of `task` (a `TrainingTask`) with `config` (its `RunConfig`) uses."""
    measured, mixed_pays, jit_pays = task.measured_settings(config)
    train = config.train
    return resolve(
        train.precision,
        train.jit_compile,
        family=measured,
        mixed_pays=mixed_pays,
        jit_pays=jit_pays,
        distilling=bool(train.distill_from),
    )


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers created inside the block take the dtype policy `name`; the global policy is
    restored after it (the policy is process-wide state)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _float32_policies(node):
    """`node` (a `.keras` config) with every mixed dtype policy replaced by float32."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and "mixed" in str(node.get("config")):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_policies(value) for value in node]
    return node


def is_mixed(path: Path) -> bool:
    """Whether the `.keras` file at `path` holds layers that compute in a mixed precision."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return _float32_policies(config) != config


@contextlib.contextmanager
def float32_copy(path: Path) -> Iterator[Path]:
    """A `.keras` file of the model at `path` computing in float32: the same weights (a mixed
    policy keeps its variables in float32), so evaluation and export see the model exactly,
    without bf16 rounding and without bf16 ops a converter or device may not have."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = _float32_policies(json.loads(members["config.json"]))
    members["config.json"] = json.dumps(config).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / path.name
        copy.write_bytes(buffer.getvalue())
        yield copy
