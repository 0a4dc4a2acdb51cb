"""Reading the files of your own data: which files a source is made of, their bytes and their
UTF-8 text, each failure a `UserError` naming the file; and a progress line for long passes."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bigmodel_tf.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Inputs larger than this get a progress line every few seconds.
PROGRESS_EVERY_S = 3.0


def read_file(path: Path) -> bytes:
    """The bytes of `path`, or a `UserError` that says why not (a dangling or looping link, a
    folder where a file should be, no permission)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            target = os.readlink(path)
            raise UserError(
                f"{path} is a symbolic link to {target}, which does not exist"
            ) from None
        raise UserError(f"{path} does not exist") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def utf8(path: Path, data: bytes) -> str:
    """`data` decoded as UTF-8 (a byte-order mark dropped, line ends made "\\n")."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 4]
        raise UserError(f"{path} is not UTF-8 text: byte offset {e.start:,} ({bad!r})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _walk(root: Path, keep: Callable[[Path], bool]) -> list[Path]:
    """Files under `root` that `keep` accepts, sorted; linked files are read, linked folders not
    entered (so that a link can never loop)."""
    found = []
    for folder, _, names in os.walk(root, onerror=_walk_error):
        found += [Path(folder) / n for n in names if keep(Path(folder) / n)]
    return sorted(found)


def _walk_error(error: OSError) -> None:
    raise UserError(f"cannot list {error.filename}: {error.strerror or error}")


def source_files(kind: str, path: Path) -> list[Path]:
    """The files a source is made of, checked to exist (the planners read them)."""
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{kind}:{path}: no such file or folder")
    if kind == "images":
        if not path.is_dir():
            raise UserError(f"images:{path} must be a folder of class folders")
        files = _walk(path, lambda p: p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"images:{path} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        return files
    if kind == "text" and path.is_dir():
        files = _walk(path, lambda p: p.suffix.lower() == ".txt")
        if not files:
            raise UserError(f"text:{path} holds no .txt files")
        return files
    if path.is_dir():
        raise UserError(f"{kind}:{path} is a folder; {kind} data is one file")
    return [path]


class Progress:
    """A line on stderr every few seconds while a long pass runs; silent for small inputs."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.start = what, total, time.monotonic()
        self.last = self.start

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"{self.what}: {done:,}/{self.total:,} files", file=sys.stderr, flush=True)
