"""`launch`: one `bigmodel-tf train` command as a cluster of worker processes on this host.

    >>> from bigmodel_tf.launch import launch
    >>> launch(["train", "cnn", "--epochs", "5"], workers=2)  # the chief's exit status
    0

Each worker is `python -m bigmodel_tf COMMAND` with a `TF_CONFIG` naming every worker's address
on 127.0.0.1 and its own index; worker 0 is the chief. Their output is streamed line by line with
a `[worker i]` prefix. If a worker fails, the others get a few seconds to end by themselves
(when they fail for the same reason, that reports their own status) and are then killed (SIGKILL:
TensorFlow's workers take SIGTERM as a preemption notice and keep waiting for the lost peer); the
launcher returns the chief's exit status. Running the same command again resumes every worker
from its last backup. Each worker's temporary files go to a folder of the launcher's, removed
when it ends, so that a killed worker leaves nothing behind. This module does not import
TensorFlow: the launcher stays small beside its workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bigmodel_tf.errors import UserError

HOST = "127.0.0.1"
MAX_WORKERS = 64
# Seconds the other workers get to end by themselves once one has failed.
GRACE = 5.0


def tf_config(ports: Sequence[int], index: int) -> str:
    """The `TF_CONFIG` of worker `index` in a cluster of workers on `ports` of 127.0.0.1."""
    cluster = {"worker": [f"{HOST}:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def _free_ports(count: int, port_base: int | None) -> list[int]:
    """`count` ports from `port_base` on (checked free), or any free ones the system picks."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for i in range(count):
            s = stack.enter_context(socket.socket())
            port = 0 if port_base is None else port_base + i
            try:
                s.bind((HOST, port))
            except OSError as e:
                raise UserError(
                    f"port {port} on {HOST} is not free ({e.strerror}); choose another --port-base"
                ) from None
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]


def _die_with_parent() -> None:
    """Linux: the kernel kills the worker if the launcher dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stream(source: TextIO, sink: TextIO, prefix: str, lock: threading.Lock) -> None:
    for line in source:  # universal newlines: progress bars' \r ends a line too
        with lock:
            sink.write(prefix + line.rstrip("\n") + "\n")
            sink.flush()


def _describe(status: int) -> str:
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


def launch(
    command: Sequence[str],
    workers: int,
    *,
    port_base: int | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs `bigmodel-tf COMMAND` as `workers` processes forming one cluster on 127.0.0.1.

    Args:
        command: list of str. A `bigmodel-tf train ...` command line, without `bigmodel-tf`.
        workers: int. Number of worker processes (1 to 64).
        port_base: int. Worker `i` listens on `port_base + i`; defaults to free ports the
            system picks.
        stdout, stderr: text streams the workers' prefixed output goes to. Default to
            `sys.stdout` and `sys.stderr`.

    Returns:
        The chief's (worker 0's) exit status, 128 + N if a signal N ended it.
    """
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    command = list(command)
    if not command or command[0] != "train":
        raise UserError("launch runs a `train` command, e.g. launch --workers 2 -- train cnn")
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    if port_base is not None and not 1024 <= port_base <= 65535 - workers:
        raise UserError(f"--port-base must leave {workers} ports between 1024 and 65535")
    ports = _free_ports(workers, port_base)
    with tempfile.TemporaryDirectory(prefix="bigmodel-tf-launch-") as scratch:
        return _run(command, ports, Path(scratch), stdout, stderr)


def _run(
    command: list[str], ports: list[int], scratch: Path, stdout: TextIO, stderr: TextIO
) -> int:
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            stderr.write(f"[launch] {line}\n")
            stderr.flush()

    processes = []
    # Every process starts before any thread does: preexec_fn is unsafe once threads run.
    for index in range(len(ports)):
        tmp = scratch / f"worker-{index}"
        tmp.mkdir()
        env = {
            **os.environ,
            "TF_CONFIG": tf_config(ports, index),
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(tmp),
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "bigmodel_tf", *command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                # Its own session: a Ctrl-C reaches the launcher, which stops the workers.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        )
    threads = []
    for index, process in enumerate(processes):
        role = "chief" if index == 0 else "worker"
        say(f"worker {index} ({role}) is pid {process.pid} at {HOST}:{ports[index]}")
        for source, sink in ((process.stdout, stdout), (process.stderr, stderr)):
            thread = threading.Thread(
                target=_stream, args=(source, sink, f"[worker {index}] ", lock), daemon=True
            )
            thread.start()
            threads.append(thread)

    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:  # SIGTERM (a scheduler's stop) stops the workers as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _supervise(processes, say)
    except KeyboardInterrupt:
        say("interrupted; stopping the workers")
    finally:
        _stop(processes)
        for thread in threads:
            thread.join(timeout=5)
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    status = processes[0].returncode
    return 128 - status if status < 0 else status


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _supervise(processes: list[subprocess.Popen], say) -> None:
    """Waits for every worker; once one fails, stops the others."""
    reported = set()
    while any(p.poll() is None for p in processes):
        for index, process in enumerate(processes):
            status = process.poll()
            if status is None or index in reported:
                continue
            reported.add(index)
            if status != 0:
                say(f"worker {index} {_describe(status)}; stopping the others")
                _stop(processes, GRACE)
                return
        time.sleep(0.1)
    for index, process in enumerate(processes):
        if index not in reported and process.returncode != 0:
            say(f"worker {index} {_describe(process.returncode)}")


def _stop(processes: list[subprocess.Popen], grace: float = 0.0) -> None:
    """Kills (SIGKILL: see the module's docstring) and reaps every worker still running after
    `grace` seconds."""
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if process.poll() is None:
            process.kill()
            process.wait()
