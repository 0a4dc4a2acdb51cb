#!/usr/bin/env bash
# Set up .venv, lint, then run the test suite (slow tests excluded; add -m slow to run them).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

ruff check bigmodel_tf tests scripts
ruff format --check bigmodel_tf tests scripts
# Two processes, a test file each at a time (a file's tests share its fixtures): much of a test's
# time is single-threaded tracing, conversion and data reading. TEST_WORKERS=0 runs in this one.
# pytest exits 5 when it collects no test: that must fail, not pass silently.
exec python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
