#!/usr/bin/env bash
# Creates or refreshes .venv and installs the package with its test extras and PyTorch (the bench's
# peers, which the tests also train). Sourced by demo.sh and test.sh; safe to run again (pip only
# installs what changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  echo "Installing bigmodel-tf and its dependencies into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e '.[test,peers]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
export PATH="$PWD/.venv/bin:$PATH"
