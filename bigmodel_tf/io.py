"""Small file and stream helpers: nothing is ever half-written, native chatter stays quiet."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    """Writes `obj` as indented JSON atomically (see `write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    """Writes `text` (UTF-8) atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # what open() would give, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable_dir(path: Path) -> None:
    """Gives a `tempfile.mkdtemp` folder (0700) the permissions `mkdir` would have."""
    os.chmod(path, 0o777 & ~_umask())


def read_json(path: Path) -> Any:
    """The JSON in `path`; a file that is not JSON (truncated, overwritten) is a `UserError`
    naming it."""
    from bigmodel_tf.errors import UserError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is damaged (not valid JSON: {e})") from None


@contextlib.contextmanager
def native_stderr_captured(*, replay_on_error: bool = True):
    """Holds back what native code writes to fd 2 inside the block; replays it if the block fails.

    `replay_on_error=False` drops it even then, for callers that turn the failure into a
    one-line `UserError` of their own.

    TensorFlow's libraries print start-up notes (oneDNN, CUDA) at import and the TFLite converter
    prints its passes, to fd 2 and whatever TF_CPP_MIN_LOG_LEVEL says; they would bury our
    one-line errors and progress lines.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            if replay_on_error:
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras with their start-up notes held back (unless
    TF_CPP_MIN_LOG_LEVEL=0 asks for them), and turns absl's routine warnings off."""
    if int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) > 0:
        with native_stderr_captured():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        from absl import logging

        # TFDS and TF log routine notes as absl warnings ("no dataset_info.json", ...).
        logging.set_verbosity(logging.ERROR)
