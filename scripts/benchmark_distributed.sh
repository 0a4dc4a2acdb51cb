#!/usr/bin/env bash
# Step time and examples/s of the `default` CNN in 1 process vs 2 local workers (the README's
# figures): Keras' per-epoch ms/step (which includes the epoch's validation), mean of the epochs
# after the first (which traces and compiles). Runs in a temporary folder; ~3 minutes on 2 cores.
#   scripts/benchmark_distributed.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ms/step of every epoch after the first, from `--quiet` (verbose=2) epoch lines.
steady_ms() { grep -oE '[0-9]+ms/step' "$1" | tr -d 'ms/step' | tail -n +2 | awk '{ s += $1 } END { printf "%.0f", s / NR }'; }

report() {  # name, workers, global batch, log
  local ms; ms=$(steady_ms "$4")
  awk -v n="$1" -v w="$2" -v b="$3" -v ms="$ms" 'BEGIN {
    printf "| %s | %d | %d | %d | %.0f | %.0f |\n", n, w, b, b / w, ms, b / (ms / 1000) }'
}

echo "| run | workers | global batch | per-worker batch | ms/step | examples/s |"
echo "|---|---|---|---|---|---|"
for batch in 64 128; do
  bigmodel-tf train cnn --epochs "$epochs" --batch-size "$batch" --quiet \
    --run-dir "$work/one-$batch" >"$work/one-$batch.log" 2>&1
  report "1 process" 1 "$batch" "$work/one-$batch.log"
  bigmodel-tf launch --workers 2 -- train cnn --epochs "$epochs" --batch-size "$batch" --quiet \
    --run-dir "$work/two-$batch" 2>&1 | grep '^\[worker 0\]' >"$work/two-$batch.log"
  report "2 workers" 2 "$batch" "$work/two-$batch.log"
done
