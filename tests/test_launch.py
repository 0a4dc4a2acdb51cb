"""`bigmodel-tf launch`: help, refusals, and failing workers (the training runs are in
tests/training/test_distributed.py)."""

import socket

from tests.helpers import run_cli


def test_help_explains_the_cluster_and_resume():
    shown = run_cli("launch", "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    for phrase in (
        "--workers N [--port-base P] -- train MODEL",
        "TF_CONFIG naming every worker",
        "worker 0 is the chief",
        "exits with the chief's status",
        "resumes every worker from its last backup",
        "Kubeflow's TFJob",
        "Slurm job step",
    ):
        assert phrase in text, phrase


def test_only_train_commands_and_free_ports_are_launched():
    refused = run_cli("launch", "--workers", "2", "--", "evaluate", "runs/x")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "bigmodel-tf launch: error: launch runs a `train` command, e.g. "
        "launch --workers 2 -- train cnn"
    )
    assert run_cli("launch", "--workers", "0", "--", "train", "cnn").returncode == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        busy = run_cli("launch", "--workers", "2", "--port-base", port, "--", "train", "cnn")
    assert busy.returncode == 2
    assert f"port {port} on 127.0.0.1 is not free" in busy.stderr


def test_failing_workers_are_reported_with_their_prefix_and_status():
    failed = run_cli("launch", "--workers", "2", "--", "train", "cnn", "--epochs", "0", timeout=120)
    assert failed.returncode == 2  # the chief's status
    for index in (0, 1):
        assert (
            f"[worker {index}] bigmodel-tf train: error: train.epochs=0: must be >= 1"
            in failed.stderr
        )
    assert "[launch] worker 0 (chief) is pid" in failed.stderr
    assert "exited with status 2" in failed.stderr
