"""Pictures: matplotlib without a display, and PNG files that are never half-written."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend (files only: servers and CI have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_png(figure: Any, path: Path | str) -> Path:
    """Writes `figure` as a PNG at `path` (a temporary file, then a rename) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        figure.savefig(partial, format="png")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
        pyplot().close(figure)
    return path


def png_bytes(figure: Any) -> bytes:
    """`figure` as PNG bytes (to embed in a page or a TensorBoard summary); closes it."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png")
    finally:
        pyplot().close(figure)
    return buffer.getvalue()
