"""Writing an export's folder: its version number, the folder itself (whole or not at all), the
SavedModel, and what `metadata.json` records of the files and the libraries that wrote them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.export.serving import ServingTask
from bigmodel_tf.export.tflite import QUANTIZATIONS
from bigmodel_tf.io import make_readable_dir, read_json
from bigmodel_tf.training.faults import writing


def next_version(root: Path) -> Path:
    """`root/<n+1>` where n is the highest numbered version under `root` (TF Serving layout)."""
    versions = [int(p.name) for p in root.glob("*") if p.name.isdigit()] if root.is_dir() else []
    return root / str(max(versions, default=0) + 1)


@contextlib.contextmanager
def atomic_directory(target: Path, *, force: bool = False):
    """Yields a temporary folder beside `target` that becomes `target` only if the block succeeds.

    An existing `target` is replaced only with `force`; a failure or kill inside the block leaves
    `target` untouched and no half-written version behind.
    """
    target = Path(target)
    if target.exists() and not force:
        raise UserError(f"{target} already exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    make_readable_dir(staging)  # a served model is read by other users (TF Serving)
    try:
        with writing(target, "the export"):
            yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_saved_model(model: keras.Model, endpoints: dict, path: Path) -> None:
    """Writes `model` as a SavedModel with `endpoints` (`ServingTask.serving_endpoints`) as its
    signatures."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in endpoints.items():
        if isinstance(function, tf.Module):  # it owns resources, e.g. a vocabulary lookup table
            archive.track(function)
        archive.add_endpoint(name, tf.function(function), input_signature=signature)
    archive.write_out(str(path), verbose=False)


def metadata(
    folder: Path,
    run_dir: Path,
    config: Any,
    spec: Any,
    serving: ServingTask,
    quantize: tuple[str, ...],
    calibration_batches: int,
) -> dict[str, Any]:
    """What `metadata.json` holds: the family's input/output specs and labels, the run's config
    and test metrics, how the TFLite files were made, their sizes and sha256, and versions."""
    metrics_path = run_dir / "metrics.json"
    int8 = "int8" in quantize
    return {
        **serving.metadata(config, spec),
        "family": config.family,
        "config": config.to_dict(),
        "metrics": read_json(metrics_path) if metrics_path.is_file() else None,
        "tflite": {
            "signatures": list(serving.tflite_endpoints),
            "calibration_batches": calibration_batches if int8 else None,
            "int8_per_channel": serving.int8_per_channel if int8 else None,
            "int8_float_ops": list(serving.int8_float_ops) if int8 else None,
            "files": {
                QUANTIZATIONS[mode]: file_record(folder / QUANTIZATIONS[mode]) for mode in quantize
            },
        },
        "versions": _versions(),
    }


def file_record(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _versions() -> dict[str, str]:
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "ai-edge-litert": package_metadata.version("ai-edge-litert"),
    }
