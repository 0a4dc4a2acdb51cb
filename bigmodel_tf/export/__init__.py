"""Export a trained run: SavedModel with serving signatures on raw inputs, plus metadata.

    >>> from bigmodel_tf.export import export
    >>> export("runs/cnn/mnist5k-default-1a2b3c4d")      # → savedmodels/cnn/<next version>/

Layout of an export (TF Serving's `<model>/<version>/`):

    saved_model/    serving signatures (`serving_default` takes uint8 images for the CNN)
    metadata.json   input/output specs, labels, the run's config and test metrics, versions
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json, write_json
from bigmodel_tf.training.trainer import load_run, load_trained


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
    try:
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


def export(run_dir: Path | str, out: Path | str | None = None, *, force: bool = False) -> Path:
    """Exports a run's best checkpoint; returns the version folder written.

    Args:
        run_dir: path. A finished training run.
        out: path. The version folder; defaults to `savedmodels/<family>/<next version>`.
        force: bool. Replace `out` if it exists. Defaults to `False`.
    """
    run_dir = Path(run_dir)
    family = load_run(run_dir).family
    out = Path(out) if out else next_version(Path("savedmodels") / family)
    if out.exists() and not force:  # fail before the slow work
        raise UserError(f"{out} already exists; pass --force to replace it")

    config, task, spec, model = load_trained(run_dir)
    metrics_path = run_dir / "metrics.json"
    with atomic_directory(out, force=force) as staging:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, (function, signature) in task.serving_endpoints(model, spec).items():
            archive.add_endpoint(name, tf.function(function), input_signature=signature)
        archive.write_out(str(staging / "saved_model"), verbose=False)
        write_json(
            staging / "metadata.json",
            {
                **task.metadata(spec),
                "family": config.family,
                "config": config.to_dict(),
                "metrics": read_json(metrics_path) if metrics_path.is_file() else None,
                "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
            },
        )
    return out


__all__ = ["atomic_directory", "export", "next_version"]
