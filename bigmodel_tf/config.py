"""`option()`: dataclass fields with bounds, used by every config (models and training alike)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, *, min: float | None = None, max: float | None = None, choices=None):
    """A dataclass field that config validation checks: `min <= value <= max`, in `choices`."""
    meta = {k: v for k, v in {"min": min, "max": max, "choices": choices}.items() if v is not None}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)
