#!/usr/bin/env bash
# Step time and examples/s of the `default` CNN in 1 process vs 2 local workers (the figures of
# docs/results.md): Keras' per-epoch ms/step (which includes the epoch's validation), the fastest
# of the epochs after the first (which traces and compiles) - the least disturbed by other
# processes on a shared machine. Runs in a temporary folder; ~5 minutes on 2 idle cores.
#   scripts/benchmark_distributed.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fastest ms/step of the epochs after the first, from `--quiet` (verbose=2) epoch lines, where
# Keras writes "276ms/step", or "1s/step" from a second on.
steady_ms() {
  grep -oE '[0-9]+(us|ms|s)/step' "$1" | tail -n +2 | awk '
    /us/ { v = $0 / 1000 } /ms/ { v = $0 + 0 } !/us|ms/ { v = $0 * 1000 }
    NR == 1 || v < best { best = v } END { printf "%.0f", best }'
}

report() {  # name, workers, global batch, log, CPU seconds of the whole run
  local ms; ms=$(steady_ms "$4")
  awk -v n="$1" -v w="$2" -v b="$3" -v ms="$ms" -v cpu="$5" 'BEGIN {
    printf "| %s | %d | %d | %d | %.0f | %.0f | %.0f |\n", n, w, b, b / w, ms, b / (ms / 1000), cpu }'
}

# CPU seconds (user + system) of a command and every process it waited for, into $work/cpu.
cpu_time() { /usr/bin/time -f '%U %S' -o "$work/cpu.raw" "$@"; awk '{ print $1 + $2 }' "$work/cpu.raw" >"$work/cpu"; }

echo "| run | workers | global batch | per-worker batch | ms/step | examples/s | CPU s, whole run |"
echo "|---|---|---|---|---|---|---|"
for batch in 64 128; do
  cpu_time bigmodel-tf train cnn --epochs "$epochs" --batch-size "$batch" --quiet \
    --run-dir "$work/one-$batch" >"$work/one-$batch.log" 2>&1
  report "1 process" 1 "$batch" "$work/one-$batch.log" "$(cat "$work/cpu")"
  cpu_time bigmodel-tf launch --workers 2 -- train cnn --epochs "$epochs" --batch-size "$batch" \
    --quiet --run-dir "$work/two-$batch" >"$work/two-$batch.all" 2>&1
  grep '^\[worker 0\]' "$work/two-$batch.all" >"$work/two-$batch.log"
  report "2 workers" 2 "$batch" "$work/two-$batch.log" "$(cat "$work/cpu")"
done
