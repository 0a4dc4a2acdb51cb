"""Ends a worker whose cluster does not come up in time, naming the peers it cannot reach.

While it waits for missing peers, TensorFlow blocks inside C++ holding Python's interpreter lock,
so neither a thread nor a signal handler of the worker itself can interrupt it; this watchdog
runs as a separate process (and imports no TensorFlow):

    python -m bigmodel_tf.watchdog WORKER_PID SECONDS ROLE/INDEX/HOST:PORT ...

It exits quietly as soon as its stdin closes (the worker's cluster came up, or the worker ended).
After SECONDS it prints which peers refuse connections and kills the worker.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys


def unreachable(peers: list[str]) -> str:
    """Which of `peers` (`role/index/host:port`) refuse a TCP connection, as one phrase."""
    found = []
    for peer in peers:
        role, index, address = peer.split("/", 2)
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError as e:
            found.append(f"{role} {index} at {address}: {e.strerror or e}")
    if not found:
        return "every peer accepts connections, but not all of them joined"
    return "unreachable: " + "; ".join(found)


def main(argv: list[str]) -> None:
    pid, seconds, *peers = argv
    ready, _, _ = select.select([sys.stdin], [], [], float(seconds))
    if ready:  # end of file: the worker no longer needs watching
        return
    sys.stderr.write(
        f"bigmodel-tf: error: the cluster did not come up within {seconds} s "
        f"({unreachable(peers)}); start every worker with the same command, check their "
        "addresses, or raise BIGMODEL_TF_CLUSTER_TIMEOUT\n"
    )
    sys.stderr.flush()
    os.kill(int(pid), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1:])
