"""Errors that the command line reports as one line: `UserError` (exit 2), `Interrupted`
(exit 128 + the signal)."""

from __future__ import annotations

import signal
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: a bad argument, config, dataset, run directory or archive."""


class Interrupted(Exception):
    """Training stopped on a signal after writing a backup; `exit_code` is 128 + the signal."""

    def __init__(self, signum: int, step: int, run_dir: Path):
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} at step {step}: backup written to {run_dir}; resume with the same command"
        )
