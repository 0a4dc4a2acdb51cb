#!/usr/bin/env bash
# bigmodel-tf on Slurm: one `bigmodel-tf train` per task of a job step (sbatch scripts/slurm.sh).
# With TF_CONFIG unset, `train` reads the step's layout through TensorFlow's SlurmClusterResolver
# (SLURM_PROCID, SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE) and runs
# MultiWorkerMirroredStrategy over every task; task 0 is the chief. Task i of a node listens on
# BIGMODEL_TF_SLURM_PORT + i.
#
# Fault tolerance: if a task dies, its peers fail within seconds and the step ends; `--requeue`
# (or submitting this script again) resumes every task from its last backup at that step. The
# run directory must be on a file system all nodes share.
#SBATCH --job-name=bigmodel-tf-cnn
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
#SBATCH --requeue
#SBATCH --output=bigmodel-tf-%j.log
set -euo pipefail

export BIGMODEL_TF_SLURM_PORT=${BIGMODEL_TF_SLURM_PORT:-8888}
export BIGMODEL_TF_CLUSTER_TIMEOUT=${BIGMODEL_TF_CLUSTER_TIMEOUT:-600}
# Each task prepares the dataset in its node's local storage, not in a shared cache.
export BIGMODEL_TF_CACHE=${BIGMODEL_TF_CACHE:-/tmp/bigmodel_tf-$SLURM_JOB_ID}
RUN_DIR=${RUN_DIR:-$PWD/runs/cnn/mnist5k-slurm}

# --label prefixes each line with its task number, as `bigmodel-tf launch` does locally.
srun --label bigmodel-tf train cnn --run-dir "$RUN_DIR" --batch-size 256 --quiet
