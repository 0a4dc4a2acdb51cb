#!/usr/bin/env bash
# Set up .venv, lint, then run the test suite (slow tests excluded; add -m slow to run them).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

ruff check bigmodel_tf tests scripts
ruff format --check bigmodel_tf tests scripts
# pytest exits 5 when it collects no test: that must fail, not pass silently.
exec python -m pytest "$@"
