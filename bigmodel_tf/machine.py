"""The CPU a process runs on, from `/proc/cpuinfo` (no TensorFlow import: the bench's results
file and the precision choice both read it)."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

# Flags that decide how fast the CPU trains: the vector width, and native bf16 and int8 dots.
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@functools.cache
def cpu() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags ("" and none where `/proc/cpuinfo` is missing)."""
    name, flags = "", frozenset()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    return name, flags


def relevant_flags() -> list[str]:
    """Which of `RELEVANT_FLAGS` this CPU has."""
    _, flags = cpu()
    return [flag for flag in RELEVANT_FLAGS if flag in flags]
