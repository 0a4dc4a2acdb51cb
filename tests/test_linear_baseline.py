"""`scripts/linear_baseline.py`: its help and its refusal of a dataset it cannot score (the
docs/results.md's figure comes from a full run, too long for the suite)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "linear_baseline.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_help_names_the_splits_it_needs():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "`train`, `validation` and `test`" in result.stdout


def test_a_dataset_of_images_is_refused_with_a_clear_error():
    result = run("--dataset", "mnist5k")
    assert result.returncode == 2, result.stderr
    assert "mnist5k is not a text dataset" in result.stderr
    assert "Traceback" not in result.stderr
