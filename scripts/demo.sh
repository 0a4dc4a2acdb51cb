#!/usr/bin/env bash
# The main job: train the CNN on the embedded MNIST digits, evaluate it, export it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

run_dir=runs/cnn/demo
# A finished demo run is reused; an interrupted one resumes where it stopped.
bigmodel-tf train cnn --run-dir "$run_dir"
bigmodel-tf evaluate "$run_dir" --split test
bigmodel-tf export "$run_dir"
echo "Artefacts: run (checkpoints, TensorBoard logs, metrics) in $run_dir; exports in savedmodels/cnn/"
echo "See the training curves with: .venv/bin/bigmodel-tf tensorboard $run_dir"
