"""What goes wrong around a run, and what the run does about it.

- A damaged file (`load_keras`, and `io.read_json` for JSON) is one line naming it and what to
  do, never a traceback from deep inside Keras or h5py.
- A write that fails (a full disk, a file-size limit: `writing`) names the path; checkpoints
  are written to a temporary file and renamed (`BestCheckpoint`), so a failed write leaves the
  previous one whole.
- SIGTERM (a scheduler's preemption) or SIGINT during training writes a backup at the current
  step and stops with `Interrupted`; the same command resumes there (`Preemption`).
- A loss that stops being finite stops training at that step, before the backup of that step
  is written (`StopOnNonFinite`).
- One run directory has one writer at a time (`RunLock`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import signal
import socket
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from bigmodel_tf.data import DataOptions, builder
from bigmodel_tf.errors import Interrupted, UserError
from bigmodel_tf.training import precision


def load_keras(path: Path, remedy: str) -> keras.Model:
    """`keras.saving.load_model(path, safe_mode=True, compile=False)`, or a `UserError` naming
    `path` and `remedy` when the file is missing, truncated or not a Keras file.

    A model trained in mixed precision comes back computing in float32 (`precision.
    float32_copy`): what loads a checkpoint evaluates, exports or fine-tunes it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; {remedy}")
    try:
        if not precision.is_mixed(path):
            return keras.saving.load_model(path, safe_mode=True, compile=False)
        with precision.float32_copy(path) as copy:
            return keras.saving.load_model(copy, safe_mode=True, compile=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        # Keras reports a truncated archive as "File not found" about a file that exists.
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is damaged ({reason}); {remedy}") from None


# TensorFlow's file writers report the system's errors as these (EFBIG, ENOSPC, EACCES).
TF_WRITE_ERRORS = (
    tf.errors.OutOfRangeError,
    tf.errors.ResourceExhaustedError,
    tf.errors.PermissionDeniedError,
)


@contextlib.contextmanager
def writing(path: Path, what: str = "") -> Iterator[None]:
    """Turns a failed write inside the block (no space left, a file-size limit, no permission:
    an `OSError`, or TensorFlow's version of one) into a `UserError` naming `path`."""
    target = f"{what} {path}" if what else str(path)
    try:
        yield
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise UserError(f"cannot write {target}: {reason}") from None
    except TF_WRITE_ERRORS as e:
        # "<file>; File too large [Op:SaveV2]": the system's reason is after the last "; ".
        reason = e.message.split(" [Op:")[0].rsplit("; ", 1)[-1].strip()
        raise UserError(f"cannot write {target}: {reason}") from None


@contextlib.contextmanager
def reading_data(dataset: str, options: DataOptions | None = None) -> Iterator[None]:
    """Turns TensorFlow's `DataLossError` (a truncated or overwritten TFRecord of a prepared
    dataset) raised inside the block into a `UserError` naming the folder to delete."""
    try:
        yield
    except tf.errors.DataLossError as e:
        folder = builder(dataset, options).data_dir
        reason = e.message.strip().splitlines()[0][:100]
        raise UserError(
            f"a file of the prepared dataset {dataset} is damaged ({reason}); delete {folder} "
            "to prepare it again"
        ) from None


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to `path` at each epoch end whose `monitor` value beats every earlier
    one, as a temporary file renamed over the last: a kill or a full disk mid-write leaves the
    previous best whole (Keras' `ModelCheckpoint` writes in place).

    Args:
        path: Path. The `.keras` file.
        monitor: str. A validation metric, e.g. `val_loss`.
        mode: str. `min` or `max`.
        best: float. The best value of earlier epochs (a resumed run's), NaN if none.
    """

    def __init__(self, path: Path, monitor: str, mode: str, best: float = math.nan):
        super().__init__()
        self.path, self.monitor, self.mode, self.best = Path(path), monitor, mode, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        better = value < self.best if self.mode == "min" else value > self.best
        if math.isnan(self.best) or better:
            self.best = float(value)
            save_model(self.model, self.path)


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save` to a temporary file beside `path`, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        with writing(path, "the checkpoint"):
            model.save(tmp)
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteLoss` after the first step whose loss is not finite.

    Placed before the backup callback, so that the step's backup (if it is due) is not
    written: the last backup and the best checkpoint keep finite weights.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations.numpy())
            raise NonFiniteLoss(
                f"the training loss became {float(loss)} at step {step}; the last backup and "
                "checkpoints/best.keras keep the weights from before it. Lower "
                "train.learning_rate or set train.global_clipnorm (a new run), or check the data"
            )


class Preemption(keras.callbacks.Callback):
    """On SIGTERM or SIGINT, finishes the current step, writes a backup at it and raises
    `Interrupted`. The handlers are installed for the length of `fit` only.

    Args:
        backup: the run's `StepBackup` (whose `save_now` writes a backup at the current step).
        run_dir: Path. Named in the message.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, backup, run_dir: Path):
        super().__init__()
        self.backup, self.run_dir = backup, Path(run_dir)
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_begin(self, logs=None):
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._receive)

    def _receive(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once, as Python would
        self.received = signum
        print(f"{signal.Signals(signum).name}: stopping after this step", file=sys.stderr)

    def on_train_batch_end(self, batch, logs=None):
        if self.received is not None:
            self.backup.save_now()
            step = int(self.model.optimizer.iterations.numpy())
            raise Interrupted(self.received, step, self.run_dir)

    def on_train_end(self, logs=None):
        self.restore_handlers()

    def restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


class RunLock:
    """An exclusive `flock` on `<run_dir>.lock` beside the run directory, held while a process
    trains into it. The kernel releases it when the process dies, so the lock of a killed run
    is taken over; its file names the holder, for the refusal's message.

    Usable as a context manager; `acquire` raises `UserError` when another process holds it.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir.with_name(f".{self.run_dir.name}.lock")
        self._file = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open while the lock is)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise UserError(
                    f"{self.run_dir} is being trained by {holder}; "
                    "wait for it to finish, or choose another --run-dir"
                ) from None
            raise
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            print(f"taking over the lock of {previous}, which has stopped", file=sys.stderr)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing releases the flock
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
